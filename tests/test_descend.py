"""Gradient descent in the playground: steps by hand, the four ways a run ends, several
starts and the distinct minima they find, and the pictures."""

from __future__ import annotations

import time

import numpy as np
import pytest

from digitnet.errors import ConfigError, ExpressionError, FileWriteError
from digitnet.playground import (
    bounded_alternative,
    descend,
    descend_many,
    describe_gradient,
    explain_stop,
    gradient_shares,
    parse,
    plot_descent,
    random_starts,
    save_png,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --- the notes' example --------------------------------------------------------------------


def test_notes_example_x_matters_three_times_as_much_at_1_1():
    run = descend("3/2x^2 + 1/2y^2", (1, 1))
    np.testing.assert_array_equal(run.gradient_at_start, [3.0, 1.0])
    assert describe_gradient(run.gradient_at_start, run.variables) == (
        "dC/dx = 3, dC/dy = 1: x matters 3x as much here"
    )
    np.testing.assert_allclose(gradient_shares(run.gradient_at_start), [0.75, 0.25])
    assert run.stop_reason == "converged"
    np.testing.assert_allclose(run.final, [0.0, 0.0], atol=1e-5)
    assert np.linalg.norm(run.gradients[-1]) < 1e-6


def test_result_holds_the_whole_path_as_arrays():
    run = descend("3/2x^2 + 1/2y^2", (1, 1), steps=50)
    assert run.path.shape == (run.steps + 1, 2)
    assert run.values.shape == (run.steps + 1,)
    assert run.gradients.shape == (run.steps + 1, 2)
    e = parse("3/2x^2 + 1/2y^2")
    np.testing.assert_allclose(run.values, e.value(run.path))
    np.testing.assert_allclose(run.gradients, e.gradient(run.path))
    assert run.value == run.values[-1] and run.final is not None
    assert np.all(np.diff(run.values) < 0)  # small steps only go downhill


def test_one_step_worked_by_hand():
    run = descend("3/2x^2 + 1/2y^2", (1, 1), eta=0.1, steps=1)
    # p1 = p0 - eta * grad C(p0) = (1, 1) - 0.1 * (3, 1)
    np.testing.assert_allclose(run.path, [[1.0, 1.0], [0.7, 0.9]])
    np.testing.assert_allclose(run.values, [2.0, 1.5 * 0.49 + 0.5 * 0.81])
    assert run.stop_reason == "max_steps" and run.steps == 1


def test_two_momentum_steps_worked_by_hand():
    run = descend("x^2", 1.0, eta=0.1, momentum=0.5, steps=2)
    # v1 = -0.1 * 2 = -0.2, x1 = 0.8; v2 = 0.5 * -0.2 - 0.1 * 1.6 = -0.26, x2 = 0.54
    np.testing.assert_allclose(run.path[:, 0], [1.0, 0.8, 0.54])


def test_one_variable_slope_says_which_way_to_step():
    assert "downhill is to the left" in describe_gradient([2.0], ("x",))
    assert "downhill is to the right" in describe_gradient([-2.0], ("x",))
    run = descend("(x - 3)^2", 0.0)
    assert run.path[1, 0] > run.path[0, 0]  # negative slope: step right
    assert run.final[0] == pytest.approx(3.0, abs=1e-5)


@pytest.mark.parametrize(
    "gradient, phrase",
    [
        ([1.0, 3.0], "y matters 3x as much here"),
        ([-12.5, 1.0], "x matters 12x as much here"),
        ([2.0, 2.02], "x and y matter about equally here"),
        ([0.0, 5.0], "only y matters here"),
        ([0.0, 0.0], "the gradient is zero"),
    ],
)
def test_gradient_importance_in_words(gradient, phrase):
    assert phrase in describe_gradient(gradient, ("x", "y"))


# --- why a run stops -----------------------------------------------------------------------


def test_notes_literal_formula_is_unbounded_and_stops_quickly():
    started = time.perf_counter()
    run = descend("3/2x^2 + ½y", (1, 1))
    assert time.perf_counter() - started < 1.0
    assert run.stop_reason == "unbounded"
    assert run.steps < 100
    assert run.final[1] < 0 and run.values[-1] < run.values[0]
    assert "as y decreases" in explain_stop(run)


def test_the_notes_probable_meaning_is_offered_for_the_literal_formula():
    other = bounded_alternative(descend("3/2x^2 + ½y", (1, 1)))
    assert other.expression == "3/2*x^2 + 1/2*y^2"
    assert other.stop_reason == "converged"
    np.testing.assert_allclose(other.final, [0.0, 0.0], atol=1e-5)
    assert bounded_alternative(descend("3/2x^2 + 1/2y^2", (1, 1))) is None
    assert bounded_alternative(descend("-x^2", 1.0)) is None  # nothing linear to square


@pytest.mark.parametrize(
    "formula, start, kwargs",
    [
        ("x", 0.0, {}),
        ("-x^2", 1.0, {}),
        ("x^2 - y^3", (0.5, -0.5), {}),
        ("3/2x^2 + 1/2y", (1, 1), {"momentum": 0.9}),
        ("3/2x^2 + 1/2y", (1, 1), {"eta": 0.01}),
    ],
)
def test_functions_without_a_minimum_are_unbounded(formula, start, kwargs):
    assert descend(formula, start, **kwargs).stop_reason == "unbounded"


@pytest.mark.parametrize("eta", [1.01, 1.5, 3.0])
def test_too_large_a_step_diverges(eta):
    run = descend("x^2", 1.0, eta=eta)  # the curvature 2 allows eta < 1
    assert run.stop_reason == "diverged"
    assert run.values[-1] > run.values[0]
    assert "too large" in explain_stop(run)


def test_a_step_inside_the_curvature_limit_converges():
    assert descend("x^2", 1.0, eta=0.9).stop_reason == "converged"


@pytest.mark.parametrize(
    "formula, start",
    [
        ("(x - 1000)^2/1e6", 0.0),  # a far minimum: slow, but not unbounded
        ("abs(x - 100)", 0.0),  # falls linearly for 100 units, then rises
        ("exp(-x)", 0.0),  # bounded below, no minimum: never "converged"
        ("x^4 - 3x^2", 1e-6),  # leaving a hilltop: C falls faster and faster, for a while
    ],
)
def test_slow_or_far_minima_are_not_called_unbounded(formula, start):
    run = descend(formula, start, eta=0.01)
    assert run.stop_reason in ("max_steps", "converged")


def test_leaving_the_domain_is_undefined():
    run = descend("sqrt(x)", 1.0)
    assert run.stop_reason == "undefined"
    assert np.isfinite(run.values).all()  # the undefined point is not on the path
    with pytest.raises(ExpressionError, match=r"undefined at the start \(x = -1\)"):
        descend("log(x)", -1.0)


def test_a_far_start_is_not_mistaken_for_a_blow_up():
    run = descend("x^2 + y^2", (1e14, 1.0), steps=5000)
    assert run.stop_reason == "converged"


def test_starting_on_a_minimum_converges_at_once():
    run = descend("x^2 + y^2", (0, 0))
    assert run.stop_reason == "converged" and run.steps == 0


# --- several starts ------------------------------------------------------------------------


def test_several_starts_find_both_minima_of_the_double_well():
    starts = random_starts(np.random.default_rng(0), 20, 2)
    result = descend_many("x**4 - 3*x**2 + y**2", starts, eta=0.05)
    assert len(result.runs) == 20
    assert all(run.stop_reason == "converged" for run in result.runs)
    assert len(result.minima) == 2
    points = np.array([m.point for m in result.minima])
    np.testing.assert_allclose(np.sort(points[:, 0]), [-np.sqrt(1.5), np.sqrt(1.5)], atol=1e-5)
    np.testing.assert_allclose(points[:, 1], 0.0, atol=1e-5)
    for m in result.minima:
        assert m.value == pytest.approx(-2.25)
        # with small steps each start rolls into the well on its own side
        assert all(np.sign(starts[i, 0]) == np.sign(m.point[0]) for i in m.starts)
    found = sorted(i for m in result.minima for i in m.starts)
    assert found == list(range(20))


def test_the_global_minimum_is_found_from_only_some_starts():
    starts = random_starts(np.random.default_rng(1), 30, 2)
    result = descend_many("x^4 - 3x^2 + x + y^2", starts, eta=0.05)
    assert len(result.minima) == 2
    lowest, higher = result.minima
    assert lowest.value < higher.value  # lowest first
    assert lowest.point[0] < 0 < higher.point[0]
    assert lowest.starts and higher.starts
    assert result.best in lowest.starts


def test_a_flat_minimum_reached_from_both_sides_is_one_minimum():
    result = descend_many("x^4", [[-1.0], [0.5], [1.0]], steps=5000, tol=1e-4)
    assert [run.stop_reason for run in result.runs] == ["converged"] * 3
    ends = [run.final[0] for run in result.runs]
    assert min(ends) < 0 < max(ends)  # not the same point, but the same minimum
    assert len(result.minima) == 1 and result.minima[0].starts == (0, 1, 2)


def test_a_saddle_is_not_counted_as_a_minimum():
    result = descend_many("x^4 - 3x^2 + y^2", [[0.0, 1.0], [1.0, 1.0]])
    assert result.runs[0].stop_reason == "converged"  # stuck on the saddle at (0, 0)
    np.testing.assert_allclose(result.runs[0].final, [0.0, 0.0], atol=1e-5)
    assert [m.starts for m in result.minima] == [(1,)]


def test_starts_run_together_but_stop_on_their_own():
    result = descend_many("x^2", [[1.0], [0.0], [-1.0]], eta=0.1)
    singles = [descend("x^2", s, eta=0.1) for s in (1.0, 0.0, -1.0)]
    for run, single in zip(result.runs, singles):
        np.testing.assert_array_equal(run.path, single.path)
    assert result.stop_counts()["converged"] == 3


def test_random_starts_are_reproducible_and_inside_the_box():
    a = random_starts(np.random.default_rng(7), 50, 2, box=(-3, 1))
    b = random_starts(np.random.default_rng(7), 50, 2, box=(-3, 1))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 2) and a.min() >= -3 and a.max() <= 1


