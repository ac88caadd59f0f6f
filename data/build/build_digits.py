"""``digits``: a small multi-exit CNN on scikit-learn's handwritten digits (8x8, 10 classes).

Run through ``build_all.py``; ``build(out_dir, fast)`` writes ``digits_val.npz`` and
``digits_test.npz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _common import (
    MultiExitNet,
    cached_exits,
    set_determinism,
    three_way_split,
    train_multi_exit,
    write_splits,
)
from sklearn.datasets import load_digits
from torch import nn

NAME = "digits"
N_VAL, N_TEST = 450, 450  # of 1797: 897 remain to train on


def _head(channels: int, n_classes: int = 10) -> nn.Module:
    # Pool to 2x2 before the linear layer: cheap heads, and early exits that see little.
    return nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(channels * 4, n_classes))


def make_model() -> MultiExitNet:
    """Four exits: after each of three conv blocks and after a dense layer."""
    stages = [
        nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU()),  # 16 x 8 x 8
        nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),  # 32 x 4 x 4
        nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),  # 64 x 2 x 2
        nn.Sequential(nn.Flatten(), nn.Linear(256, 128), nn.ReLU()),
    ]
    heads = [_head(16), _head(32), _head(64), nn.Linear(128, 10)]
    return MultiExitNet(stages, heads)


ARCHITECTURE = (
    "4-exit CNN: conv3x3(16) | conv3x3(32)+maxpool | conv3x3(64)+maxpool | dense(128); "
    "heads: avgpool to 2x2 + linear (last: linear); trained jointly (mean of exit losses), "
    "Adam, cosine schedule"
)


def build(out_dir: Path, fast: bool = False) -> dict[str, dict]:
    set_determinism()
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # (n, 1, 8, 8) in [0, 1]
    y = digits.target.astype(np.int64)
    train, val, test = three_way_split(len(y), N_VAL, N_TEST)
    epochs = 3 if fast else 60
    model = train_multi_exit(make_model(), x[train], y[train], epochs=epochs, batch_size=32)

    splits, flops, seconds = cached_exits(model, x, y, {"val": val, "test": test}, fast)
    metadata = {
        "source": "scikit-learn load_digits (UCI Optical Recognition of Handwritten Digits, "
        "test part: 1797 8x8 images, 10 classes), random split train 897 / val 450 / "
        "test 450 (seed 0)",
        "model": ARCHITECTURE,
        "licence": "CC BY 4.0 (UCI Machine Learning Repository); the cached outputs: MIT, as eeopt",
        "epochs": epochs,
        "fast": fast,
    }
    return write_splits(
        out_dir, NAME, splits, costs_flops=flops, costs_seconds=seconds, metadata=metadata
    )
