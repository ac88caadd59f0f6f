"""BEEM: fit BEEM-A and BEEM-C on validation exits, evaluate on test exits, check Theorem 3.1.

    python examples/beem_example.py [--dataset mnist1d] [--fast]

Runs on the cached exits of a real multi-exit model shipped with eeopt (default: MNIST-1D).
"""

from __future__ import annotations

import argparse

import numpy as np

import eeopt
from eeopt import datasets
from eeopt.theory import theorem_3_1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist1d", choices=datasets.names())
    parser.add_argument("--fast", action="store_true", help="small and quick (for CI)")
    args = parser.parse_args()
    val, test = datasets.load_both(args.dataset, n_samples=1_500 if args.fast else None)
    print(
        f"BEEM on {args.dataset}: fitted on {val.n_samples} validation samples, evaluated on "
        f"{test.n_samples} test samples"
    )
    budget = float(val.costs[0] + 0.4 * (val.costs[-1] - val.costs[0]))
    settings = [
        ("exit-error (paper)", {}),
        ("accuracy", {"target": "accuracy"}),
        (f"budget={budget:g}", {"budget": budget}),
        ("exit-error, global", {"thresholds": "global"}),
        ("exit-error, zero", {"reset": "zero"}),
    ]
    print(
        f"\n{'method':7s} {'target':22s} {'level':>7s} {'val acc':>8s} {'test acc':>8s} "
        f"{'mean cost':>9s} {'speedup':>8s}"
    )
    final = test.exit_accuracy[-1]
    print(
        f"{'final':7s} {'(no early exit)':22s} {'':>7s} {val.exit_accuracy[-1]:8.4f} "
        f"{final:8.4f} {test.costs[-1]:9.4g} {1.0:7.2f}x"
    )
    policies = {}
    for method in ("beem-a", "beem-c"):
        for label, options in settings:
            policy = eeopt.fit(val, method=method, **options)
            result = policy.evaluate(test)
            info = policy.fit_info_
            print(
                f"{method:7s} {label:22s} {info['level']:7.4f} {info['fit_accuracy']:8.4f} "
                f"{result.accuracy:8.4f} {result.mean_cost:9.4g} {result.speedup:7.2f}x"
            )
            policies[method, label] = policy

    policy = policies["beem-a", "exit-error (paper)"]
    print("\nBEEM-A (paper's rule) thresholds:", np.round(policy.thresholds_, 4).tolist())
    print("\nOn the validation data it was fitted on:")
    print(theorem_3_1(policy, val))
    print("\nOn the test data:")
    print(theorem_3_1(policy, test))


if __name__ == "__main__":
    main()
