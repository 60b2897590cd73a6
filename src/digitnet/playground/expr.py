"""Formulas for the gradient-descent playground: read, evaluate and differentiate them.

A formula such as ``3/2x^2 + 1/2y^2`` comes from a person, maybe through a browser, so it
is untrusted text. It is read by a tokenizer and a recursive-descent parser written here
into a small tree of whitelisted nodes (numbers, the variables ``x`` and ``y``, the
constants ``pi`` and ``e``, ``+ - * / ^`` and the functions in :data:`FUNCTIONS`); the
text is never given to ``eval``, ``exec`` or ``compile``. Size limits (:data:`MAX_LENGTH`,
:data:`MAX_DEPTH`, :data:`MAX_EXPONENT`, :data:`MAX_NUMBER`) keep every formula cheap to
read and to evaluate. Problems raise :class:`~digitnet.errors.ExpressionError` with the
0-based character position of the offending part.

The formula is read as a person means it: ``^`` and ``**`` are powers, a number or a
bracket directly before a name multiplies (``2x``, ``3/2x^2`` is ``(3/2)*x^2``,
``x(x+1)``), ``xy`` is ``x*y``, ``½`` is ``1/2``, ``x²`` is ``x^2``. ``str()`` of a parsed
:class:`Expression` shows how it was read, with every operator written out.

Shapes: a point is an array ``(..., d)`` whose last axis holds the ``d`` variables in
the order of :attr:`Expression.variables` (``("x",)``, ``("y",)`` or ``("x", "y")``).
``value`` returns ``(...)`` and ``gradient`` returns ``(..., d)``, so a whole contour grid
``(h, w, 2)`` is evaluated in one call. Gradients are exact: forward-mode automatic
differentiation carries ``dC/dx, dC/dy`` along with every value.
"""

from __future__ import annotations

import math
import re
from typing import Callable

import numpy as np

from digitnet.errors import ExpressionError

__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_LENGTH",
    "MAX_NUMBER",
    "VARIABLES",
    "Expression",
    "format_expression_error",
    "parse",
    "square_linear_terms",
]

MAX_LENGTH = 1000  # characters in a formula
MAX_DEPTH = 50  # nested brackets, signs and powers
MAX_EXPONENT = 100.0  # largest |p| in a constant exponent u^p
MAX_NUMBER = 1e100  # largest number literal
_MAX_DIGITS = 40  # characters in one number literal

VARIABLES = ("x", "y")
CONSTANTS = {"pi": math.pi, "e": math.e}


def _sigmoid(u):
    # The tanh form never overflows, unlike 1 / (1 + exp(-u)) for large negative u.
    return 0.5 * (1.0 + np.tanh(0.5 * u))


# name -> (f(u), df/du given u and v = f(u)). Derivatives reuse the value where they can.
_ONE_ARGUMENT: dict[str, tuple[Callable, Callable]] = {
    "sin": (np.sin, lambda u, v: np.cos(u)),
    "cos": (np.cos, lambda u, v: -np.sin(u)),
    "tan": (np.tan, lambda u, v: 1.0 + v * v),
    "exp": (np.exp, lambda u, v: v),
    "log": (np.log, lambda u, v: 1.0 / u),
    "ln": (np.log, lambda u, v: 1.0 / u),
    "log2": (np.log2, lambda u, v: 1.0 / (u * math.log(2.0))),
    "log10": (np.log10, lambda u, v: 1.0 / (u * math.log(10.0))),
    "sqrt": (np.sqrt, lambda u, v: 0.5 / v),
    "cbrt": (np.cbrt, lambda u, v: 1.0 / (3.0 * v * v)),
    "abs": (np.abs, lambda u, v: np.sign(u)),
    "sign": (np.sign, lambda u, v: np.zeros_like(v)),
    "sinh": (np.sinh, lambda u, v: np.cosh(u)),
    "cosh": (np.cosh, lambda u, v: np.sinh(u)),
    "tanh": (np.tanh, lambda u, v: 1.0 - v * v),
    "asin": (np.arcsin, lambda u, v: 1.0 / np.sqrt(1.0 - u * u)),
    "acos": (np.arccos, lambda u, v: -1.0 / np.sqrt(1.0 - u * u)),
    "atan": (np.arctan, lambda u, v: 1.0 / (1.0 + u * u)),
    "arcsin": (np.arcsin, lambda u, v: 1.0 / np.sqrt(1.0 - u * u)),
    "arccos": (np.arccos, lambda u, v: -1.0 / np.sqrt(1.0 - u * u)),
    "arctan": (np.arctan, lambda u, v: 1.0 / (1.0 + u * u)),
    "sigmoid": (_sigmoid, lambda u, v: v * (1.0 - v)),
    "relu": (lambda u: np.maximum(u, 0.0), lambda u, v: (u > 0).astype(float)),
    "softplus": (lambda u: np.logaddexp(0.0, u), lambda u, v: _sigmoid(u)),
}
# min and max take two or more arguments; the gradient is that of the chosen argument.
_MANY_ARGUMENTS = {"min": np.argmin, "max": np.argmax}

