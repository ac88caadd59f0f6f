"""BEEM: fit BEEM-A and BEEM-C on validation exits, evaluate on test exits, check Theorem 3.1.

    python examples/beem_example.py [--dataset mnist1d] [--fast]

Uses a shipped dataset when ``eeopt.datasets`` has it; otherwise a generated multi-exit set.
"""

from __future__ import annotations

import argparse

import numpy as np

import eeopt
from eeopt.theory import theorem_3_1


def generated(n: int, seed: int) -> eeopt.ExitData:
    """A synthetic 6-exit, 10-class model whose exits get better with depth.

    Each sample has a difficulty; exit k's logits favour the true class by a margin that grows
    with k and shrinks with difficulty, plus noise: easy samples are right early, hard ones late
    or never, as in a real network.
    """
    # TODO: switch to the shipped MNIST-1D exits once eeopt.datasets is on main
    # (datasets.load("mnist1d", "val") / "test"); load() below already tries it first.
    rng = np.random.default_rng(seed)
    n_exits, n_classes = 6, 10
    labels = rng.integers(0, n_classes, size=n)
    difficulty = rng.gamma(2.0, 0.6, size=n)
    logits = rng.normal(size=(n, n_exits, n_classes))
    strength = np.linspace(0.8, 4.0, n_exits)
    logits[np.arange(n), :, labels] += strength[None, :] / (0.3 + difficulty[:, None])
    costs = np.cumsum(np.full(n_exits, 1.0))  # equal-cost blocks, as the paper's layer count
    return eeopt.ExitData.from_logits(logits, labels, costs=costs, metadata={"name": "generated"})


def load(name: str, fast: bool) -> tuple[eeopt.ExitData, eeopt.ExitData]:
    try:
        from eeopt import datasets

        if name in datasets.names():
            return datasets.load(name, "val"), datasets.load(name, "test")
    except ImportError:
        pass
    n = 3000 if fast else 20000
    return generated(n, seed=0), generated(n, seed=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--fast", action="store_true", help="small and quick (for CI)")
    args = parser.parse_args()
    val, test = load(args.dataset, args.fast)
    print(f"validation: {val}\ntest:       {test}")
    print("per-exit test accuracy:", np.round(test.exit_accuracy, 4).tolist())

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
