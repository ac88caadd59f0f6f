"""Batches and devices: the plumbing shared by collection, costs and the runtime."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn


def resolve_device(model: nn.Module, device: Any) -> torch.device:
    """``device`` if given (the model is moved there), else where the model's weights live."""
    if device is not None:
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device {device!r} is not a torch device: {exc}") from None
        model.to(device)
        return device
    for tensor in _model_tensors(model):
        return tensor.device
    return torch.device("cpu")


def _model_tensors(model: nn.Module):
    yield from model.parameters()
    yield from model.buffers()


#: Default of the deprecated ``progress=`` arguments: "not given".
DEPRECATED = "deprecated"


def resolve_verbose(verbose: Any, progress: Any, default: bool, function: str) -> bool:
    """``verbose``, or the deprecated ``progress`` with a DeprecationWarning naming ``verbose``.

    eeopt.torch called its progress-bar switch ``progress=`` where the rest of eeopt says
    ``verbose=``; the old name works for one release. ``verbose=None`` (the signatures'
    default) means "not given": then ``progress``, or ``default``. Both given with different
    values is an error.
    """
    for name, value in (("verbose", verbose), ("progress", progress)):
        if value not in (DEPRECATED, None) and not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}.")
    if progress is DEPRECATED:
        return default if verbose is None else bool(verbose)
    warnings.warn(
        f"{function}(progress=...) is deprecated and will be removed in the next release; "
        f"use verbose=, as everywhere else in eeopt.",
        DeprecationWarning,
        stacklevel=3,
    )
    if verbose is not None and bool(verbose) != bool(progress):
        raise ValueError(
            f"{function} got verbose={verbose!r} and progress={progress!r}, which disagree; "
            f"pass verbose= only (progress= is its deprecated name)."
        )
    return bool(progress)


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(inputs, labels)`` from what a loader yields: a pair, or the inputs alone."""
    if isinstance(batch, (tuple, list)):
        if len(batch) == 2:
            return batch[0], batch[1]
        if len(batch) == 1:
            return batch[0], None
        raise ValueError(
            f"loader batches must be (inputs, labels) or inputs alone, got a "
            f"{type(batch).__name__} of {len(batch)} items."
        )
    return batch, None


def to_device(inputs: Any, device: torch.device) -> Any:
    """Tensors (also inside tuples, lists and dicts) moved to ``device``."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    if isinstance(inputs, Mapping):
        return {key: to_device(value, device) for key, value in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(to_device(value, device) for value in inputs)
    if isinstance(inputs, np.ndarray):
        return torch.from_numpy(inputs).to(device)
    return inputs


def take_rows(features: Any, rows: torch.Tensor) -> Any:
    """The samples ``rows`` (an index tensor) of batch-first features, nested as given."""
    if isinstance(features, torch.Tensor):
        return features.index_select(0, rows)
    if isinstance(features, Mapping):
        return {key: take_rows(value, rows) for key, value in features.items()}
    if isinstance(features, (tuple, list)):
        return type(features)(take_rows(value, rows) for value in features)
    return features  # non-tensor values (flags, sizes) are shared by the whole batch


def slice_rows(features: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of batch-first features (views, no copy), nested as given."""
    if isinstance(features, torch.Tensor):
        return features.narrow(0, start, stop - start)
    if isinstance(features, Mapping):
        return {key: slice_rows(value, start, stop) for key, value in features.items()}
    if isinstance(features, (tuple, list)):
        return type(features)(slice_rows(value, start, stop) for value in features)
    return features


def concat_rows(chunks: list[Any]) -> Any:
    """Batch-first features of several chunks joined along the rows, nested as given."""
    first = chunks[0]
    if len(chunks) == 1:
        return first
    if isinstance(first, torch.Tensor):
        return torch.cat(chunks, dim=0)
    if isinstance(first, Mapping):
        return {key: concat_rows([chunk[key] for chunk in chunks]) for key in first}
    if isinstance(first, (tuple, list)):
        return type(first)(concat_rows(list(parts)) for parts in zip(*chunks, strict=True))
    return first  # non-tensor values (flags, sizes) are shared by the whole batch


def labels_to_numpy(labels: Any) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels of a batch must have shape (batch,), got {labels.shape}.")
    return labels


def logits_to_numpy(logits: torch.Tensor) -> np.ndarray:
    """CPU numpy copy; float32 and float64 kept, half precisions widened to float32."""
    logits = logits.detach()
    if logits.dtype not in (torch.float32, torch.float64):
        logits = logits.to(torch.float32)
    return logits.cpu().numpy()


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so that a wall-clock reading covers the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