#: Every function a formula may call.
FUNCTIONS = tuple(sorted([*_ONE_ARGUMENT, *_MANY_ARGUMENTS]))


# --- the tree ---------------------------------------------------------------------------
# Nodes are small objects, never changed once built. ``pos`` is where the node's text
# starts; ``const`` is its value when it holds no variable (else None), so constant parts
# are computed and checked once, while parsing.

_ADD, _MUL, _NEG, _POW, _ATOM = 1, 2, 3, 4, 5  # binding strength, for echoing brackets


class _Node:
    __slots__ = ("pos", "const")
    precedence = _ATOM


class _Num(_Node):
    __slots__ = ("value", "text")

    def __init__(self, value: float, text: str, pos: int):
        self.value, self.text, self.pos = value, text, pos
        self.const = np.float64(value)


class _Var(_Node):
    __slots__ = ("name",)

    def __init__(self, name: str, pos: int):
        self.name, self.pos, self.const = name, pos, None


class _Neg(_Node):
    __slots__ = ("operand",)
    precedence = _NEG

    def __init__(self, operand: _Node, pos: int):
        self.operand, self.pos = operand, pos
        self.const = None if operand.const is None else np.negative(operand.const)


class _Sum(_Node):
    __slots__ = ("terms", "signs")
    precedence = _ADD

    def __init__(self, terms: list[_Node], signs: list[str]):
        self.terms, self.signs, self.pos = tuple(terms), tuple(signs), terms[0].pos
        self.const = _fold(self, self.terms)


class _Product(_Node):
    __slots__ = ("factors", "ops")
    precedence = _MUL

    def __init__(self, factors: list[_Node], ops: list[str]):
        self.factors, self.ops, self.pos = tuple(factors), tuple(ops), factors[0].pos
        self.const = _fold(self, self.factors)


class _Pow(_Node):
    __slots__ = ("base", "exponent")
    precedence = _POW

    def __init__(self, base: _Node, exponent: _Node):
        self.base, self.exponent, self.pos = base, exponent, base.pos
        self.const = _fold(self, (base, exponent))


class _Call(_Node):
    __slots__ = ("name", "args")

    def __init__(self, name: str, args: list[_Node], pos: int):
        self.name, self.args, self.pos = name, tuple(args), pos
        self.const = _fold(self, self.args)


def _fold(node: _Node, children) -> np.float64 | None:
    """The value of ``node`` if all its ``children`` are constants, else None."""
    if any(child.const is None for child in children):
        return None
    with np.errstate(all="ignore"):
        return np.float64(_compute(node, {}))


# --- reading ----------------------------------------------------------------------------


class _Token:
    __slots__ = ("kind", "text", "pos", "value")

    def __init__(self, kind: str, text: str, pos: int, value=None):
        # kind: "num", "frac" (value = (a, b)), "name" (variable or constant), "func",
        # "op" (+ - * / ^ ( ) ,) or "end".
        self.kind, self.text, self.pos, self.value = kind, text, pos, value


