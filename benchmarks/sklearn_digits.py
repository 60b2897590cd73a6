"""scikit-learn's 8x8 digits: DigitnetClassifier() against MLPClassifier() on the same folds.

Loads ``sklearn.datasets.load_digits`` (1,797 images of 8x8 pixels, values 0-16), cuts it
into 5 stratified folds (shuffled, seed 0), and for each fold fits, on the same training
rows, DigitnetClassifier with its defaults (and, to show why they are what they are, with
the video's 16,16 hidden layers and without standardisation) and MLPClassifier with its defaults (except
``max_iter``, raised so that it converges instead of warning), then reports each fold's
test accuracy and fit time, and the means, as a Markdown table.

Run:  python benchmarks/sklearn_digits.py [--folds 5] [--max-iter 2000]
      (pip install 'digitnet[sklearn]'; times need an idle machine)
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier

from digitnet.sklearn import DigitnetClassifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5, help="how many folds to run (of 5) [5]")
    ap.add_argument("--max-iter", type=int, default=2000, help="MLPClassifier's max_iter [2000]")
    args = ap.parse_args()
    X, y = load_digits(return_X_y=True)
    models = {
        "DigitnetClassifier()": lambda: DigitnetClassifier(),
        # The video's 16,16 hidden layers: why the default has one layer of 32 instead.
        "DigitnetClassifier(hidden=(16, 16))": lambda: DigitnetClassifier(hidden=(16, 16)),
        # Without standardisation: raw pixel values 0-16 with the video's eta 3.0.
        "DigitnetClassifier(standardize=False)": lambda: DigitnetClassifier(standardize=False),
        f"MLPClassifier(max_iter={args.max_iter})": lambda: MLPClassifier(max_iter=args.max_iter, random_state=0),
    }
    rows: dict[str, list[tuple[float, float, int]]] = {name: [] for name in models}
    folds = StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)
    for k, (tr, te) in enumerate(folds):
        if k >= args.folds:
            break
        for name, make in models.items():
            model = make()
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                model.fit(X[tr], y[tr])
            seconds = time.perf_counter() - start
            if any(issubclass(w.category, ConvergenceWarning) for w in caught):
                name_shown = f"{name} (did not converge: raise --max-iter)"
                print(f"warning: {name_shown} in fold {k + 1}")
            acc = float((model.predict(X[te]) == y[te]).mean())
            rows[name].append((acc, seconds, int(model.n_iter_)))
    n = len(next(iter(rows.values())))
    print(f"load_digits, {n} of 5 stratified folds (shuffled, seed 0); test accuracy per fold, fit time\n")
    print("| model | " + " | ".join(f"fold {i + 1}" for i in range(n)) + " | mean accuracy | mean fit time | epochs |")
    print("|---|" + "---:|" * (n + 3))
    for name, r in rows.items():
        accs = [a for a, _, _ in r]
        print(f"| {name} | " + " | ".join(f"{a:.4f}" for a in accs)
              + f" | **{statistics.mean(accs):.4f}** | {statistics.mean(s for _, s, _ in r):.2f} s | "
              + f"{int(np.median([e for _, _, e in r]))} |")


if __name__ == "__main__":
    main()