# --- misuse -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eta": 0.0}, r"'eta' parameter must be > 0\. Got 0\.0 instead"),
        ({"eta": float("nan")}, "'eta'"),
        ({"momentum": 1.0}, r"'momentum' parameter must be in \[0, 1\)"),
        ({"steps": 0}, "'steps' parameter must be 1 to"),
        ({"tol": -1.0}, "'tol' parameter must be > 0"),
    ],
)
def test_settings_out_of_range_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        descend("x^2", 1.0, **kwargs)


def test_a_start_of_the_wrong_size_is_refused():
    with pytest.raises(ConfigError, match=r"needs 2 coordinates \(x,y\)\. Got 1 instead"):
        descend("x^2 + y^2", 1.0)
    with pytest.raises(ConfigError, match="box"):
        random_starts(np.random.default_rng(0), 3, 2, box=(1, -1))
    with pytest.raises(ConfigError, match="too many points"):
        descend_many("x^2", np.zeros((1000, 1)), steps=100_000)


# --- pictures -------------------------------------------------------------------------------


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 15_000  # a real picture, not an empty canvas
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_one_variable_picture_is_the_curve_with_the_steps(tmp_path):
    run = descend("x^4 - 3x^2 + x", 2.0, eta=0.02)
    figure = plot_descent("x^4 - 3x^2 + x", run)
    ax = figure.axes[0]
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "C(x)"
    assert "x^4 - 3*x^2 + x" in ax.get_title()
    assert len(figure.axes) == 2  # the plot and its colour bar
    _assert_png(save_png(figure, tmp_path / "curve.png"))