_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_OPERATORS = {
    "+": "+", "-": "-", "\u2212": "-", "*": "*", "\u00d7": "*", "\u00b7": "*",
    "\u22c5": "*", "/": "/", "\u00f7": "/", "^": "^", "(": "(", ")": ")", ",": ",",
}  # fmt: skip
_FRACTIONS = {
    "\u00bd": (1, 2), "\u2153": (1, 3), "\u2154": (2, 3), "\u00bc": (1, 4),
    "\u00be": (3, 4), "\u2155": (1, 5), "\u2159": (1, 6), "\u215b": (1, 8),
}  # fmt: skip
_SUPERSCRIPTS = {
    "\u2070": "0", "\u00b9": "1", "\u00b2": "2", "\u00b3": "3", "\u2074": "4",
    "\u2075": "5", "\u2076": "6", "\u2077": "7", "\u2078": "8", "\u2079": "9",
}  # fmt: skip
_ALLOWED = (
    "a formula may use numbers, x, y, pi, e, + - * / ^ ( ) and functions such as sin(x)"
)


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "*" and text.startswith("**", i):
            tokens.append(_Token("op", "^", i))
            i += 2
        elif ch in _OPERATORS:
            tokens.append(_Token("op", _OPERATORS[ch], i))
            i += 1
        elif ch in _FRACTIONS:
            tokens.append(_Token("frac", ch, i, _FRACTIONS[ch]))
            i += 1
        elif ch in _SUPERSCRIPTS:
            j = i
            while j < n and text[j] in _SUPERSCRIPTS:
                j += 1
            digits = "".join(_SUPERSCRIPTS[c] for c in text[i:j])
            tokens.append(_Token("op", "^", i))
            tokens.append(_Token("num", digits, i, float(digits)))
            i = j
        elif ch.isdigit() or (ch == "." and text[i + 1 : i + 2].isdigit()):
            match = _NUMBER.match(text, i)
            if match is None:  # a digit outside ASCII, such as an Arabic-Indic one
                raise ExpressionError(f"unexpected character {ch!r}; {_ALLOWED}", i)
            literal = match.group()
            if len(literal) > _MAX_DIGITS:
                raise ExpressionError(
                    f"the number {_short(literal)} has more than {_MAX_DIGITS} characters", i
                )
            value = float(literal)
            if not value <= MAX_NUMBER:
                raise ExpressionError(
                    f"the number {_short(literal)} is too large (the limit is {MAX_NUMBER:g})",
                    i,
                )
            tokens.append(_Token("num", literal, i, value))
            i = match.end()
        elif ch == "\u03c0":  # the Greek letter pi
            tokens.append(_Token("name", "pi", i))
            i += 1
        elif ch.isascii() and (ch.isalpha() or ch == "_"):
            match = _NAME.match(text, i)
            tokens.extend(_read_name(match.group(), i, text[match.end() : match.end() + 1]))
            i = match.end()
        elif ch == ".":
            raise ExpressionError(
                "unexpected '.': a formula has no attributes or methods, "
                "and a number needs a digit after its point",
                i,
            )
        elif ch in "[]{}":
            raise ExpressionError(f"unexpected {ch!r}: use round brackets ( )", i)
        else:
            raise ExpressionError(f"unexpected character {ch!r}; {_ALLOWED}", i)
    tokens.append(_Token("end", "", n))
    return tokens


