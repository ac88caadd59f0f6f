"""Torch: train a small multi-exit CNN, cache its exits, fit a policy, run real early exit.

    python examples/torch_example.py [--fast]

On scikit-learn's handwritten digits (8x8 images, shipped with scikit-learn): a CNN cut into
four stages with a head after each, trained jointly; ``collect_logits`` caches the exits of the
validation split, BEEM-C and MSDNet's rule are fitted on them, and ``run_early_exit`` classifies
the test split stage by stage, each sample leaving at the exit its policy chooses. Needs torch.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import eeopt
from eeopt.torch import MultiExitModel, collect_logits, measure_exit_costs, run_early_exit


def make_model(width: int = 32) -> MultiExitModel:
    def block(c_in: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU())

    def head() -> nn.Module:
        return nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, 10))

    return MultiExitModel([block(1)] + [block(width) for _ in range(3)], [head() for _ in range(4)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fewer training steps (for CI)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, val, test = order[:900], order[900:1350], order[1350:]

    model = make_model()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60 if args.fast else 200):  # every exit's loss, full batch
        optimiser.zero_grad()
        loss = sum(nn.functional.cross_entropy(out, y[train]) for out in model(x[train]))
        loss.backward()
        optimiser.step()
    model.eval()

    def loader(idx: torch.Tensor) -> DataLoader:
        return DataLoader(TensorDataset(x[idx], y[idx]), batch_size=64)

    costs = measure_exit_costs(model, x[val[:64]], repeats=5)
    print(f"FLOPs per sample at each exit: {costs.flops.astype(int).tolist()}")
    val_data = collect_logits(model, loader(val), verbose=False).with_costs(costs.flops)
    print("per-exit validation accuracy:", np.round(val_data.exit_accuracy, 3).tolist())

    budget = float(costs.flops[0] + 0.4 * (costs.flops[-1] - costs.flops[0]))
    for name, policy in {
        "beem-c (paper's rule)": eeopt.fit(val_data, method="beem-c"),
        f"msdnet (budget {budget:.3g})": eeopt.fit(val_data, method="msdnet", budget=budget),
    }.items():
        run = run_early_exit(model, policy, loader(test))
        fractions = " ".join(f"{f:.2f}" for f in run.exit_fractions)
        speedup = costs.flops[-1] / run.mean_cost(costs.flops)
        print(
            f"{name:26s} test accuracy {run.accuracy:.4f}, {speedup:.2f}x fewer FLOPs, "
            f"exits {fractions}, {run.seconds * 1e3:.1f} ms"
        )


if __name__ == "__main__":
    main()