def test_two_variable_picture_is_a_contour_map_with_every_path(tmp_path):
    result = descend_many("x**4 - 3*x**2 + y**2", random_starts(np.random.default_rng(0), 8, 2))
    figure = plot_descent("x**4 - 3*x**2 + y**2", result, surface=True, resolution=80)
    ax = figure.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")
    assert len(figure.axes) == 3  # the map, its colour bar, the surface
    assert figure.axes[2].name == "3d"
    _assert_png(save_png(figure, tmp_path / "map.png"))


def test_a_failed_save_leaves_nothing_behind(tmp_path):
    figure = plot_descent("x^2", descend("x^2", 1.0))
    target = tmp_path / "missing-folder" / "curve.png"
    with pytest.raises(FileWriteError, match="does not exist"):  # one clear error, as for every file written
        save_png(figure, target)
    assert list(tmp_path.iterdir()) == []


# --- oscillation, saddles and the wording of the stop (issue 16), long sums (issue 15) ------


def test_a_period_two_bounce_is_oscillating_with_an_eta_to_try():
    run = descend("x^2", 1.0, eta=1.0)  # 1, -1, 1, -1, ...: C = 1 forever
    assert run.stop_reason == "oscillating"
    assert run.steps < 100  # found early, not after the whole step budget
    text = explain_stop(run)
    assert "too large" in text and "larger eta" not in text
    assert "try eta = 0.5" in text and "below 2 / curvature = 1" in text