def _read_name(word: str, pos: int, next_char: str) -> list[_Token]:
    """Tokens for a run of letters: a known name, or known names written together (xy)."""
    name = word.lower()
    if name in FUNCTIONS:
        return [_Token("func", name, pos)]
    if name in VARIABLES or name in CONSTANTS:
        return [_Token("name", name, pos)]
    # "xy" is x*y and "2pix" is 2*pi*x: split into variables and constants, allowing one
    # function name at the end ("xsin(y)").
    pieces: list[_Token] = []
    i = 0
    while i < len(name):
        rest = name[i:]
        if rest in FUNCTIONS and next_char == "(":
            pieces.append(_Token("func", rest, pos + i))
            i = len(name)
        elif rest.startswith("pi"):
            pieces.append(_Token("name", "pi", pos + i))
            i += 2
        elif rest[0] in ("x", "y", "e"):
            pieces.append(_Token("name", rest[0], pos + i))
            i += 1
        else:
            raise ExpressionError(_unknown_name_message(word), pos)
    return pieces


def _unknown_name_message(word: str) -> str:
    name = word.lower()
    for function in sorted(FUNCTIONS, key=len, reverse=True):
        if name.startswith(function) and len(name) > len(function):
            return (
                f"unknown name {_short(word)!r}: write "
                f"{function}({_short(word[len(function):])}) with brackets"
            )
    if re.fullmatch(r"[xy]\d+", name):
        return f"unknown name {_short(word)!r}: write {name[0]}^{_short(name[1:])} for a power"
    return (
        f"unknown name {_short(word)!r}; a formula may use the variables x and y, "
        f"the constants pi and e, and the functions {', '.join(FUNCTIONS)}"
    )


