"""Real multi-exit outputs shipped with eeopt, ready to fit policies on.

Each dataset has a validation split (fit policies on it) and a held-out test split, cached from
a real multi-exit network; ``data/README.md`` is the datasheet of each (provenance, licence,
model, per-exit accuracy, costs, the command that regenerates it, checksums).

``costs`` holds the cumulative FLOPs per exit (deterministic); the measured cumulative CPU
latency per sample is in ``metadata["costs_seconds"]`` (use ``data.with_costs(...)`` to
evaluate in seconds).

Examples
--------
>>> from eeopt import datasets
>>> datasets.names()
['digits', 'minilm-reviews', 'mnist1d']
>>> val, test = datasets.load_both("mnist1d")
>>> val.n_exits, val.n_classes
(7, 10)
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import numpy as np

from eeopt import _validation as v
from eeopt.data import ExitData

SPLITS = ("val", "test")
_PACKAGE = "eeopt._data"


def names() -> list[str]:
    """Names of the shipped datasets, sorted."""
    found = {
        entry.name[: -len("_val.npz")]
        for entry in resources.files(_PACKAGE).iterdir()
        if entry.name.endswith("_val.npz")
    }
    return sorted(found)


def load(name: str, split: str = "val", n_samples: int | None = None) -> ExitData:
    """One split of a shipped dataset.

    Parameters
    ----------
    name : str
        One of :func:`names`.
    split : {"val", "test"}, default="val"
        ``"val"`` to fit policies on, ``"test"`` to evaluate them.
    n_samples : int, optional
        Keep only the first ``n_samples`` samples (a quick look; the files are in random
        order).

    Returns
    -------
    ExitData
        probs ``(n_samples, n_exits, n_classes)`` float32, labels ``(n_samples,)``, costs
        ``(n_exits,)`` cumulative FLOPs, and metadata (``source``, ``model``, ``licence``,
        ``costs_seconds``, ``exit_accuracy``, ...).
    """
    available = names()
    if name not in available:
        raise ValueError(f"name must be one of {available}, got {name!r}.")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}.")
    if n_samples is not None:
        n_samples = v.check_positive_int(n_samples, "n_samples")
    entry = resources.files(_PACKAGE).joinpath(f"{name}_{split}.npz")
    with resources.as_file(entry) as path:
        data = ExitData.load(path)
    if n_samples is not None and n_samples < data.n_samples:
        data = data.subset(np.arange(n_samples))
    return data


def load_both(name: str, n_samples: int | None = None) -> tuple[ExitData, ExitData]:
    """``(val, test)`` of a shipped dataset: fit on the first, evaluate on the second
    (each cut to its first ``n_samples`` samples if given)."""
    return load(name, "val", n_samples), load(name, "test", n_samples)


def checksum(data: ExitData) -> str:
    """SHA-256 of the deterministic arrays of ``data``, as a hex string.

    Hashes the bytes of ``probs`` (float32), ``labels`` (int64) and ``costs`` (float64), in that
    order, little-endian and C-contiguous. Metadata is left out: it holds measured latencies,
    which change from run to run.
    """
    digest = hashlib.sha256()
    digest.update(data.probs.astype("<f4", copy=False).tobytes(order="C"))
    if data.labels is not None:
        digest.update(data.labels.astype("<i8", copy=False).tobytes(order="C"))
    digest.update(data.costs.astype("<f8", copy=False).tobytes(order="C"))
    return digest.hexdigest()


def expected_checksums() -> dict[str, str]:
    """The checksums recorded when the shipped files were built, ``{file name: sha256}``."""
    text = resources.files(_PACKAGE).joinpath("checksums.json").read_text(encoding="utf-8")
    return dict(json.loads(text))
