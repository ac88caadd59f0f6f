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

import csv
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
    MSDNet's ``Tester.calc_logit`` stores the targets as a **float32** tensor
    (``torch.Tensor().resize_(n).copy_(targets)``); whole-number floats become integer labels,
    other values are an error naming the split. Forks that keep the LongTensor, or store logits
    instead of softmax outputs, load as well (``*_pred`` is read with ``input="auto"``).

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
        labels = _class_indices(labels, f"{split}_target in {os.fspath(path)!r}")
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


def _class_indices(labels: np.ndarray, name: str) -> np.ndarray:
    """Labels as int64: integer arrays as they are; floats only when every value is a whole
    number (MSDNet stores its targets in a float tensor)."""
    if not np.issubdtype(labels.dtype, np.floating):
        return labels
    whole = np.isfinite(labels) & (labels == np.round(labels))
    if not whole.all():
        bad = labels[~whole][:3].tolist()
        raise ValueError(
            f"{name} holds non-integral values (e.g. {bad}); class indices must be whole "
            f"numbers: check that this is the cache's target tensor."
        )
    return labels.astype(np.int64)


def _check_costs_length(costs: Any, n_exits: int) -> None:
    # ExitData checks this too; here the message can say where the costs usually come from.
    if costs is None or np.ndim(costs) != 1:
        return
    if len(costs) != n_exits:
        raise ValueError(
            f"costs has {len(costs)} values but the outputs have {n_exits} exits: give one "
            f"cumulative cost per exit (check that the cost file belongs to this model)."
        )


#: Table layouts :func:`read_table` understands.
TABLE_LAYOUTS = ("auto", "wide", "long")


def read_table(
    path: str | os.PathLike,
    *,
    layout: str = "auto",
    costs: Any = None,
    pred_prefix: str = "pred_",
    conf_prefix: str = "conf_",
    label_column: str = "label",
    sample_column: str = "sample",
    exit_column: str = "exit",
    pred_column: str = "pred",
    conf_column: str = "conf",
    n_classes: int | None = None,
    confidence_name: str = "maxprob",
) -> ExitData:
    r"""Per-exit predictions (and confidences) from a CSV or Parquet table, as published results
    files are.

    Layouts:

    - **wide**: one row per sample, columns ``pred_1 .. pred_K`` (any integer suffixes, taken in
      numeric order: ``pred_0 .. pred_{K-1}`` too), optionally ``conf_1 .. conf_K`` with the
      same suffixes, and optionally ``label``;
    - **long**: one row per sample and exit, columns ``sample``, ``exit``, ``pred``, optionally
      ``conf`` and ``label`` (the same label on every row of a sample). Every sample has every
      exit exactly once; exits are taken in sorted order and samples in order of first
      appearance.

    Column names are options; ``layout="auto"`` picks long when the table has ``exit_column``
    and ``pred_column``, else wide. CSV needs nothing beyond numpy; Parquet needs pyarrow
    (``pip install "eeopt[io]"``).

    Parameters
    ----------
    path : str or path-like
        ``.csv`` (comma-separated, one header line) or ``.parquet``.
    layout : {"auto", "wide", "long"}, default="auto"
    costs : array-like or path, optional
        Cumulative cost per exit, or a cost file for :func:`read_costs`.
    n_classes, confidence_name
        As in :meth:`eeopt.ExitData.from_predictions`.

    Returns
    -------
    ExitData
        Score-only data (:meth:`eeopt.ExitData.from_predictions`).

    Examples
    --------
    >>> import pathlib, tempfile, eeopt
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "exits.csv"
    >>> _ = path.write_text("pred_1,conf_1,pred_2,conf_2,label\n3,0.4,1,0.9,1\n2,0.8,2,0.95,2\n")
    >>> data = eeopt.io.read_table(path)
    >>> data.n_samples, data.n_exits, data.content, data.exit_accuracy.tolist()
    (2, 2, 'predictions + maxprob', [0.5, 1.0])
    """
    if layout not in TABLE_LAYOUTS:
        raise ValueError(f"layout must be one of {list(TABLE_LAYOUTS)}, got {layout!r}.")
    columns = _read_columns(Path(path))
    if layout == "auto":
        layout = "long" if exit_column in columns and pred_column in columns else "wide"
    where = f"table {os.fspath(path)!r}"
    if layout == "wide":
        preds, conf, labels = _wide(columns, pred_prefix, conf_prefix, label_column, where)
    else:
        preds, conf, labels = _long(
            columns, sample_column, exit_column, pred_column, conf_column, label_column, where
        )
    if isinstance(costs, (str, os.PathLike)):
        costs = read_costs(costs)
    return ExitData.from_predictions(
        preds,
        conf,
        labels,
        costs,
        n_classes=n_classes,
        confidence_name=confidence_name,
        metadata={"source": os.fspath(path)},
    )