class _Parser:
    """Recursive descent over the grammar (loops make sums and products flat)::

        sum     := product (('+' | '-') product)*
        product := unary (('*' | '/') unary | unary-starting-with-a-name-or-'(')*
        unary   := ('+' | '-') unary | power
        power   := atom ('^' unary)?            # right-associative, -x^2 is -(x^2)
        atom    := number | '½' | name | function '(' sum (',' sum)* ')' | '(' sum ')'
    """

    def __init__(self, text: str):
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.names: set[str] = set()

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def is_op(self, *ops: str) -> bool:
        token = self.tokens[self.i]
        return token.kind == "op" and token.text in ops

    def parse(self) -> _Node:
        if self.peek().kind == "end":
            raise ExpressionError("the formula is empty; try for example 3/2x^2 + 1/2y^2", 0)
        node = self.sum()
        token = self.peek()
        if token.kind != "end":
            if token.text == ")":
                raise ExpressionError("unmatched ')': there is no '(' before it", token.pos)
            if token.text == ",":
                raise ExpressionError(
                    "',' is only allowed between the arguments of min(...) or max(...)",
                    token.pos,
                )
            raise ExpressionError(f"unexpected {token.text!r} here", token.pos)
        return node

    def checked(self, node: _Node) -> _Node:
        # A constant part that overflows or is undefined (10^400, log(0), sqrt(-1)) is
        # reported where it is written instead of turning every value into inf or nan.
        if node.const is not None and not math.isfinite(node.const):
            what = "is undefined" if math.isnan(node.const) else "is infinite or too large"
            raise ExpressionError(f"{_short(_echo(node), 40)} {what}", node.pos)
        return node

    def sum(self) -> _Node:
        terms, signs = [self.product()], ["+"]
        while self.is_op("+", "-"):
            signs.append(self.advance().text)
            terms.append(self.product())
        return terms[0] if len(terms) == 1 else self.checked(_Sum(terms, signs))

    def product(self) -> _Node:
        first = self.unary()
        # "3/2x" and "½y": a fraction written before a name is its coefficient.
        if isinstance(first, _Product):
            factors, ops = list(first.factors), list(first.ops)
        else:
            factors, ops = [first], ["*"]
        while True:
            token = self.peek()
            if token.kind == "op" and token.text in ("*", "/"):
                self.advance()
                ops.append(token.text)
            elif token.kind in ("name", "func") or (token.kind == "op" and token.text == "("):
                ops.append("*")  # implicit multiplication: 2x, x(x+1), (x+1)(x-1)
            elif token.kind in ("num", "frac"):
                raise ExpressionError(
                    "a number cannot follow here without an operator: "
                    "write * for a product or ^ for a power",
                    token.pos,
                )
            else:
                break
            factors.append(self.unary())
        if len(factors) == 1:
            return factors[0]
        return self.checked(_Product(factors, ops))

    def unary(self) -> _Node:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise ExpressionError(
                    f"the formula is nested too deeply (more than {MAX_DEPTH} levels of "
                    "brackets, signs or powers)",
                    self.peek().pos,
                )
            if self.is_op("+", "-"):
                token = self.advance()
                operand = self.unary()
                return operand if token.text == "+" else self.checked(_Neg(operand, token.pos))
            return self.power()
        finally:
            self.depth -= 1

    def power(self) -> _Node:
        base = self.atom()
        if not self.is_op("^"):
            return base
        self.advance()
        exponent = self.unary()
        if exponent.const is not None and abs(exponent.const) > MAX_EXPONENT:
            raise ExpressionError(
                f"the exponent {_format_number(float(exponent.const))} is too large: "
                f"exponents are limited to +-{MAX_EXPONENT:g}",
                exponent.pos,
            )
        return self.checked(_Pow(base, exponent))

    def atom(self) -> _Node:
        token = self.advance()
        if token.kind == "num":
            return _Num(token.value, token.text, token.pos)
        if token.kind == "frac":
            a, b = token.value
            numerator = _Num(float(a), str(a), token.pos)
            denominator = _Num(float(b), str(b), token.pos)
            return _Product([numerator, denominator], ["*", "/"])
        if token.kind == "name":
            if token.text in CONSTANTS:
                return _Num(CONSTANTS[token.text], token.text, token.pos)
            self.names.add(token.text)
            return _Var(token.text, token.pos)
        if token.kind == "func":
            return self.call(token)
        if token.kind == "op" and token.text == "(":
            if self.is_op(")"):
                raise ExpressionError("empty brackets: put something between ( and )", token.pos)
            node = self.sum()
            self.close(token)
            return node
        if token.kind == "end":
            previous = self.tokens[self.i - 2].text if self.i >= 2 else ""
            raise ExpressionError(
                f"the formula ends too early: something is missing after {previous!r}",
                token.pos,
            )
        if token.text == ")":
            raise ExpressionError("unexpected ')': something is missing before it", token.pos)
        raise ExpressionError(
            f"unexpected {token.text!r}: a number, a name or '(' should come here", token.pos
        )

    def call(self, name: _Token) -> _Node:
        if not self.is_op("("):
            raise ExpressionError(
                f"{name.text} is a function: write {name.text}(...) with brackets", name.pos
            )
        bracket = self.advance()
        if self.is_op(")"):
            raise ExpressionError(f"{name.text}() needs an argument", bracket.pos)
        args = [self.sum()]
        while self.is_op(","):
            self.advance()
            args.append(self.sum())
        self.close(bracket)
        if name.text in _ONE_ARGUMENT and len(args) != 1:
            raise ExpressionError(
                f"{name.text}() takes 1 argument, not {len(args)}", args[1].pos
            )
        if name.text in _MANY_ARGUMENTS and len(args) < 2:
            raise ExpressionError(f"{name.text}() takes 2 or more arguments", bracket.pos)
        return self.checked(_Call(name.text, args, name.pos))

    def close(self, bracket: _Token) -> None:
        token = self.peek()
        if token.kind == "op" and token.text == ")":
            self.advance()
        elif token.kind == "end":
            raise ExpressionError("this '(' is never closed: a ')' is missing", bracket.pos)
        elif token.text == ",":
            raise ExpressionError(
                "',' is only allowed between the arguments of min(...) or max(...)", token.pos
            )
        else:
            raise ExpressionError(f"unexpected {token.text!r}: expected ')'", token.pos)


