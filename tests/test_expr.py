"""The playground's formula reader: how formulas are read, evaluated, differentiated,
and how hostile text is turned away."""

from __future__ import annotations

import ast
import builtins
import inspect
import math
import time

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from digitnet.errors import ExpressionError
from digitnet.playground import expr as expr_module
from digitnet.playground.expr import (
    FUNCTIONS,
    MAX_DEPTH,
    MAX_LENGTH,
    format_expression_error,
    parse,
    square_linear_terms,
)


def finite_difference(e, p, h=1e-6):
    """Central differences of ``e`` at the point ``p`` ``(d,)``, in float64."""
    p = np.asarray(p, dtype=float)
    g = np.zeros_like(p)
    for i in range(len(p)):
        step = np.zeros_like(p)
        step[i] = h
        g[i] = (e.value(p + step) - e.value(p - step)) / (2 * h)
    return g


# --- reading as a person means it --------------------------------------------------------


@pytest.mark.parametrize(
    "text, echo",
    [
        ("3/2x^2 + ½y", "3/2*x^2 + 1/2*y"),  # the notes, literally
        ("3/2x^2 + 1/2y^2", "3/2*x^2 + 1/2*y^2"),
        ("3/2 x² + ½ y²", "3/2*x^2 + 1/2*y^2"),
        ("x**4 - 3*x**2 + y**2", "x^4 - 3*x^2 + y^2"),
        ("2x", "2*x"),
        ("xy", "x*y"),
        ("2pix", "2*pi*x"),
        ("x(x+1)", "x*(x + 1)"),
        ("(x+1)(x-1)", "(x + 1)*(x - 1)"),
        ("2 sin(x) cos(y)", "2*sin(x)*cos(y)"),
        ("xsin(y)", "x*sin(y)"),
        ("-x^2", "-x^2"),
        ("(-x)^2", "(-x)^2"),
        ("2^-x", "2^-x"),
        ("x^2^3", "x^2^3"),
        ("x/½", "x/(1/2)"),
        ("x^½", "x^(1/2)"),
        ("x − y × 2 ÷ 4", "x - y*2/4"),
        ("X^2 + Sin(Y)", "x^2 + sin(y)"),
        ("1e3x + .5y", "1000*x + 0.5*y"),
        ("max(x, y, 0) + min(x, 1)", "max(x, y, 0) + min(x, 1)"),
        ("πx", "pi*x"),
    ],
)
def test_formulas_are_read_as_a_person_means_them_and_echoed(text, echo):
    assert str(parse(text)) == echo
    assert str(parse(echo)) == echo  # the echo reads back as itself


def test_notes_fraction_is_the_coefficient_not_the_denominator():
    e = parse("3/2x^2")
    assert e.value([[2.0]])[0] == pytest.approx(1.5 * 4)  # (3/2)*x^2, not 3/(2x^2)


@pytest.mark.parametrize(
    "text, variables",
    [("x^2", ("x",)), ("y^2 + 1", ("y",)), ("x + y", ("x", "y")), ("y*x", ("x", "y"))],
)
def test_variables_are_those_used_in_order(text, variables):
    e = parse(text)
    assert e.variables == variables and e.dim == len(variables)


def test_values_are_vectorised_over_a_grid():
    e = parse("3/2x^2 + 1/2y^2")
    X, Y = np.meshgrid(np.linspace(-1, 1, 7), np.linspace(-2, 2, 5))
    C = e.value(np.stack([X, Y], axis=-1))
    assert C.shape == (5, 7)
    np.testing.assert_allclose(C, 1.5 * X**2 + 0.5 * Y**2)
    v, g = e.value_and_gradient(np.stack([X, Y], axis=-1))
    assert v.shape == (5, 7) and g.shape == (5, 7, 2)
    np.testing.assert_allclose(g[..., 0], 3 * X)
    np.testing.assert_allclose(g[..., 1], Y)


def test_notes_example_gradient_is_3_1_at_1_1():
    np.testing.assert_array_equal(parse("3/2x^2 + 1/2y^2").gradient([1.0, 1.0]), [3.0, 1.0])


def test_undefined_values_are_nan_not_errors():
    e = parse("log(x) + sqrt(y)")
    v, g = e.value_and_gradient([[-1.0, 1.0], [1.0, -1.0]])
    assert np.isnan(v).all()


def test_points_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        parse("x + y").value([1.0, 2.0, 3.0])


# --- exact gradients ---------------------------------------------------------------------

