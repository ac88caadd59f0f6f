"""Extraction: run a model over a loader and cache every exit's outputs as an ExitData."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from eeopt._progress import Progress
from eeopt.data import ExitData
from eeopt.torch._batch import (
    DEPRECATED,
    labels_to_numpy,
    logits_to_numpy,
    resolve_device,
    resolve_verbose,
    split_batch,
    to_device,
)


def collect_logits(
    model: nn.Module,
    loader: Iterable,
    device: Any = None,
    verbose: bool | None = None,
    costs: Any = None,
    *,
    metadata: dict | None = None,
    progress: Any = DEPRECATED,
) -> ExitData:
    """Every exit's outputs on every sample of ``loader``, as an :class:`eeopt.ExitData`.

    Parameters
    ----------
    model : nn.Module
        A :class:`MultiExitModel`, or any module whose ``forward`` returns a sequence (list or
        tuple) of per-exit logits, each ``(batch, n_classes)`` (the MSDNet family convention).
    loader : iterable
        A DataLoader or any iterable of batches ``(inputs, labels)`` or inputs alone. Labels
        are kept when every batch has them.
    device : str or torch.device, optional
        Where to run; the model is moved there. Default: where the model's weights are.
    verbose : bool, optional
        Draw a progress bar on stderr; default True.
    costs : array-like of shape (n_exits,), optional
        Cumulative cost per exit (say ``measure_exit_costs(...).seconds``); default
        ``[1, ..., n_exits]``.
    metadata : dict, optional
        Stored with the data; the model's class name is added.
    progress : bool, optional
        Deprecated name of ``verbose`` (eeopt.torch called it so before 0.2); it still works,
        with a DeprecationWarning, and will be removed in the next release.

    Returns
    -------
    ExitData
        Probabilities ``(n_samples, n_exits, n_classes)`` from the logits by eeopt's stable
        softmax (``ExitData.from_logits``); float32 logits give float32 probabilities.

    Notes
    -----
    The model runs in eval mode under ``torch.inference_mode()`` (its training flag is restored
    afterwards). Each batch's outputs are copied to the CPU before the next batch runs, so the
    device never holds more than one batch.
    """
    verbose = resolve_verbose(verbose, progress, True, "collect_logits")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}.")
    if costs is not None and hasattr(costs, "seconds") and hasattr(costs, "flops"):
        raise TypeError("costs must be an array; pass costs.seconds or costs.flops.")
    device = resolve_device(model, device)
    chunks: list[np.ndarray] = []
    label_chunks: list[np.ndarray | None] = []
    total = len(loader) if hasattr(loader, "__len__") else None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), Progress(total, "collecting logits", verbose) as bar:
            for batch in loader:
                inputs, labels = split_batch(batch)
                outputs = model(to_device(inputs, device))
                chunks.append(logits_to_numpy(_stack_exits(outputs, len(chunks))))
                label_chunks.append(None if labels is None else labels_to_numpy(labels))
                bar.update(postfix=f"{sum(len(c) for c in chunks)} samples")
    finally:
        model.train(was_training)
    if not chunks:
        raise ValueError("loader yielded no batches; pass a loader with at least one sample.")
    _check_same_layout(chunks)
    logits = np.concatenate(chunks)
    labels = _join_labels(label_chunks, [len(c) for c in chunks])
    meta = {"model": type(model).__name__, **(metadata or {})}
    return ExitData.from_logits(logits, labels, costs, metadata=meta)


def _stack_exits(outputs: Any, batch_index: int) -> torch.Tensor:
    """Per-exit logits ``[(batch, C)] * K`` -> ``(batch, K, C)``."""
    if isinstance(outputs, torch.Tensor) or not isinstance(outputs, Sequence):
        kind = (
            f"a tensor of shape {tuple(outputs.shape)}"
            if isinstance(outputs, torch.Tensor)
            else type(outputs).__name__
        )
        raise TypeError(
            f"model must return a list or tuple of per-exit logits (batch, n_classes), got "
            f"{kind}. eeopt does not guess which axis of a stacked tensor holds the exits: "
            f"return list(tensor.unbind(exit_axis)) or use MultiExitModel(stages, heads)."
        )
    if not outputs:
        raise ValueError("model returned an empty sequence of exits.")
    for k, out in enumerate(outputs):
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"exit {k} of batch {batch_index} must be logits of shape (batch, n_classes), "
                f"got {shape}."
            )
        if out.shape != outputs[0].shape:
            raise ValueError(
                f"every exit must give logits of the same shape; in batch {batch_index} exit 0 "
                f"gave {tuple(outputs[0].shape)} and exit {k} gave {tuple(out.shape)}."
            )
    return torch.stack(list(outputs), dim=1)


def _check_same_layout(chunks: list[np.ndarray]) -> None:
    first = chunks[0].shape[1:]
    for i, chunk in enumerate(chunks):
        if chunk.shape[1:] != first:
            raise ValueError(
                f"batch {i} gave (n_exits, n_classes) = {chunk.shape[1:]}, batch 0 gave {first}."
            )


def _join_labels(label_chunks: list, sizes: list[int]) -> np.ndarray | None:
    have = [labels is not None for labels in label_chunks]
    if not any(have):
        return None
    if not all(have):
        raise ValueError("some batches have labels and some do not; give labels for all or none.")
    for i, (labels, size) in enumerate(zip(label_chunks, sizes, strict=True)):
        if labels.shape[0] != size:
            raise ValueError(f"batch {i} has {size} inputs but {labels.shape[0]} labels.")
    return np.concatenate(label_chunks)