def parse(text: str) -> Expression:
    """Read a formula in ``x``, or in ``x`` and ``y``, into an :class:`Expression`.

    Raises :class:`~digitnet.errors.ExpressionError` with the position of the problem
    for anything outside the whitelist or the size limits; nothing in the text is run.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"a formula must be text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"the formula is {len(text)} characters long; the limit is {MAX_LENGTH}", MAX_LENGTH
        )
    parser = _Parser(text)
    tree = parser.parse()
    variables = tuple(v for v in VARIABLES if v in parser.names)
    if not variables:
        raise ExpressionError(
            "the formula has no variable: write a function of x, or of x and y", None
        )
    return Expression(text, tree, variables)


# --- echo -------------------------------------------------------------------------------


def _format_number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _echo(node: _Node) -> str:
    """The node written out with every operator, in brackets only where needed."""

    def wrapped(child: _Node, weaker_than: int) -> str:
        text = _echo(child)
        return f"({text})" if child.precedence < weaker_than else text

    kind = type(node)
    if kind is _Num:
        return node.text if node.text in CONSTANTS else _format_number(node.value)
    if kind is _Var:
        return node.name
    if kind is _Neg:
        return "-" + wrapped(node.operand, _NEG)
    if kind is _Sum:
        parts = [wrapped(node.terms[0], _MUL)]
        for sign, term in zip(node.signs[1:], node.terms[1:]):
            parts.append(f" {sign} {wrapped(term, _MUL)}")
        return "".join(parts)
    if kind is _Product:
        parts = [wrapped(node.factors[0], _MUL)]
        for op, factor in zip(node.ops[1:], node.factors[1:]):
            parts.append(op + wrapped(factor, _NEG))
        return "".join(parts)
    if kind is _Pow:
        return wrapped(node.base, _ATOM) + "^" + wrapped(node.exponent, _NEG)
    return f"{node.name}({', '.join(_echo(arg) for arg in node.args)})"


# --- evaluation -------------------------------------------------------------------------


def _value(node: _Node, env: dict[str, np.ndarray]):
    """C at every point; ``env`` maps each variable name to an array of one shape."""
    return node.const if node.const is not None else _compute(node, env)


def _compute(node: _Node, env: dict[str, np.ndarray]):
    """:func:`_value` for a node, computed from its children's values."""
    kind = type(node)
    if kind is _Var:
        return env[node.name]
    if kind is _Neg:
        return np.negative(_value(node.operand, env))
    if kind is _Sum:
        total = _value(node.terms[0], env)
        for sign, term in zip(node.signs[1:], node.terms[1:]):
            v = _value(term, env)
            total = np.add(total, v) if sign == "+" else np.subtract(total, v)
        return total
    if kind is _Product:
        total = _value(node.factors[0], env)
        for op, factor in zip(node.ops[1:], node.factors[1:]):
            v = _value(factor, env)
            total = np.multiply(total, v) if op == "*" else np.divide(total, v)
        return total
    if kind is _Pow:
        return np.power(_value(node.base, env), _value(node.exponent, env))
    args = [_value(arg, env) for arg in node.args]
    if node.name in _MANY_ARGUMENTS:
        reduce = np.minimum if node.name == "min" else np.maximum
        total = args[0]
        for v in args[1:]:
            total = reduce(total, v)
        return total
    return _ONE_ARGUMENT[node.name][0](args[0])


def _scale(g, s):
    """``g * s`` for a gradient ``(..., d)`` and a factor ``(...)``; None stands for 0."""
    return None if g is None else g * np.asarray(s)[..., None]


def _plus(g, h):
    if g is None:
        return h
    return g if h is None else g + h


def _minus(g, h):
    if h is None:
        return g
    return -h if g is None else g - h