def test_a_converging_zigzag_is_not_oscillating():
    run = descend("x^2", 1.0, eta=0.99, steps=5000)  # bounces, but C falls every two steps
    assert run.stop_reason == "converged" and run.stationary == "minimum"


@pytest.mark.parametrize(
    "formula, start, down",
    [("x^2 - y^2", (1, 0), "along y"), ("x*y", (1, 1), "along (0.7071, -0.7071)")],
)
def test_a_saddle_is_not_called_a_minimum(formula, start, down):
    run = descend(formula, start)
    assert run.stop_reason == "converged" and run.stationary == "saddle"
    text = explain_stop(run)
    assert "a saddle point, not a minimum" in text and down in text


def test_a_maximum_and_a_minimum_are_told_apart():
    top = descend("-x^2 - y^2", (0, 0))
    assert top.stationary == "maximum" and "a maximum, not a minimum" in explain_stop(top)
    bottom = descend("3/2x^2 + 1/2y^2", (1, 1))
    assert bottom.stationary == "minimum" and "not a minimum" not in explain_stop(bottom)
    np.testing.assert_allclose(bottom.curvature, [1.0, 3.0], rtol=1e-6)


@pytest.mark.parametrize(
    "formula, kwargs",
    [("x^2", {"steps": 3}), ("sqrt(x)", {}), ("x^2", {"eta": 1.0}), ("x^2", {"eta": 2.0}), ("x", {})],
)
def test_the_stop_sentence_never_stutters(formula, kwargs):
    text = explain_stop(descend(formula, 1.0, **kwargs))
    assert not text.lower().startswith("stopped")  # the CLI prints it after "Stopped: "


def test_the_hint_for_a_long_sum_does_not_reread_its_expanded_echo():
    formula = "+".join(["x"] * 500)  # 999 characters, under the limit; the echo is 1,997
    expr = parse(formula)
    run = descend(expr, 1.0)
    assert run.stop_reason == "unbounded" and len(run.expression) > 1000
    assert bounded_alternative(run, expr) is None  # 500 x^2 diverges at eta 0.1: no hint, no error
    assert bounded_alternative(run) is None
    other = bounded_alternative(descend(expr, 1.0, eta=1e-4), expr)
    assert other is not None and other.stop_reason == "converged"
