"""Readers and writers of other formats: MSDNet-family caches, cost files, plain arrays.

torch is imported only inside the functions that read ``.pth`` files (``pip install
"eeopt[torch]"``). Every reader validates what it reads: the loaders return validated
:class:`~eeopt.data.ExitData` objects (samples first; exits-first arrays are transposed once,
here) and :func:`read_costs` returns checked costs.

Examples
--------
>>> from eeopt import io                                               # doctest: +SKIP
>>> val, test = io.load_msdnet_cache("logits_single.pth",
...                                  costs=io.read_costs("flops.pth"))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from eeopt import _validation as v
from eeopt.data import ExitData

AXIS_ORDERS = ("samples-first", "exits-first")


def _import_torch(purpose: str):
    try:
        import torch
    except ImportError:
        raise ImportError(
            f'reading {purpose} needs torch: pip install "eeopt[torch]" (torch is optional '
            f"for everything else)."
        ) from None
    return torch


def _to_numpy(value: Any, name: str) -> np.ndarray:
    # Tensors (possibly on a GPU, possibly requiring grad) and array-likes alike.
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array or tensor: {exc}") from None


def load_msdnet_cache(path: str | os.PathLike, costs: Any = None) -> tuple[ExitData, ExitData]:
    """Read an MSDNet-family cache (``logits_single.pth``) into ``(val, test)``.

    The file is ``torch.save((val_pred, val_target, test_pred, test_target))``, each ``*_pred``
    a softmax tensor of shape ``(n_exits, n_samples, n_classes)`` and each ``*_target`` a tensor
    ``(n_samples,)`` of class indices, as written by MSDNet, EENet, calibrated-dnn and forks.

    Parameters
    ----------
    path : str or path-like
        The ``.pth`` file.
    costs : array-like of shape (n_exits,), optional
        Cumulative cost per exit (see :func:`read_costs`); default ``[1, ..., n_exits]``.

    Returns
    -------
    val, test : ExitData
        probs ``(n_samples, n_exits, n_classes)`` (transposed from the cache), labels, costs.
    """
    torch = _import_torch(f"the MSDNet cache {os.fspath(path)!r}")
    obj = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    if not isinstance(obj, (tuple, list)) or len(obj) != 4:
        got = (
            f"a {type(obj).__name__} of length {len(obj)}"
            if isinstance(obj, (tuple, list))
            else f"a {type(obj).__name__}"
        )
        raise ValueError(
            f"path {os.fspath(path)!r} must hold the tuple (val_pred, val_target, test_pred, "
            f"test_target) of an MSDNet-family cache; got {got}."
        )
    out = []
    for split, (pred, target) in (("val", obj[:2]), ("test", obj[2:])):
        probs = _to_numpy(pred, f"{split}_pred")
        labels = _to_numpy(target, f"{split}_target")
        if probs.ndim != 3:
            raise ValueError(
                f"{split}_pred in {os.fspath(path)!r} must have shape (n_exits, n_samples, "
                f"n_classes), got {probs.shape}."
            )
        if labels.ndim != 1:
            raise ValueError(
                f"{split}_target in {os.fspath(path)!r} must have shape (n_samples,), got "
                f"{labels.shape}."
            )
        probs = np.ascontiguousarray(probs.transpose(1, 0, 2))
        _check_costs_length(costs, probs.shape[1])
        out.append(
            ExitData(
                probs,
                labels,
                costs,
                input="auto",
                metadata={"source": os.fspath(path), "split": split},
            )
        )
    return out[0], out[1]


def read_costs(path: str | os.PathLike) -> np.ndarray:
    """Cumulative per-exit costs from ``flops.pth`` or a one-column CSV (``seconds.csv``).

    Parameters
    ----------
    path : str or path-like
        ``.pth``/``.pt``: ``torch.save`` of a list (or 1-D tensor) of cumulative costs, as
        MSDNet writes FLOPs. Anything else: a text file with one number per line and no header
        (blank lines are skipped).

    Returns
    -------
    ndarray of shape (n_exits,), float64
        Finite, positive and non-decreasing (checked here, naming the file); checked against
        the number of exits where it is used (:class:`~eeopt.data.ExitData`).
    """
    path = Path(path)
    if path.suffix in (".pth", ".pt"):
        torch = _import_torch(f"the cost file {os.fspath(path)!r}")
        values = _to_numpy(
            torch.load(os.fspath(path), map_location="cpu", weights_only=True), "costs"
        )
        try:
            costs = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"path {os.fspath(path)!r} must hold a list of numbers (cumulative cost per exit)."
            ) from None
        if costs.ndim != 1:
            raise ValueError(
                f"path {os.fspath(path)!r} must hold a flat list of cumulative costs, one per "
                f"exit; got shape {costs.shape}."
            )
        return _checked_costs(costs, path)
    values = []
    with open(path, encoding="utf-8") as fh:
        for line_number, line in enumerate(fh, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                values.append(float(text))
            except ValueError:
                raise ValueError(
                    f"path {os.fspath(path)!r}, line {line_number}: {text!r} is not a number; "
                    f"the cost file must have one number per line and no header."
                ) from None
    if not values:
        raise ValueError(f"path {os.fspath(path)!r} holds no costs (one number per line).")
    return _checked_costs(np.asarray(values, dtype=np.float64), path)


def _checked_costs(costs: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    return v.check_costs(costs, costs.shape[0], name=f"the costs in {os.fspath(path)!r}")


def load_arrays(
    probs_or_logits_path: str | os.PathLike,
    labels_path: str | os.PathLike | None = None,
    costs: Any = None,
    *,
    axis_order: str = "samples-first",
    input: str = "auto",
) -> ExitData:
    """Build an :class:`~eeopt.data.ExitData` from plain ``.npy``/``.npz`` arrays.

    Parameters
    ----------
    probs_or_logits_path : str or path-like
        ``.npy`` with one array, or ``.npz`` with a single array or one named ``probs`` or
        ``logits``; shape ``(n_samples, n_exits, n_classes)``, or ``(n_exits, n_samples,
        n_classes)`` with ``axis_order="exits-first"``.
    labels_path : str or path-like, optional
        ``.npy``/``.npz`` with the labels ``(n_samples,)``.
    costs : array-like of shape (n_exits,) or str or path-like, optional
        Cumulative costs, or a cost file for :func:`read_costs`.
    axis_order : {"samples-first", "exits-first"}, default="samples-first"
        The layout of the array; exits-first arrays are transposed.
    input : {"auto", "logits", "probs"}, default="auto"
        As in :class:`~eeopt.data.ExitData`.
    """
    if axis_order not in AXIS_ORDERS:
        raise ValueError(f"axis_order must be one of {list(AXIS_ORDERS)}, got {axis_order!r}.")
    arr = _read_array(probs_or_logits_path, "probs_or_logits_path", ("probs", "logits"))
    if arr.ndim != 3:
        raise ValueError(
            f"probs_or_logits_path must hold a 3-D array (n_samples, n_exits, n_classes), got "
            f"shape {arr.shape}."
        )
    if axis_order == "exits-first":
        arr = np.ascontiguousarray(arr.transpose(1, 0, 2))
    labels = None if labels_path is None else _read_array(labels_path, "labels_path", ("labels",))
    if isinstance(costs, (str, os.PathLike)):
        costs = read_costs(costs)
    _check_costs_length(costs, arr.shape[1])
    return ExitData(
        arr, labels, costs, input=input, metadata={"source": os.fspath(probs_or_logits_path)}
    )


def save_exit_data(data: ExitData, path: str | os.PathLike) -> None:
    """Write ``data`` as eeopt's compressed ``.npz`` (see :meth:`ExitData.save`)."""
    if not isinstance(data, ExitData):
        raise TypeError(f"data must be an ExitData, got {type(data).__name__}.")
    data.save(path)


def _read_array(path: str | os.PathLike, name: str, keys: tuple[str, ...]) -> np.ndarray:
    suffix = Path(path).suffix
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix != ".npz":
        raise ValueError(f"{name} must be a .npy or .npz file, got {os.fspath(path)!r}.")
    with np.load(path, allow_pickle=False) as f:
        for key in keys:
            if key in f.files:
                return f[key]
        if len(f.files) == 1:
            return f[f.files[0]]
        raise ValueError(
            f"{name} {os.fspath(path)!r} holds {f.files}: name the array one of {list(keys)} "
            f"or keep a single array in the file."
        )


def _check_costs_length(costs: Any, n_exits: int) -> None:
    # ExitData checks this too; here the message can say where the costs usually come from.
    if costs is None or np.ndim(costs) != 1:
        return
    if len(costs) != n_exits:
        raise ValueError(
            f"costs has {len(costs)} values but the outputs have {n_exits} exits: give one "
            f"cumulative cost per exit (check that the cost file belongs to this model)."
        )