def _value_and_gradient(node: _Node, env: dict[str, tuple]):
    """``(C, dC)`` with ``dC`` of shape ``(..., d)``, or None where it is zero.

    Forward-mode differentiation: each node combines its children's values and
    gradients with the rule for its operation (sum, product, quotient, power, chain).
    ``env`` maps each variable name to its ``(value, gradient)`` pair.
    """
    if node.const is not None:
        return node.const, None
    kind = type(node)
    if kind is _Var:
        return env[node.name]
    if kind is _Neg:
        v, g = _value_and_gradient(node.operand, env)
        return np.negative(v), None if g is None else -g
    if kind is _Sum:
        v, g = _value_and_gradient(node.terms[0], env)
        for sign, term in zip(node.signs[1:], node.terms[1:]):
            tv, tg = _value_and_gradient(term, env)
            if sign == "+":
                v, g = np.add(v, tv), _plus(g, tg)
            else:
                v, g = np.subtract(v, tv), _minus(g, tg)
        return v, g
    if kind is _Product:
        v, g = _value_and_gradient(node.factors[0], env)
        for op, factor in zip(node.ops[1:], node.factors[1:]):
            fv, fg = _value_and_gradient(factor, env)
            if op == "*":  # (uf)' = u'f + uf'
                v, g = np.multiply(v, fv), _plus(_scale(g, fv), _scale(fg, v))
            else:  # (u/f)' = (u' - (u/f) f') / f
                q = np.divide(v, fv)
                v, g = q, _scale(_minus(g, _scale(fg, q)), np.divide(1.0, fv))
        return v, g
    if kind is _Pow:
        u, gu = _value_and_gradient(node.base, env)
        w, gw = _value_and_gradient(node.exponent, env)
        v = np.power(u, w)
        if gw is None:  # (u^c)' = c u^(c-1) u'
            return v, _scale(gu, np.multiply(w, np.power(u, np.subtract(w, 1.0))))
        if gu is None:  # (c^w)' = c^w log(c) w'
            return v, _scale(gw, np.multiply(v, np.log(u)))
        # (u^w)' = u^w (w' log u + w u'/u)
        return v, _scale(_plus(_scale(gw, np.log(u)), _scale(gu, np.divide(w, u))), v)
    pairs = [_value_and_gradient(arg, env) for arg in node.args]
    if node.name in _MANY_ARGUMENTS:
        values = np.stack(np.broadcast_arrays(*[p[0] for p in pairs]))  # (k, ...)
        chosen = _MANY_ARGUMENTS[node.name](values, axis=0)[None]  # (1, ...)
        v = np.take_along_axis(values, chosen, axis=0)[0]
        if all(p[1] is None for p in pairs):
            return v, None
        d = next(p[1] for p in pairs if p[1] is not None).shape[-1]
        grads = np.stack([np.broadcast_to(p[1] if p[1] is not None else 0.0, v.shape + (d,))
                          for p in pairs])  # (k, ..., d)
        g = np.take_along_axis(grads, chosen[..., None], axis=0)[0]
        return v, g
    f, df = _ONE_ARGUMENT[node.name]
    u, gu = pairs[0]
    v = f(u)
    return v, _scale(gu, df(u, v))