# Each function at a point inside its domain and away from kinks.
FUNCTION_POINTS = {
    "sin": 0.7, "cos": 0.7, "tan": 0.4, "exp": 0.3, "log": 1.7, "ln": 1.7, "log2": 1.7,
    "log10": 1.7, "sqrt": 1.7, "cbrt": 1.7, "abs": -0.8, "sign": 0.9, "sinh": 0.6,
    "cosh": 0.6, "tanh": 0.6, "asin": 0.3, "acos": 0.3, "atan": 0.6, "arcsin": 0.3,
    "arccos": 0.3, "arctan": 0.6, "sigmoid": -0.4, "relu": 0.8, "softplus": -0.4,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(set(FUNCTIONS) - {"min", "max"}))
def test_every_function_has_the_exact_derivative(name):
    e = parse(f"{name}(x*y) + x")  # chain rule through a product of two variables
    p = np.array([FUNCTION_POINTS[name], 1.0])
    np.testing.assert_allclose(e.gradient(p), finite_difference(e, p), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "text, point",
    [
        ("x^4 - 3*x^2 + y^2", [0.7, -1.3]),
        ("x^y", [1.3, 0.7]),  # variable base and exponent
        ("2^(x*y)", [0.5, 1.5]),  # constant base
        ("x/y - y/(x^2 + 1)", [0.4, 1.9]),
        ("-(x - y)^3 / (1 + x^2)", [0.3, -0.2]),
        ("max(x^2, y, 0.5) + min(x, -y)", [1.2, 0.4]),
        ("sqrt(x^2 + y^2) * exp(-x)", [0.6, 0.8]),
        ("(1 - x)^2 + 100(y - x^2)^2", [-1.2, 1.0]),
        ("sigmoid(3x - y) * tanh(x + 2y)", [0.1, -0.3]),
    ],
)
def test_gradients_match_finite_differences(text, point):
    e = parse(text)
    np.testing.assert_allclose(e.gradient(point), finite_difference(e, point), rtol=1e-6, atol=1e-7)


def test_gradient_of_a_one_variable_formula_has_one_component():
    e = parse("x^3 - x")
    g = e.gradient(np.array([[2.0], [0.0]]))
    np.testing.assert_allclose(g, [[11.0], [-1.0]])


# Random smooth formulas: every gradient agrees with finite differences.
_leaves = st.sampled_from(["x", "y", "1.5", "2", "0.3", "pi"])


def _combine(children):
    unary = st.tuples(st.sampled_from(["sin", "cos", "tanh", "exp", "sigmoid", "atan"]), children)
    binary = st.tuples(children, st.sampled_from(["+", "-", "*"]), children)
    return st.one_of(
        unary.map(lambda t: f"{t[0]}({t[1]})"),
        binary.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        children.map(lambda c: f"({c})^2"),
        children.map(lambda c: f"1/(1 + ({c})^2)"),
    )


_smooth_formulas = st.recursive(_leaves, _combine, max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(
    text=_smooth_formulas,
    x=st.floats(-1.5, 1.5),
    y=st.floats(-1.5, 1.5),
)
def test_random_smooth_formulas_have_exact_gradients(text, x, y):
    text = text + " + x + y"  # every formula uses both variables
    try:
        e = parse(text)
    except ExpressionError:  # a constant part overflows, such as exp(1.5^8^2)
        assume(False)
    p = np.array([x, y])
    C, g = e.value_and_gradient(p)
    # Finite differences lose all accuracy where C is huge; the gradient must not.
    assume(np.all(np.isfinite(g)) and np.abs(g).max() < 1e6 and abs(C) < 1e6)
    fd = finite_difference(e, p, h=1e-5)
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-5 * (1 + np.abs(g).max()))
    assert str(parse(str(e))) == str(e)
    assert float(e.value(p)) == pytest.approx(float(parse(str(e)).value(p)), rel=1e-12, nan_ok=True)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_any_text_is_read_or_refused_with_an_expression_error(text):
    try:
        e = parse(text)
    except ExpressionError as error:
        assert str(error)
        assert error.position is None or 0 <= error.position <= max(len(text), MAX_LENGTH)
    else:
        assert str(parse(str(e))) == str(e)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="xy0123456789.+-*/^()½, sinexpqrtlogabmcd", max_size=40))
def test_formula_like_text_is_read_or_refused_with_an_expression_error(text):
    try:
        e = parse(text)
    except ExpressionError:
        return
    assert str(parse(str(e))) == str(e)
    with np.errstate(all="ignore"):
        e.value_and_gradient(np.zeros(e.dim))


# --- hostile input -----------------------------------------------------------------------

HOSTILE = [
    "__import__('os').system('echo pwned')",
    "x.__class__.__mro__",
    "().__class__.__bases__[0].__subclasses__()",
    "lambda: 0",
    "[x for x in range(10)]",
    "{x: 1}",
    "open('/etc/passwd')",
    "eval('1')",
    "exec('import os')",
    "globals()",
    "x if y else 1",
    "x; import os",
    "x = 1",
    "x @ y",
    "x % 2",
    "'x'",
    "9**9**9",
    "2^2^2^2^2",
    "x^1e10",
    "x^(10^3)",
    "1e999 * x",
    "1" * 500 + "*x",
    "exp(1000) * x",
    "log(0) + x",
    "(" * 200 + "x" + ")" * 200,
    "-" * 300 + "x",
    "x^" * 100 + "2",
    "sin(" * 100 + "x" + ")" * 100,
    "x" * (MAX_LENGTH + 1),
    "x + " * 250_000 + "x",  # a megabyte
    "(" * 1_000_000,
    "\x00x",
    "x\u202e+y",
    "",
    "   ",
    "2",  # no variable
    "z^2",
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:30]))
def test_hostile_text_gets_a_clear_error_quickly_and_runs_nothing(text, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the formula reader must never run code")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, forbidden)
    started = time.perf_counter()
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    elapsed = time.perf_counter() - started
    monkeypatch.undo()
    assert elapsed < 0.25, f"took {elapsed:.3f} s"
    message = str(caught.value)
    assert 0 < len(message) < 400 and "\n" not in message


def test_the_reader_has_no_eval_exec_or_compile():
    tree = ast.parse(inspect.getsource(expr_module))
    called = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not called & {"eval", "exec", "compile", "__import__", "getattr", "setattr"}


@pytest.mark.parametrize(
    "text, position, match",
    [
        ("3*foo(x)", 2, "unknown name 'foo'"),
        ("x + * 2", 4, r"unexpected '\*'"),
        ("(x + 1", 0, r"never closed"),
        ("x + 1)", 5, r"unmatched '\)'"),
        ("x +", 3, "ends too early"),
        ("9**9**9", 3, "exponent 387420489 is too large"),
        ("x.real", 1, "no attributes"),
        ("sin x", 0, r"write sin\(\.\.\.\)"),
        ("sinx", 0, r"write sin\(x\)"),
        ("x2", 0, r"write x\^2"),
        ("2 3", 2, "without an operator"),
        ("sin(x, y)", 7, r"takes 1 argument"),
        ("max(x)", 3, r"2 or more"),
        ("x, y", 1, "','"),
        ("x + [y]", 4, "round brackets"),
        ("x + sqrt(-1)", 4, r"sqrt\(-1\) is undefined"),
        ("x + 10^300^2", 7, "exponent 90000"),
        ("x*" + "1" * 45, 2, "more than 40 characters"),
    ],
)
def test_errors_point_at_the_offending_part(text, position, match):
    with pytest.raises(ExpressionError, match=match) as caught:
        parse(text)
    assert caught.value.position == position


def test_limits_are_where_they_say():
    parse("x" + "+x" * ((MAX_LENGTH - 1) // 2))  # at the length limit
    with pytest.raises(ExpressionError, match=f"the limit is {MAX_LENGTH}"):
        parse("x" + "+x" * ((MAX_LENGTH + 1) // 2))
    depth = MAX_DEPTH - 2  # leave room for the outer levels
    parse("(" * depth + "x" + ")" * depth)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse("(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1))
    parse("x^100")
    with pytest.raises(ExpressionError, match="exponent 101"):
        parse("x^101")


def test_long_products_and_sums_do_not_recurse():
    e = parse("x" * MAX_LENGTH)  # x*x*...*x, read as a person would
    assert e.value([[1.0]])[0] == 1.0
    assert parse("+".join(["x"] * 500)).gradient([2.0])[0] == 500


def test_error_display_puts_the_caret_under_the_problem():
    text = "3/2x^2 + foo(y)"
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    lines = format_expression_error(text, caught.value).splitlines()
    assert lines[0].startswith("unknown name 'foo'")
    assert lines[1] == "  " + text
    assert lines[2] == "  " + " " * text.index("foo") + "^"


def test_error_display_cuts_long_formulas_around_the_problem():
    text = "x + " * 100 + "@" + " + y" * 100
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    _, shown, caret = format_expression_error(text, caught.value).splitlines()
    assert len(shown) < 80
    assert shown[caret.index("^")] == "@"


def test_square_linear_terms_suggests_the_notes_probable_meaning():
    assert str(square_linear_terms(parse("3/2x^2 + ½y"))) == "3/2*x^2 + 1/2*y^2"
    assert str(square_linear_terms(parse("x - y/2"))) == "x^2 - y^2/2"
    assert square_linear_terms(parse("x^2 + y^2")) is None


def test_constants_are_exact():
    assert parse("pi*x").value([[1.0]])[0] == math.pi
    assert parse("e^x").value([[1.0]])[0] == pytest.approx(math.e)