def _read_columns(path: Path) -> dict[str, np.ndarray]:
    """Column name -> array, from a CSV (numbers only) or a Parquet file."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError(
                f"reading the Parquet file {os.fspath(path)!r} needs pyarrow: pip install "
                f'"eeopt[io]" (or save the table as CSV).'
            ) from None
        table = pq.read_table(path)
        return {name: table.column(name).to_numpy() for name in table.column_names}
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first name
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise ValueError(f"table {os.fspath(path)!r} is empty; it needs a header.") from None
        rows = [row for row in reader if row]
    if not rows:
        raise ValueError(f"table {os.fspath(path)!r} has a header but no rows.")
    out = {}
    for i, name in enumerate(header):
        try:
            values = [row[i] for row in rows]
        except IndexError:
            raise ValueError(
                f"table {os.fspath(path)!r}: a row has fewer fields than the header "
                f"({len(header)})."
            ) from None
        out[name] = _numbers(values, name, path)
    return out


def _numbers(values: list[str], name: str, path: Path) -> np.ndarray:
    """A CSV column as numbers (int64 when every field is a whole number written without a
    point), or as strings when a field is not a number (sample ids may be names)."""
    try:
        arr = np.array([float(x) for x in values])
    except ValueError:
        return np.array(values)
    whole = np.isfinite(arr) & (arr == np.round(arr))
    return arr.astype(np.int64) if whole.all() and "." not in "".join(values) else arr


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _suffixed(columns: dict[str, np.ndarray], prefix: str) -> list[tuple[int, str]]:
    found = []
    for name in columns:
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            found.append((int(name[len(prefix) :]), name))
    return sorted(found)


def _wide(columns, pred_prefix, conf_prefix, label_column, where):
    preds = _suffixed(columns, pred_prefix)
    if not preds:
        raise ValueError(
            f"{where} has no {pred_prefix}<k> columns (wide layout) and no exit/pred columns "
            f"(long layout); its columns are {sorted(columns)}: name them, or pass "
            f"pred_prefix=/layout=."
        )
    confs = _suffixed(columns, conf_prefix)
    if confs and [k for k, _ in confs] != [k for k, _ in preds]:
        raise ValueError(
            f"{where}: the {conf_prefix}<k> columns {[n for _, n in confs]} do not match the "
            f"{pred_prefix}<k> columns {[n for _, n in preds]}; give one confidence per exit."
        )
    pred = np.column_stack([_as_int(columns[n], n, where) for _, n in preds])
    conf = (
        np.column_stack([_numeric(columns[n], n, where, "a confidence") for _, n in confs]).astype(
            np.float64
        )
        if confs
        else None
    )
    labels = columns.get(label_column)
    return pred, conf, None if labels is None else _as_int(labels, label_column, where)


def _long(columns, sample_column, exit_column, pred_column, conf_column, label_column, where):
    for name in (sample_column, exit_column, pred_column):
        if name not in columns:
            raise ValueError(
                f"{where} (long layout) has no column {name!r}; its columns are {sorted(columns)}."
            )
    samples, sample_index = np.unique(columns[sample_column], return_inverse=True)
    first_seen = np.full(samples.shape[0], np.iinfo(np.int64).max)
    np.minimum.at(first_seen, sample_index, np.arange(sample_index.shape[0]))
    rank = np.empty(samples.shape[0], dtype=np.int64)
    rank[np.argsort(first_seen, kind="stable")] = np.arange(samples.shape[0])
    row = rank[sample_index]
    if columns[exit_column].dtype.kind not in "iu":
        # Names would sort as text ("exit10" before "exit2"): the order must be explicit.
        raise ValueError(
            f"{where}: column {exit_column!r} must hold exit numbers (0..K-1 or 1..K, in depth "
            f"order), got {columns[exit_column][0]!r}; number the exits."
        )
    exits, col = np.unique(columns[exit_column], return_inverse=True)
    n, k = samples.shape[0], exits.shape[0]
    seen = np.zeros((n, k), dtype=np.int64)
    np.add.at(seen, (row, col), 1)
    if (seen != 1).any():
        bad = np.argwhere(seen != 1)[0]
        raise ValueError(
            f"{where}: sample {samples[rank.tolist().index(bad[0])]!r} has exit "
            f"{exits[bad[1]]!r} {seen[tuple(bad)]} times; every sample needs every exit once."
        )
    pred = np.empty((n, k), dtype=np.int64)
    pred[row, col] = _as_int(columns[pred_column], pred_column, where)
    conf = None
    if conf_column in columns:
        conf = np.empty((n, k))
        conf[row, col] = _numeric(columns[conf_column], conf_column, where, "a confidence")
    labels = None
    if label_column in columns:
        values = _as_int(columns[label_column], label_column, where)
        labels = np.empty(n, dtype=np.int64)
        labels[row] = values
        if (labels[row] != values).any():
            raise ValueError(f"{where}: a sample has different {label_column!r} on its rows.")
    return pred, conf, labels


def _numeric(values: np.ndarray, name: str, where: str, what: str) -> np.ndarray:
    """The column as numbers, or an error naming the first field that is not one."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.number):
        bad = next(x for x in values.tolist() if not _is_number(str(x)))
        raise ValueError(f"{where}: column {name!r} holds {bad!r}, not {what}.")
    return values


def _as_int(values: np.ndarray, name: str, where: str) -> np.ndarray:
    values = _numeric(values, name, where, "a class index")
    return _class_indices(values, f"column {name!r} of {where}")
