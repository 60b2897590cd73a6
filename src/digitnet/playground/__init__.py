"""The gradient-descent playground: descend any formula in x, or in x and y, and see it.

The notes explain gradient descent on small functions before applying it to the network:

>>> from digitnet.playground import descend, describe_gradient
>>> run = descend("3/2x^2 + 1/2y^2", start=(1, 1))
>>> run.stop_reason, run.steps
('converged', 132)
>>> describe_gradient(run.gradient_at_start, run.variables)
'dC/dx = 3, dC/dy = 1: x matters 3x as much here'

Formulas are untrusted text read by a whitelist parser (:mod:`.expr`), descent and the
grouping of minima are in :mod:`.descent`, and pictures in :mod:`.plot`.
"""

from digitnet.playground import descent as _descent
from digitnet.playground.descent import *  # noqa: F403 (descent, minima, explanations: its __all__)
from digitnet.playground.expr import (
    FUNCTIONS,
    Expression,
    format_expression_error,
    parse,
    square_linear_terms,
)
from digitnet.playground.plot import plot_descent, save_png

__all__ = [
    *_descent.__all__,
    "FUNCTIONS",
    "Expression",
    "format_expression_error",
    "parse",
    "plot_descent",
    "save_png",
    "square_linear_terms",
]
