"""ExitData: the validated container of cached multi-exit outputs."""

from __future__ import annotations

import json
import os
from functools import cached_property
from typing import Any

import numpy as np

from eeopt import _validation as v
from eeopt import scores as _scores

#: "Leave as it is" for :meth:`ExitData.replace` (None means "none").
_KEEP = object()
#: Cached derived arrays that do not depend on the labels: shared by :meth:`ExitData.replace`.
_LABEL_FREE = ("predictions", "maxprob", "entropy", "margin", "vote", "patience")


class ExitData:
    """Per-exit class probabilities of a multi-exit model, with labels and exit costs.

    Parameters
    ----------
    probs : array-like of shape (n_samples, n_exits, n_classes)
        Probabilities, or logits (see ``input``). float32 and float64 are kept as given.
    labels : array-like of shape (n_samples,), optional
        Integer class indices in ``[0, n_classes)``. Needed to fit to a target and to evaluate.
    costs : array-like of shape (n_exits,), optional
        **Cumulative** cost of obtaining exit k's prediction (FLOPs, MACs or seconds): positive
        and non-decreasing. Default ``[1, 2, ..., n_exits]``.
    input : {"auto", "logits", "probs"}, default="auto"
        ``"auto"`` treats the array as probabilities only if every value is in [0, 1] and every
        row sums to 1 within 1e-4; otherwise a stable softmax is applied.
    metadata : dict, optional
        JSON-serialisable information (source, model, cost units, ...), saved with the data.
    validate : bool, default=True
        False trusts the arrays as given: ``probs`` a read-only float array of probabilities
        ``(n_samples, n_exits, n_classes)``, ``labels`` int64 or None, ``costs`` float64 or
        None. Nothing is checked, copied or converted (as torchmetrics' ``validate_args``);
        for arrays that were validated before, where the checks would cost as much as the work.
    name : str, default="probs"
        What error messages call the array (``"logits"`` from :meth:`from_logits`).

    Attributes
    ----------
    probs : ndarray of shape (n_samples, n_exits, n_classes), read-only
    labels : ndarray of shape (n_samples,) or None
    costs : ndarray of shape (n_exits,), float64
    has_costs : bool
        Whether costs were given (False: the default ``[1, ..., n_exits]``). A policy
        evaluated on data with costs reports in them; on data without, in its own.
    predictions, maxprob, entropy, margin, vote, patience : ndarray of shape (n_samples, n_exits)
        Derived per-exit quantities, computed once on first use.
    correct : ndarray of shape (n_samples, n_exits), bool
        Whether each exit's argmax equals the label (needs labels).

    Examples
    --------
    >>> import numpy as np, eeopt
    >>> logits = np.random.default_rng(0).normal(size=(100, 3, 4))
    >>> labels = np.random.default_rng(1).integers(0, 4, size=100)
    >>> data = eeopt.ExitData.from_logits(logits, labels, costs=[1.0, 2.0, 3.0])
    >>> data.n_samples, data.n_exits, data.n_classes
    (100, 3, 4)
    """

    def __init__(
        self,
        probs: Any,
        labels: Any = None,
        costs: Any = None,
        *,
        input: str = "auto",
        metadata: dict | None = None,
        validate: bool = True,
        name: str = "probs",
    ) -> None:
        if not validate:
            # Trusted arrays from eeopt's own code paths (subsets, the torch runtime), as
            # torchmetrics' ``validate_args=False``: no check, no copy, no softmax.
            self.probs = probs
            self.labels = labels
            self.costs = (
                np.arange(1, probs.shape[1] + 1, dtype=np.float64) if costs is None else costs
            )
            self.has_costs = costs is not None
            self.metadata = {} if metadata is None else metadata
            return
        v.check_choice(input, "input", v.INPUT_KINDS)
        v.check_shapes_agree(np.shape(probs), labels, costs, name=name)
        arr = v.check_float_array(probs, name, ndim=3)
        n_samples, n_exits, n_classes = arr.shape
        if n_classes < 2:
            raise ValueError(f"{name} must have at least 2 classes (last axis), got {n_classes}.")
        is_probs = v.looks_like_probs(arr)
        if input == "probs" and not is_probs:
            raise ValueError(
                f"{name} must hold probabilities with input='probs': values in [0, 1] and rows "
                f"summing to 1 (within {v.PROB_SUM_ATOL}). Pass input='logits' for raw outputs."
            )
        if input == "logits" or (input == "auto" and not is_probs):
            arr = _scores.softmax(arr.astype(arr.dtype, copy=True))
        arr = arr.view()
        arr.flags.writeable = False
        self.probs = arr
        self.labels = None if labels is None else v.check_labels(labels, n_samples, n_classes)
        self.costs = v.check_costs(costs, n_exits)
        self.has_costs = costs is not None
        self.metadata = v.check_metadata(metadata)

    @classmethod
    def from_logits(
        cls, logits: Any, labels: Any = None, costs: Any = None, *, metadata: dict | None = None
    ) -> ExitData:
        """Build from raw exit logits ``(n_samples, n_exits, n_classes)`` (stable softmax)."""
        return cls(logits, labels, costs, input="logits", metadata=metadata, name="logits")

    # -- shape ---------------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return self.probs.shape[0]

    @property
    def n_exits(self) -> int:
        return self.probs.shape[1]

    @property
    def n_classes(self) -> int:
        return self.probs.shape[2]

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        name = self.metadata.get("name")
        label = f" {name!r}" if name else ""
        return (
            f"ExitData{label}(n_samples={self.n_samples}, n_exits={self.n_exits}, "
            f"n_classes={self.n_classes}, labels={'yes' if self.labels is not None else 'no'}, "
            f"costs={self.costs.tolist()})"
        )

    # -- derived quantities (cached) -----------------------------------------------------
    @cached_property
    def predictions(self) -> np.ndarray:
        return _readonly(_scores.exit_predictions(self.probs))

    @cached_property
    def maxprob(self) -> np.ndarray:
        return _readonly(_scores.maxprob(self.probs, self.predictions))

    @cached_property
    def entropy(self) -> np.ndarray:
        return _readonly(_scores.entropy_confidence(self.probs))

    @cached_property
    def margin(self) -> np.ndarray:
        return _readonly(_scores.margin(self.probs))

    @cached_property
    def vote(self) -> np.ndarray:
        return _readonly(_scores.vote(self.predictions, self.n_classes))

    @cached_property
    def patience(self) -> np.ndarray:
        return _readonly(_scores.patience(self.predictions))

    @cached_property
    def correct(self) -> np.ndarray:
        return _readonly(self.predictions == self.require_labels()[:, None])

    @property
    def exit_accuracy(self) -> np.ndarray:
        """Accuracy of each exit on its own, ``(n_exits,)``."""
        return self.correct.mean(axis=0)

    def score(self, name: str) -> np.ndarray:
        """The confidence score ``name`` (one of ``eeopt.scores.SCORE_NAMES``), ``(n, n_exits)``."""
        v.check_choice(name, "score", _scores.SCORE_NAMES)
        return getattr(self, name)

    def require_labels(self, purpose: str = "this") -> np.ndarray:
        if self.labels is None:
            raise ValueError(f"labels are required for {purpose}; pass labels=.")
        return self.labels

    # -- derived containers --------------------------------------------------------------
    def subset(self, indices: Any) -> ExitData:
        """The samples at ``indices`` (an index array or boolean mask), same costs/metadata."""
        idx = np.asarray(indices)
        probs = _readonly(self.probs[idx])
        labels = None if self.labels is None else self.labels[idx]
        costs = self.costs if self.has_costs else None
        return ExitData(probs, labels, costs, metadata=self.metadata, validate=False)

    def with_costs(self, costs: Any) -> ExitData:
        """The same outputs with other cumulative costs (say latency instead of FLOPs)."""
        return self.replace(costs=costs)

    def replace(self, *, labels: Any = _KEEP, costs: Any = _KEEP) -> ExitData:
        """The same outputs with other labels and/or costs (each validated).

        Derived arrays that do not depend on the labels (scores, predictions) are shared, not
        recomputed. ``labels=None`` drops the labels; ``costs=None`` gives ``[1, ..., n_exits]``.
        """
        if labels is not _KEEP and labels is not None:
            labels = v.check_labels(labels, self.n_samples, self.n_classes)
        if costs is _KEEP:
            costs = self.costs if self.has_costs else None
        elif costs is not None:
            costs = v.check_costs(costs, self.n_exits)
        new = ExitData(
            self.probs,
            self.labels if labels is _KEEP else labels,
            costs,
            metadata=self.metadata,
            validate=False,
        )
        for key in _LABEL_FREE:
            if key in self.__dict__:
                new.__dict__[key] = self.__dict__[key]
        return new

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write a compressed ``.npz`` with keys ``probs``, ``labels``, ``costs``, ``metadata``.

        ``labels`` is stored as an empty array when absent; ``metadata`` is a JSON string.
        """
        labels = np.empty(0, dtype=np.int64) if self.labels is None else self.labels
        np.savez_compressed(
            path,
            probs=self.probs,
            labels=labels,
            costs=self.costs,
            metadata=np.array(json.dumps(self.metadata)),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> ExitData:
        """Read a file written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as f:
            missing = {"probs", "costs"} - set(f.files)
            if missing:
                raise ValueError(
                    f"path {os.fspath(path)!r} is not an eeopt .npz: missing key(s) "
                    f"{sorted(missing)}; it needs probs, labels, costs (and metadata)."
                )
            probs = f["probs"]
            labels = f["labels"] if "labels" in f.files and f["labels"].size else None
            costs = f["costs"]
            metadata = json.loads(str(f["metadata"])) if "metadata" in f.files else {}
        return cls(probs, labels, costs, input="probs", metadata=metadata)


def as_exit_data(
    logits: Any,
    labels: Any = None,
    costs: Any = None,
    *,
    input: str = "auto",
    name: str = "logits",
) -> ExitData:
    """Accept an ExitData or arrays; arrays are validated into an ExitData.

    With an ExitData, ``labels`` and ``costs`` given here replace the stored ones.
    """
    if isinstance(logits, ExitData):
        if labels is None and costs is None:
            return logits
        return logits.replace(
            labels=_KEEP if labels is None else labels, costs=_KEEP if costs is None else costs
        )
    return ExitData(logits, labels, costs, input=input, name=name)


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr
