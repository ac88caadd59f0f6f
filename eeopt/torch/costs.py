"""Exit costs of a MultiExitModel: measured latency and counted FLOPs, cumulative per exit.

The cost of leaving at exit k is what early-exit inference spends on a sample that leaves
there: stages 0..k and heads 0..k (every head on the way is evaluated to decide whether to
exit). Both figures are cumulative and non-decreasing, so they can be passed as ``costs``.
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
        Median wall-clock seconds per sample to reach exit k's prediction (stages and heads
        0..k), at the batch size measured.
    flops : ndarray of shape (n_exits,)
        FLOPs per sample to reach exit k's prediction, as counted by
        ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions;
        element-wise operations are not counted).
    batch_size : int
    repeats : int
    device : str
    """

    seconds: np.ndarray
    flops: np.ndarray
    batch_size: int
    repeats: int
    device: str

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

    Returns
    -------
    ExitCosts
        ``.seconds`` and ``.flops``, cumulative per exit, per sample.

    Notes
    -----
    Every stage and head is timed on its own, with device synchronisation before and after
    (``torch.cuda.synchronize`` on CUDA), in eval mode under ``torch.inference_mode()``. The
    cumulative latency of exit k is the sum of the medians of stages and heads 0..k.
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
    # timings: (repeats, n_exits, 2) seconds of stage k and head k.
    per_exit = np.median(timings, axis=0).sum(axis=1)
    return ExitCosts(
        seconds=np.cumsum(per_exit) / n_samples,
        flops=np.cumsum(flops) / n_samples,
        batch_size=int(n_samples),
        repeats=repeats,
        device=str(device),
    )


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
    """FLOPs of stage k plus head k for every k, on the whole batch."""
    flops = np.zeros(model.n_exits)
    features = inputs
    for k in range(model.n_exits):
        with FlopCounterMode(display=False) as counter:
            features = model.run_stage(k, features)
            model.run_head(k, features)
        flops[k] = counter.get_total_flops()
    return flops
