"""A small real multi-exit model for the torch adapter's tests and benchmark.

An MLP on scikit-learn's ``load_digits`` (8x8 images, 10 classes), cut into stages with one
linear head per stage and trained for a few seconds, seeded and deterministic on the CPU.

``exact=True`` (the tests) makes every float32 result independent of summation order, hence of
batch size and of which samples share a batch: inputs are multiples of 2^-4 in [0, 1], weights
and biases are rounded to multiples of 2^-8, and each stage's activations (clamped to
[0, 4] throughout) are rounded to multiples of 2^-6 (in eval mode). Every sum then adds multiples of
2^-m whose absolute values total less than 2^(24-m), so every partial sum is exact in float32
whatever order a kernel uses; :func:`check_exact` verifies that bound on given inputs. Without
it, a BLAS matrix-vector kernel (batch size 1) and a matrix-matrix kernel (batch size 64) round
differently in the last bit, and a sample whose score sits on a threshold could flip.
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from torch import nn

from eeopt.torch import MultiExitModel

INPUT_STEP = 2.0**-4
WEIGHT_STEP = 2.0**-8
ACTIVATION_STEP = 2.0**-6
ACTIVATION_MAX = 4.0


class SnapReLU(nn.Module):
    """ReLU clamped to [0, 4]; in eval mode (exact) also rounded to a 2^-6 grid."""

    def __init__(self, exact: bool) -> None:
        super().__init__()
        self.exact = exact

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clamp(0.0, ACTIVATION_MAX)
        if self.training or not self.exact:
            return x
        return torch.round(x / ACTIVATION_STEP) * ACTIVATION_STEP


def digits_splits(seed: int = 0, n_train: int = 1000, n_val: int = 500):
    """(x, y) tensors for train, validation and test; x in [0, 1] on a 2^-4 grid."""
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    cut = [n_train, n_train + n_val]
    return (
        (x[: cut[0]], y[: cut[0]]),
        (x[cut[0] : cut[1]], y[cut[0] : cut[1]]),
        (
            x[cut[1] :],
            y[cut[1] :],
        ),
    )


class Head(nn.Module):
    """A linear classifier on the first ``n_features`` features of its stage."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.n_features = n_features
        self.linear = nn.Linear(n_features, 10)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features[:, : self.n_features])


def build_digits_model(
    train,
    head_features=(3, 6, 12, 48),
    hidden: int = 48,
    steps: int = 300,
    exact: bool = True,
    seed: int = 0,
) -> MultiExitModel:
    """Train an MLP of ``hidden`` units per layer with a head after each layer (summed losses).

    Head k reads ``head_features[k]`` of its layer's units: narrow early heads make early exits
    less accurate than late ones, as in a real multi-exit network.
    """
    torch.manual_seed(seed)
    sizes = [64] + [hidden] * len(head_features)
    stages = [
        nn.Sequential(nn.Linear(sizes[k], sizes[k + 1]), SnapReLU(exact))
        for k in range(len(head_features))
    ]
    heads = [Head(n) for n in head_features]
    model = MultiExitModel(stages, heads)
    x, y = train
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        loss = sum(nn.functional.cross_entropy(out, y) for out in model(x))
        loss.backward()
        optimiser.step()
    if exact:
        with torch.no_grad():
            for param in model.parameters():
                param.copy_(torch.round(param / WEIGHT_STEP) * WEIGHT_STEP)
    return model.eval()


def check_exact(model: MultiExitModel, x: torch.Tensor) -> None:
    """Assert that every sum the model computes on ``x`` is exact in float32 (see above)."""
    with torch.inference_mode():
        features, step = x, INPUT_STEP
        for k in range(model.n_exits):
            _assert_exact_sums(model.stages[k][0], features, step)
            features, step = model.stages[k](features), ACTIVATION_STEP
            head = model.heads[k]
            _assert_exact_sums(head.linear, features[:, : head.n_features], step)


def _assert_exact_sums(linear: nn.Linear, inputs: torch.Tensor, input_step: float) -> None:
    inputs = inputs.double()
    assert torch.equal(torch.round(inputs / input_step) * input_step, inputs), "input off grid"
    # Products and bias are multiples of input_step * WEIGHT_STEP; exact while they total less
    # than 2^24 grid steps.
    grid = input_step * WEIGHT_STEP
    total = inputs.abs() @ linear.weight.double().abs().T + linear.bias.double().abs()
    assert float(total.max()) < 2.0**24 * grid, f"sums up to {float(total.max())} not exact"


class PooledHead(nn.Module):
    """Global average pooling, then a linear classifier on the first ``n_channels`` channels."""

    def __init__(self, n_channels: int) -> None:
        super().__init__()
        self.n_channels = n_channels
        self.linear = nn.Linear(n_channels, 10)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features[:, : self.n_channels].mean(dim=(2, 3)))


def build_digits_cnn(
    train,
    head_channels=(2, 4, 8, 32),
    channels: int = 32,
    steps: int = 200,
    batch_size: int = 128,
    seed: int = 0,
) -> MultiExitModel:
    """A small CNN on the 8x8 digits (float arithmetic), one 3x3 conv block per stage.

    Convolutions cost per pixel and per sample, with few weights, so a stage's time scales
    with the number of rows it runs on, as in the MSDNet family; the benchmark uses it.
    """
    torch.manual_seed(seed)
    stages = [
        nn.Sequential(
            nn.Conv2d(1 if k == 0 else channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        for k in range(len(head_channels))
    ]
    model = MultiExitModel(stages, [PooledHead(n) for n in head_channels])
    x, y = train
    images = x.reshape(-1, 1, 8, 8)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    order = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        rows = torch.randint(0, len(y), (batch_size,), generator=order)
        optimiser.zero_grad()
        loss = sum(nn.functional.cross_entropy(out, y[rows]) for out in model(images[rows]))
        loss.backward()
        optimiser.step()
    return model.eval()
