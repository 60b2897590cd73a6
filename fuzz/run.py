"""A longer fuzzing run of digitnet's readers (IDX, gzip, model files, images).

Model files are fuzzed two ways: byte mutations, and structure-aware crafted metadata
under a recomputed, valid digest (one thirtieth as many inputs as the other readers, at least 50).

It runs the property-based tests of tests/test_fuzz.py with many more generated inputs
per reader and prints how many inputs each reader got and what was found (a failing
property prints the smallest input that breaks it).

    python fuzz/run.py --examples 50000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

root = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=20000, help="generated inputs per reader (default 20000)")
    args = ap.parse_args()
    env = {**os.environ, "DIGITNET_FUZZ_EXAMPLES": str(args.examples)}
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                        str(root / "tests" / "test_fuzz.py")], env=env)
    print(f"fuzzing took {time.perf_counter() - t:.0f} s; "
          + ("nothing found: every input gave a correct result or digitnet's own error" if r.returncode == 0
             else "FOUND a failing input: see above"))
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
