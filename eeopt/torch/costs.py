"""Exit costs of a MultiExitModel: measured latency and counted FLOPs, cumulative per exit.

By default the cost of leaving at exit k is what early-exit inference spends on a sample that
leaves there: stages 0..k and heads 0..k (every head on the way is evaluated to decide whether
to exit). ``earlier_heads=False`` gives the cost of computing exit k alone, stages 0..k and
head k (the wording of spec section 1, and how the shipped datasets' costs were measured).
Both figures are cumulative and non-decreasing, so they can be passed as ``costs``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from eeopt import _validation as v
from eeopt.torch._batch import resolve_device, split_batch, synchronize, to_device
from eeopt.torch.model import MultiExitModel, require_stagewise


@dataclass
class ExitCosts:
    """Cumulative cost of each exit, per sample.

    Attributes
    ----------
    seconds : ndarray of shape (n_exits,)
        Median wall-clock seconds per sample to reach exit k's prediction, at the batch size
        measured.
    flops : ndarray of shape (n_exits,)
        FLOPs per sample to reach exit k's prediction, as counted by
        ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions;
        element-wise operations, normalisation and pooling are not counted).
    batch_size : int
    repeats : int
    device : str
    earlier_heads : bool
        Whether exit k's cost includes heads 0..k - 1 (see :func:`measure_exit_costs`).
    """

    seconds: np.ndarray
    flops: np.ndarray
    batch_size: int
    repeats: int
    device: str
    earlier_heads: bool = True

    def __repr__(self) -> str:
        seconds = ", ".join(f"{s:.3g}" for s in self.seconds)
        flops = ", ".join(f"{f:.3g}" for f in self.flops)
        return (
            f"ExitCosts(seconds=[{seconds}], flops=[{flops}], batch_size={self.batch_size}, "
            f"device={self.device!r})"
        )


def measure_exit_costs(
    model: MultiExitModel,
    example_batch: Any,
    device: Any = None,
    repeats: int = 20,
    warmup: int = 3,
    earlier_heads: bool = True,
) -> ExitCosts:
    """Measure the cumulative latency and FLOPs of every exit on one batch.

    Parameters
    ----------
    model : MultiExitModel
    example_batch : tensor or (inputs, labels)
        A representative batch; costs are per sample at this batch size, so use the batch
        size you will deploy with.
    device : str or torch.device, optional
        Where to run; the model is moved there. Default: where the model's weights are.
    repeats : int, default=20
        Timed passes; each stage and head time is the median over them.
    warmup : int, default=3
        Untimed passes first (allocator, kernel selection, caches).
    earlier_heads : bool, default=True
        True: exit k costs stages 0..k and heads 0..k, what :func:`run_early_exit` spends on
        a sample leaving at k (it evaluates every head on the way). False: stages 0..k and
        head k only, the cost of computing exit k alone (spec section 1's wording; made
        non-decreasing by a running maximum, as a late head may be cheaper than an early one).

    Returns
    -------
    ExitCosts
        ``.seconds`` and ``.flops``, cumulative per exit, per sample.

    Notes
    -----
    Every stage and head is timed on its own, with device synchronisation before and after
    (``torch.cuda.synchronize`` on CUDA), in eval mode under ``torch.inference_mode()``. The
    cumulative latency of exit k is the sum of the medians of its stages and heads.
    """
    model = require_stagewise(model, "measure_exit_costs")
    repeats = v.check_positive_int(repeats, "repeats")
    warmup = v.check_positive_int(warmup, "warmup", minimum=0)
    device = resolve_device(model, device)
    inputs, _ = split_batch(example_batch)
    inputs = to_device(inputs, device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            n_samples = model.run_head(0, model.run_stage(0, inputs)).shape[0]
            for _ in range(warmup):
                _timed_pass(model, inputs, device)
            timings = np.array([_timed_pass(model, inputs, device) for _ in range(repeats)])
            flops = _count_flops(model, inputs)
    finally:
        model.train(was_training)
    # timings and flops: (..., n_exits, 2), stage k and head k.
    seconds = _cumulative(np.median(timings, axis=0), earlier_heads)
    return ExitCosts(
        seconds=seconds / n_samples,
        flops=_cumulative(flops, earlier_heads) / n_samples,
        batch_size=int(n_samples),
        repeats=repeats,
        device=str(device),
        earlier_heads=bool(earlier_heads),
    )


def _cumulative(per_piece: np.ndarray, earlier_heads: bool) -> np.ndarray:
    """Cumulative cost per exit from ``(n_exits, 2)`` costs of stage k and head k."""
    stages, heads = per_piece[:, 0], per_piece[:, 1]
    if earlier_heads:
        return np.cumsum(stages + heads)
    return np.maximum.accumulate(np.cumsum(stages) + heads)


def _timed_pass(model: MultiExitModel, inputs: Any, device: torch.device) -> list:
    """Seconds of stage k and head k for every k, ``[[stage, head], ...]``."""
    out = []
    features = inputs
    synchronize(device)
    for k in range(model.n_exits):
        start = time.perf_counter()
        features = model.run_stage(k, features)
        synchronize(device)
        middle = time.perf_counter()
        model.run_head(k, features)
        synchronize(device)
        out.append([middle - start, time.perf_counter() - middle])
    return out


def _count_flops(model: MultiExitModel, inputs: Any) -> np.ndarray:
    """FLOPs of stage k and of head k for every k, ``(n_exits, 2)``, on the whole batch."""
    flops = np.zeros((model.n_exits, 2))
    features = inputs
    for k in range(model.n_exits):
        with FlopCounterMode(display=False) as counter:
            features = model.run_stage(k, features)
        flops[k, 0] = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            model.run_head(k, features)
        flops[k, 1] = counter.get_total_flops()
    return flops
