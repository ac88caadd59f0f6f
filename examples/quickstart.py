"""Quick start: fit early-exit policies on validation exits, evaluate them on test exits.

Runs on a shipped dataset when ``eeopt.datasets`` has it, else on a generated multi-exit set.

    python examples/quickstart.py [--dataset mnist1d] [--fast]
"""

from __future__ import annotations

import argparse

import numpy as np

import eeopt


def generated(n: int, seed: int) -> eeopt.ExitData:
    """A synthetic 5-exit model whose exits sharpen with depth (a stand-in for real data)."""
    rng = np.random.default_rng(seed)
    n_exits, n_classes = 5, 10
    labels = rng.integers(0, n_classes, size=n)
    difficulty = rng.uniform(0.2, 2.0, size=n)
    logits = rng.normal(size=(n, n_exits, n_classes))
    logits[np.arange(n), :, labels] += np.linspace(0.5, 4.0, n_exits) / difficulty[:, None]
    return eeopt.ExitData.from_logits(logits, labels, costs=[1.0, 2.0, 3.0, 4.0, 5.0])


def load(name: str, fast: bool) -> tuple[eeopt.ExitData, eeopt.ExitData]:
    try:
        from eeopt import datasets

        if name in datasets.names():
            return datasets.load(name, "val"), datasets.load(name, "test")
    except ImportError:
        pass
    n = 2000 if fast else 20000
    return generated(n, seed=0), generated(n, seed=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--fast", action="store_true", help="small and quick (for CI)")
    args = parser.parse_args()
    val, test = load(args.dataset, args.fast)
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
        print(f"{method:10s} {target:22s} {r.accuracy:8.4f} {r.mean_cost:12.5g} "
              f"{r.speedup:7.2f}x")


if __name__ == "__main__":
    main()
