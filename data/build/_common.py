"""Shared machinery of the dataset builders: determinism, multi-exit training, costs, writing.

Imported by ``build_digits.py``, ``build_mnist1d.py``, ``build_minilm.py`` and ``build_all.py``;
needs torch (``pip install "eeopt[data]"``).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[2]
# The builders write files for this checkout's eeopt, whatever eeopt is installed.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from eeopt.data import ExitData  # noqa: E402
from eeopt.datasets import checksum  # noqa: E402

SHIPPED_DIR = REPO / "eeopt" / "_data"

# One setting for every builder, so that regenerating gives the same bytes on the same machine.
SEED = 0
LATENCY_SAMPLES = 64  # samples timed per exit (batch size 1)
LATENCY_REPEATS = 7  # median over this many timings


def set_determinism(seed: int = SEED) -> None:
    """Fix every seed and make torch deterministic and single-threaded.

    One thread: a multi-threaded reduction may sum in another order from run to run, and the
    checksums cover the probabilities bit for bit.
    """
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - third-party code (mnist1d) draws from the global RNG
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


class MultiExitNet(nn.Module):
    """A backbone cut into ``stages`` with one classifier head after each stage.

    ``forward`` returns the logits of every exit, a list of ``n_exits`` tensors
    ``(batch, n_classes)``; :meth:`exit_forward` computes exit ``k`` alone (stages 0..k and
    head k), the computation that a cost of exit k accounts for.
    """

    def __init__(self, stages: Sequence[nn.Module], heads: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(stages) != len(heads):
            raise ValueError(f"need one head per stage, got {len(stages)} and {len(heads)}")
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(heads)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for stage, head in zip(self.stages, self.heads, strict=True):
            x = stage(x)
            outputs.append(head(x))
        return outputs

    def exit_forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
        for stage in self.stages[: k + 1]:
            x = stage(x)
        return self.heads[k](x)

    @property
    def n_exits(self) -> int:
        return len(self.stages)


def train_multi_exit(
    model: MultiExitNet,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 64,
    seed: int = SEED,
) -> MultiExitNet:
    """Train every exit jointly: the loss is the mean of the exits' cross-entropies.

    Adam with a cosine learning-rate schedule; the shuffling has its own seeded generator.
    """
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    n_batches = -(-len(xt) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs * n_batches)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), batch_size):
            idx = order[start : start + batch_size]
            outputs = model(xt[idx])
            loss = sum(loss_fn(out, yt[idx]) for out in outputs) / len(outputs)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval()
    return model


@torch.inference_mode()
def exit_probs(model: MultiExitNet, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Softmax probabilities of every exit, ``(n_samples, n_exits, n_classes)`` float32."""
    model.eval()
    xt = torch.as_tensor(x, dtype=torch.float32)
    logits = []
    for start in range(0, len(xt), batch_size):
        outputs = model(xt[start : start + batch_size])
        logits.append(torch.stack(outputs, dim=1).double().numpy())
    return softmax_float32(np.concatenate(logits))


def softmax_float32(logits: np.ndarray) -> np.ndarray:
    """Stable softmax in float64, stored as float32 (rows sum to 1 within ~1e-7)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


@torch.inference_mode()
def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn``, counted by ``torch.utils.flop_counter.FlopCounterMode``.

    It counts matrix products and convolutions (2 FLOPs per multiply-add); elementwise
    operations, normalisation and pooling are not counted.
    """
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def exit_flops(model: MultiExitNet, example: torch.Tensor) -> list[int]:
    """Cumulative FLOPs per exit for one sample ``example`` of shape ``(1, ...)``."""
    flops = [count_flops(lambda k=k: model.exit_forward(example, k)) for k in range(model.n_exits)]
    return _non_decreasing(flops)


@torch.inference_mode()
def exit_seconds(
    run_exit: Callable[[int, int], object],
    n_exits: int,
    n_samples: int,
    *,
    repeats: int = LATENCY_REPEATS,
) -> list[float]:
    """Cumulative CPU latency per exit and sample, in seconds (batch size 1).

    ``run_exit(k, i)`` computes exit ``k`` for sample ``i`` (stages 0..k, head k). For each exit,
    the mean time per sample over ``n_samples`` samples is measured ``repeats`` times; the median
    is kept. Machine- and load-dependent: not covered by the checksums.
    """
    seconds = []
    for k in range(n_exits):
        run_exit(k, 0)  # warm-up: first calls allocate
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(n_samples):
                run_exit(k, i)
            timings.append((time.perf_counter() - start) / n_samples)
        seconds.append(statistics.median(timings))
    return _non_decreasing(seconds)


def cached_exits(
    model: MultiExitNet,
    x: np.ndarray,
    y: np.ndarray,
    split_indices: dict[str, np.ndarray],
    fast: bool,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[int], list[float]]:
    """What a dataset file holds for a trained model on array inputs ``x``: per split, the
    exit probabilities and labels; FLOPs and CPU latency per exit, measured on test samples."""
    test = split_indices["test"]
    flops = exit_flops(model, torch.as_tensor(x[test[:1]]))
    timed = torch.as_tensor(x[test[:LATENCY_SAMPLES]])
    seconds = exit_seconds(
        lambda k, i: model.exit_forward(timed[i : i + 1], k),
        model.n_exits,
        8 if fast else LATENCY_SAMPLES,
        repeats=2 if fast else LATENCY_REPEATS,
    )
    splits = {split: (exit_probs(model, x[idx]), y[idx]) for split, idx in split_indices.items()}
    return splits, flops, seconds


def _non_decreasing(values: list) -> list:
    # Timing noise can make exit k+1 look a hair faster than exit k; costs must be cumulative.
    return np.maximum.accumulate(np.asarray(values)).tolist()


def write_splits(
    out_dir: Path,
    name: str,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    costs_flops: Sequence[float],
    costs_seconds: Sequence[float],
    metadata: dict,
) -> dict[str, dict]:
    """Write ``<name>_<split>.npz`` for each split; return a summary per file.

    ``splits`` maps "val"/"test" to ``(probs, labels)``. ``costs`` holds the cumulative FLOPs;
    the latencies go to ``metadata["costs_seconds"]``. The file is written by
    ``ExitData.save`` so that it is exactly what ``ExitData.load`` reads.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {}
    for split, (probs, labels) in splits.items():
        labels = np.asarray(labels, dtype=np.int64)
        accuracy = (probs.argmax(axis=-1) == labels[:, None]).mean(axis=0)
        meta = {
            "name": name,
            "split": split,
            **metadata,
            "cost_units": "FLOPs",
            "costs_flops": [float(c) for c in costs_flops],
            "costs_seconds": [float(s) for s in costs_seconds],
            "exit_accuracy": [round(float(a), 6) for a in accuracy],
        }
        data = ExitData(
            probs, labels, np.asarray(costs_flops, dtype=np.float64), input="probs", metadata=meta
        )
        path = out_dir / f"{name}_{split}.npz"
        data.save(path)
        summary[path.name] = {
            "sha256": checksum(data),
            "n_samples": data.n_samples,
            "n_exits": data.n_exits,
            "n_classes": data.n_classes,
            "exit_accuracy": meta["exit_accuracy"],
            "costs_flops": meta["costs_flops"],
            "costs_seconds": meta["costs_seconds"],
        }
    return summary


def three_way_split(
    n: int, n_val: int, n_test: int, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random disjoint index sets (train, val, test); train takes the rest."""
    order = np.random.default_rng(seed).permutation(n)
    return order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]
