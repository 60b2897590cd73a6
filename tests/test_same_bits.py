"""benchmarks/same_bits.py: the comparison finds any differing byte, and bad flags get one line."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import same_bits  # noqa: E402


def test_compare_finds_a_differing_byte_or_length():
    a = [np.arange(8, dtype=np.uint8), np.zeros(4, np.uint8), np.ones(3, np.uint8)]
    b = [a[0].copy(), a[1].copy(), np.ones(4, np.uint8)]
    b[1][2] = 1
    assert same_bits.compare(a, b, ["x", "y", "z"]) == ["y", "z"]
    assert same_bits.compare(a, [v.copy() for v in a], ["x", "y", "z"]) == []


def test_weights_as_bytes_tell_minus_zero_from_zero():
    """The weights are compared as bytes: -0.0 and 0.0 (equal as numbers) differ."""
    a = np.frombuffer(np.array([0.0], np.float32).tobytes(), np.uint8)
    b = np.frombuffer(np.array([-0.0], np.float32).tobytes(), np.uint8)
    assert same_bits.compare([a], [b], ["w"]) == ["w"]


def test_every_configuration_has_its_own_name():
    names = [same_bits.name_of(c) for c in same_bits.configurations(presets=True, quick=False)]
    assert len(names) == len(set(names)) == 48


@pytest.mark.parametrize("argv, says", [([], "--before SRC is required"),
                                        (["--before", "/nonexistent/src"], "not a src folder")])
def test_bad_flags_get_one_line(argv, says):
    with pytest.raises(SystemExit) as e:
        same_bits.main(argv)
    assert str(e.value).startswith("Error:") and says in str(e.value) and "\n" not in str(e.value)
