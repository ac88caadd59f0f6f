"""Exit costs of a MultiExitModel: measured latency and counted FLOPs, cumulative per exit.

By default the cost of leaving at exit k is what early-exit inference spends on a sample that
leaves there: stages 0..k and heads 0..k (every head on the way is evaluated to decide whether
to exit). ``earlier_heads=False`` gives the cost of computing exit k alone, stages 0..k and
head k (the wording of spec section 1, and how the shipped datasets' costs were measured).
Both figures are cumulative and non-decreasing, so they can be passed as ``costs``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from eeopt import _validation as v
from eeopt.torch._batch import resolve_device, split_batch, synchronize, take_rows, to_device
from eeopt.torch.model import MultiExitModel, require_stagewise


@dataclass
class ExitCosts:
    """Cumulative cost of each exit, per sample.

    Attributes
    ----------
    seconds : ndarray of shape (n_exits,)
        Median seconds per sample to reach exit k's prediction, at the batch size measured
        (wall clock; on CUDA, the stream's time between CUDA events).
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
    batch_size: int | None = None,
) -> ExitCosts:
    """Measure the cumulative latency and FLOPs of every exit on one batch.

    Parameters
    ----------
    model : MultiExitModel
    example_batch : tensor or (inputs, labels)
        A representative batch (batch-first tensors, or tuples/lists/dicts of them); costs are
        per sample at the batch size measured, so measure at the one you will deploy with.
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
    batch_size : int, optional
        Measure at this batch size: the example's rows are repeated (or cut) to make a batch of
        exactly this many rows, so that one example measures the costs of any deployment batch
        size. Default: the example batch as given.

    Returns
    -------
    ExitCosts
        ``.seconds`` and ``.flops``, cumulative per exit, per sample.

    Notes
    -----
    Every stage and head is timed on its own, in eval mode under ``torch.inference_mode()``;
    the cumulative latency of exit k is the sum of the medians of its stages and heads. On the
    CPU (and MPS) each piece is timed with ``time.perf_counter`` with the device synchronised
    before and after. On CUDA the pieces of a pass are timed with CUDA events recorded on the
    current stream between them, and the host waits once per pass (``torch.cuda.synchronize``)
    before reading them: a piece's time is the stream's time from the end of the previous
    piece to its own end, which includes the time the GPU waits for the kernels to be
    launched (small batches are often launch-bound) and not a synchronisation per piece,
    which the runtime does not pay.
    """
    model = require_stagewise(model, "measure_exit_costs")
    repeats = v.check_positive_int(repeats, "repeats")
    warmup = v.check_positive_int(warmup, "warmup", minimum=0)
    device = resolve_device(model, device)
    inputs, _ = split_batch(example_batch)
    inputs = to_device(inputs, device)
    if batch_size is not None:
        batch_size = v.check_positive_int(batch_size, "batch_size")
        inputs = _resize_batch(inputs, batch_size, device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            n_samples = model.run_head(0, model.run_stage(0, inputs)).shape[0]
            timed_pass = _timed_pass_cuda if device.type == "cuda" else _timed_pass
            for _ in range(warmup):
                timed_pass(model, inputs, device)
            timings = np.array([timed_pass(model, inputs, device) for _ in range(repeats)])
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


def _timed_pass_cuda(model: MultiExitModel, inputs: Any, device: torch.device) -> list:
    """As :func:`_timed_pass`, timed by CUDA events on the current stream, one wait per pass."""
    with torch.cuda.device(device):
        stream = torch.cuda.current_stream(device)
        events = [torch.cuda.Event(enable_timing=True) for _ in range(2 * model.n_exits + 1)]
        torch.cuda.synchronize(device)
        events[0].record(stream)
        features = inputs
        for k in range(model.n_exits):
            features = model.run_stage(k, features)
            events[2 * k + 1].record(stream)
            model.run_head(k, features)
            events[2 * k + 2].record(stream)
        torch.cuda.synchronize(device)
        milliseconds = [a.elapsed_time(b) for a, b in zip(events[:-1], events[1:], strict=True)]
    seconds = np.array(milliseconds) / 1e3
    return seconds.reshape(model.n_exits, 2).tolist()


def _resize_batch(inputs: Any, batch_size: int, device: torch.device) -> Any:
    """The rows of batch-first ``inputs`` repeated in order (or cut) to ``batch_size`` rows."""
    n_rows = _first_dim(inputs)
    if n_rows is None or n_rows == 0:
        raise ValueError(
            "batch_size= needs an example batch of batch-first tensors with at least one row."
        )
    rows = torch.arange(batch_size, device=device) % n_rows
    return take_rows(inputs, rows)


def _first_dim(inputs: Any) -> int | None:
    if isinstance(inputs, torch.Tensor):
        return inputs.shape[0] if inputs.ndim else None
    values = inputs.values() if isinstance(inputs, Mapping) else inputs
    if isinstance(inputs, (Mapping, tuple, list)):
        for value in values:
            n_rows = _first_dim(value)
            if n_rows is not None:
                return n_rows
    return None


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
