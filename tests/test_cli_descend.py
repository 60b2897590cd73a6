"""``digitnet descend`` through click's test runner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from digitnet.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, ["descend", *args], catch_exceptions=False)

    return invoke


def test_notes_example_is_echoed_and_explained(run):
    result = run("3/2x^2 + 1/2y^2", "--start", "1,1")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Read as: C(x, y) = 3/2*x^2 + 1/2*y^2" in out
    assert "dC/dx = 3, dC/dy = 1: x matters 3x as much here" in out
    assert "x 75%, y 25%" in out
    assert "Stopped: converged after" in out
    assert "Final: (x, y) = (" in out
    table = [line.split() for line in out.splitlines() if line[:8].strip().isdigit()]
    assert table[0] == ["0", "1", "1", "2", "3.162"]  # step, x, y, C, |grad C|
    assert 8 <= len(table) <= 12  # about ten rows by default


def test_every_prints_every_kth_step(run):
    result = run("x^2", "--eta", "0.25", "--every", "1")
    rows = [line for line in result.output.splitlines() if line[:8].strip().isdigit()]
    steps = [int(row.split()[0]) for row in rows]
    assert steps == list(range(len(steps)))
    assert "x = 1, C = 1" in result.output


def test_notes_literal_formula_stops_unbounded_with_a_hint(run):
    result = run("3/2x^2 + ½y")
    assert result.exit_code == 0, result.output
    assert "Read as: C(x, y) = 3/2*x^2 + 1/2*y" in result.output
    assert "Stopped: unbounded" in result.output
    assert "still falling as y decreases" in result.output
    assert "C = 3/2*x^2 + 1/2*y^2 has a minimum near (x, y) = (0, 0)" in result.output


def test_json_has_the_documented_fields(run):
    result = run("3/2x^2 + 1/2y^2", "--start", "1,1", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["expression"] == "3/2*x^2 + 1/2*y^2"
    assert report["stop_reason"] == "converged"
    assert report["gradient_at_start"] == [3.0, 1.0]
    assert report["gradient_shares"] == [0.75, 0.25]
    assert report["final"] == pytest.approx([0.0, 0.0], abs=1e-5)
    assert report["value"] == pytest.approx(0.0, abs=1e-10)
    assert isinstance(report["steps"], int)
    assert len(report["path"]) == len(report["values"]) == report["steps"] + 1
    assert report["hint"] is None and report["out"] is None


def test_json_unbounded_run_is_valid_json_with_a_hint(run):
    report = json.loads(run("3/2x^2 + ½y", "--json").output)
    assert report["stop_reason"] == "unbounded"
    assert report["hint"]["expression"] == "3/2*x^2 + 1/2*y^2"


def test_json_several_starts_lists_the_minima_and_their_starts(run):
    result = run("x**4 - 3*x**2 + y**2", "--starts", "12", "--seed", "3", "--eta", "0.05", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert len(report["runs"]) == 12
    assert len(report["minima"]) == 2
    xs = sorted(m["point"][0] for m in report["minima"])
    assert xs == pytest.approx([-(1.5**0.5), 1.5**0.5], abs=1e-5)
    starts = sorted(i for m in report["minima"] for i in m["starts"])
    assert starts == list(range(12))
    for m in report["minima"]:
        assert [report["runs"][i]["start"] for i in m["starts"]] == m["start_points"]
    assert report["stop_counts"]["converged"] == 12
    assert report["seed"] == 3 and report["box"] == [-2.0, 2.0]
    for key in ("stop_reason", "final", "value", "gradient_at_start", "steps"):
        assert key in report


def test_several_starts_report_which_minimum_each_found(run):
    result = run("x^4 - 3x^2 + x + y^2", "--starts", "20")
    assert result.exit_code == 0, result.output
    assert "2 distinct local minima found:" in result.output
    assert "ended in a higher local minimum" in result.output
    assert "where you end depends on where you start" in result.output


def test_repeated_start_runs_each_one(run):
    result = run("x^4 - 3x^2", "--start=-1", "--start", "1", "--eta", "0.05")
    assert "2 starts given with --start" in result.output
    assert "Both minima share the lowest value C = -2.25" in result.output


def test_one_variable_png(run, tmp_path):
    out = tmp_path / "curve.png"
    result = run("x^4 - 3x^2 + x", "--start", "2", "--eta", "0.02", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"Wrote {out}" in result.output
    data = out.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 15_000


def test_two_variable_png_with_surface(run, tmp_path):
    out = tmp_path / "map.png"
    result = run("x**4 - 3*x**2 + y**2", "--starts", "6", "--out", str(out), "--surface", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["out"] == str(out)
    data = out.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 30_000
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]


def test_unwritable_png_is_a_one_line_error(run, tmp_path):
    result = run("x^2", "--out", str(tmp_path / "no" / "such" / "dir.png"))
    assert result.exit_code == 1
    assert result.output.startswith("Error: Cannot save to") and "Create it first" in result.output
    assert result.output.count("\n") == 1


def test_formula_errors_show_a_caret_under_the_problem(run):
    result = run("3/2x^2 + foo(y)")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("Error: unknown name 'foo'")
    assert lines[1] == "  3/2x^2 + foo(y)"
    assert lines[2] == "  " + " " * 9 + "^"


@pytest.mark.parametrize(
    "formula",
    [
        "__import__('os').system('echo pwned')",
        "x.__class__",
        "lambda: 0",
        "[x for x in y]",
        "9**9**9",
        "(" * 500 + "x" + ")" * 500,
        "x" * 1_000_000,
    ],
    ids=lambda f: repr(f[:20]),
)
def test_hostile_formulas_are_refused(run, formula):
    result = run(formula)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert "pwned" not in result.output.splitlines()[0]
    assert len(result.output) < 1000  # a megabyte formula is not echoed whole


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["x^2", "--start", "1", "--starts", "3"], 1, "either --start or --starts"),
        (["x^2 + y^2", "--start", "1"], 1, "expected 2 numbers as X,Y"),
        (["x^2", "--start", "a"], 1, "expected 1 number as X"),
        (["x^2", "--starts", "3", "--box", "2"], 1, "expected 2 numbers as LO,HI"),
        (["x^2", "--eta", "-1"], 1, "Error: The 'eta' parameter must be > 0"),
        (["x^2", "--momentum", "1"], 1, "'momentum' parameter must be in [0, 1)"),
        (["log(x)", "--start=-1"], 1, "undefined at the start (x = -1)"),
    ],
)
def test_bad_options_are_clear_errors(run, args, code, message):
    result = run(*args)
    assert result.exit_code == code
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("Error: ")


def test_help_explains_every_option_with_an_example(run):
    result = run("--help")
    assert result.exit_code == 0
    for option in ("--start", "--starts", "--box", "--seed", "--eta", "--steps", "--momentum",
                   "--tol", "--every", "--out", "--surface", "--json"):  # fmt: skip
        assert option in result.output
    assert 'digitnet descend "3/2x^2 + 1/2y^2" --start 1,1' in result.output


def test_an_oscillating_run_is_told_its_step_is_too_large(run):
    result = run("x^2", "--eta", "1")
    assert result.exit_code == 0, result.output
    assert "Stopped: oscillating after" in result.output
    assert "try eta = 0.5" in result.output and "larger eta" not in result.output


def test_a_saddle_is_reported_as_one(run):
    result = run("x^2 - y^2", "--start", "1,0")
    assert "Stopped: converged after" in result.output
    assert "a saddle point, not a minimum" in result.output


def test_stopped_does_not_stutter(run):
    for args in (("sqrt(x)",), ("x^2", "--steps", "3")):
        result = run(*args)
        assert "Stopped: stopped" not in result.output and "Stopped: " in result.output


def test_a_sum_of_500_terms_runs(run):
    result = run("+".join(["x"] * 500))
    assert result.exit_code == 0, result.output
    assert "Stopped: unbounded" in result.output and "characters long" not in result.output