class Expression:
    """A parsed formula: evaluate it and its exact gradient on arrays of points.

    Build one with :func:`parse`. ``str(expression)`` is the formula as it was read,
    e.g. ``parse("3/2x^2 + ½y")`` prints as ``3/2*x^2 + 1/2*y``.
    """

    __slots__ = ("text", "variables", "_tree")

    def __init__(self, text: str, tree: _Node, variables: tuple[str, ...]):
        self.text = text  # the formula as typed
        self.variables = variables  # names of the d coordinates, in order
        self._tree = tree

    @property
    def dim(self) -> int:
        """``d``, the number of variables (1 or 2)."""
        return len(self.variables)

    def __str__(self) -> str:
        return _echo(self._tree)

    def __repr__(self) -> str:
        return f"Expression({str(self)!r})"

    def _coordinates(self, points) -> list[np.ndarray]:
        p = np.asarray(points, dtype=np.float64)
        if p.ndim == 0 or p.shape[-1] != self.dim:
            raise ValueError(
                f"points must have shape (..., {self.dim}) for a formula in "
                f"{', '.join(self.variables)}; got shape {p.shape}"
            )
        return [p[..., i] for i in range(self.dim)]

    def value(self, points) -> np.ndarray:
        """C at ``points`` ``(..., d)``; returns ``(...)``, with nan where C is undefined."""
        coords = self._coordinates(points)
        with np.errstate(all="ignore"):
            v = _value(self._tree, dict(zip(self.variables, coords)))
        return np.broadcast_to(np.asarray(v, dtype=np.float64), coords[0].shape).copy()

    def value_and_gradient(self, points) -> tuple[np.ndarray, np.ndarray]:
        """``(C, grad C)`` at ``points`` ``(..., d)``: shapes ``(...)`` and ``(..., d)``."""
        coords = self._coordinates(points)
        shape, d = coords[0].shape, self.dim
        env = {}
        for i, name in enumerate(self.variables):
            unit = np.zeros(shape + (d,))
            unit[..., i] = 1.0  # dx/dx = 1, dx/dy = 0
            env[name] = (coords[i], unit)
        with np.errstate(all="ignore"):
            v, g = _value_and_gradient(self._tree, env)
        v = np.broadcast_to(np.asarray(v, dtype=np.float64), shape).copy()
        g = np.zeros(shape + (d,)) if g is None else np.broadcast_to(g, shape + (d,)).copy()
        return v, g

    def gradient(self, points) -> np.ndarray:
        """grad C at ``points`` ``(..., d)``; returns ``(..., d)``."""
        return self.value_and_gradient(points)[1]


def square_linear_terms(expression: Expression) -> Expression | None:
    """The formula with each term that is linear in one variable squared, or None.

    A top-level term such as ``1/2*y`` or ``-x`` falls without end; squaring it
    (``1/2*y^2``) is the usual fix, and the notes' ``3/2x^2 + ½y`` is most likely
    ``3/2x^2 + ½y^2``. Returns None when the formula has no such term.
    """
    tree = expression._tree
    terms = list(tree.terms) if isinstance(tree, _Sum) else [tree]
    changed = False
    for i, term in enumerate(terms):
        squared = _squared_if_linear(term)
        if squared is not None:
            terms[i], changed = squared, True
    if not changed:
        return None
    new_tree = _Sum(terms, list(tree.signs)) if isinstance(tree, _Sum) else terms[0]
    # Built from the tree, not re-read from its echo: the echo of a long formula can be
    # longer than MAX_LENGTH (500 terms "x" become "x^2 + x^2 + ...", 2,999 characters).
    return Expression(_echo(new_tree), new_tree, expression.variables)


def _squared_if_linear(term: _Node) -> _Node | None:
    if isinstance(term, _Var):
        return _Pow(term, _Num(2.0, "2", term.pos))
    if isinstance(term, _Neg):
        inner = _squared_if_linear(term.operand)
        return None if inner is None else _Neg(inner, term.pos)
    if isinstance(term, _Product):
        variables = [i for i, f in enumerate(term.factors) if f.const is None]
        if len(variables) == 1:
            i = variables[0]
            if isinstance(term.factors[i], _Var) and term.ops[i] == "*":
                factors = list(term.factors)
                factors[i] = _Pow(factors[i], _Num(2.0, "2", factors[i].pos))
                return _Product(factors, list(term.ops))
    return None


def format_expression_error(text: str, error: ExpressionError, width: int = 60) -> str:
    """The error's message, then the formula with a caret under the offending position.

    Long formulas are cut to ``width`` characters around the position; characters that
    would not print (newlines, control codes) are shown as ``?`` so the caret lines up.
    """
    message = str(error)
    if error.position is None or not isinstance(text, str):
        return message
    pos = max(0, min(error.position, len(text)))
    start = max(0, min(pos - width // 2, len(text) - width))
    end = min(len(text), start + width)
    shown = "".join(c if c.isprintable() else "?" for c in text[start:end])
    prefix = "..." if start > 0 else ""
    suffix = "..." if end < len(text) else ""
    caret = " " * (len(prefix) + pos - start) + "^"
    return f"{message}\n  {prefix}{shown}{suffix}\n  {caret}"
