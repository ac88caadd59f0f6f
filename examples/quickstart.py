"""Quick start: fit early-exit policies on validation exits, evaluate them on test exits.

Runs on the cached exits of a real multi-exit model shipped with eeopt (default: a 7-exit 1-D CNN
on MNIST-1D; ``eeopt datasets`` lists them all).

    python examples/quickstart.py [--dataset mnist1d] [--fast]
"""

from __future__ import annotations

import argparse

import numpy as np

import eeopt
from eeopt import datasets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist1d", choices=datasets.names())
    parser.add_argument("--fast", action="store_true", help="small and quick (for CI)")
    args = parser.parse_args()
    val, test = datasets.load_both(args.dataset, n_samples=1_000 if args.fast else None)
    print(f"validation: {val}\ntest:       {test}")
    print("per-exit test accuracy:", np.round(test.exit_accuracy, 4).tolist())
    budget = float(val.costs[0] + 0.5 * (val.costs[-1] - val.costs[0]))
    print(f"\n{'method':10s} {'target':22s} {'test acc':>8s} {'mean cost':>12s} {'speedup':>8s}")
    for method in eeopt.method_names():
        if method in ("msdnet", "eenet"):  # budget-only methods
            options = {"budget": budget}
        else:
            options = {}
        try:
            policy = eeopt.fit(val, method=method, **options)
        except ValueError as exc:
            print(f"{method:10s} skipped: {exc}")
            continue
        r = policy.evaluate(test)
        target = f"budget={budget:.4g}" if "budget" in options else policy.fit_info_["target"]
        print(f"{method:10s} {target:22s} {r.accuracy:8.4f} {r.mean_cost:12.5g} {r.speedup:7.2f}x")


if __name__ == "__main__":
    main()
