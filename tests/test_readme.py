"""The README's Python examples run as written (docs that match the code)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)  # the examples save a model file
    scope: dict = {}
    exec(compile("\n".join(blocks), str(README), "exec"), scope)
    assert scope["net"].n_params == 13002
    assert scope["run"].stop_reason == "converged"
    assert list(scope["run"].gradient_at_start) == [3.0, 1.0]
    assert (tmp_path / "net.safetensors").exists()


def _sh_blocks() -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)]


def test_quick_start_commands_use_separate_environments():
    """The test install adds Numba; in the same venv it would change what `digitnet train` gives."""
    train, tests = _sh_blocks()[:2]
    assert train.endswith("digitnet train") and tests.endswith("-m pytest")
    venv = lambda cmd: re.match(r"python3 -m venv (\S+) &&", cmd).group(1)  # noqa: E731
    assert venv(train) != venv(tests)
    assert f"{venv(tests)}/bin/" in tests and f"{venv(train)}/bin/" not in tests


def test_ci_runs_exactly_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    tests = _sh_blocks()[1]
    assert tests in ci


def test_show_default_picture_name_is_said_the_same_way_as_in_help():
    from digitnet.cli.show import DEFAULT_OUT

    text = " ".join(README.read_text().split())
    assert "NAME-COMMAND.png in the current directory, NAME being the model file's name without .safetensors" in text
    assert DEFAULT_OUT.startswith("NAME-COMMAND.png in the current directory, NAME being the model file's name "
                                  "without .safetensors")
    assert "digitnet-model-weights.png" in text and "digitnet-model-weights.png" in DEFAULT_OUT


def test_measured_tables_are_generated_regions():
    """benchmarks/readme_numbers.py rewrites these; hand edits would drift again."""
    text = README.read_text()
    for name in ("show", "robustness"):
        region = re.search(rf"<!-- numbers:{name} -->\n(.*?)<!-- /numbers -->", text, re.S)
        assert region, name
        assert "benchmarks/readme_numbers.py" in region.group(1)
