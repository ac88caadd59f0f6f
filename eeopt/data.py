"""ExitData: the validated container of cached multi-exit outputs.

Three kinds of content, from the richest:

- **probabilities** ``(n_samples, n_exits, n_classes)`` (or logits, softmaxed once): every
  method and score works;
- **predictions and a confidence** ``(n_samples, n_exits)`` each
  (:meth:`ExitData.from_predictions`): what most repositories publish (each exit's argmax and
  its max probability) and all that can be stored for token-level language-model exits. Memory
  is O(n K). Everything that needs only the argmax and that confidence works: ``maxprob``,
  ``patience``, ``msdnet``, ``beem-c``, ``beem-a``, the oracle, fronts, comparisons, reports,
  the theory checks and certification;
- **predictions only**: ``patience``, the oracle and the consistency checks work.

A method or score that needs more than the data hold raises a ValueError naming what is missing
before any work starts.
"""

from __future__ import annotations

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
#: What each derived quantity needs besides the predictions, for data without probabilities.
_NEEDS_PROBS = ("probs", "maxprob", "entropy", "margin")
#: Confidences a score-only ExitData may hold (the score each one stands for).
CONFIDENCE_NAMES = ("maxprob", "entropy", "margin")
#: Methods that work without probabilities, for error messages.
_SCORE_ONLY_METHODS = "maxprob, patience, msdnet, beem-c and beem-a"


class ExitData:
    """Per-exit outputs of a multi-exit model, with labels and exit costs.

    Parameters
    ----------
    probs : array-like of shape (n_samples, n_exits, n_classes)
        Probabilities, or logits (see ``input``). float32 and float64 are kept as given.
        (Data without class vectors: :meth:`from_predictions`.)
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
        Only for data built from probabilities or logits (``has_probs``).
    labels : ndarray of shape (n_samples,) or None
    costs : ndarray of shape (n_exits,), float64
    has_costs : bool
        Whether costs were given (False: the default ``[1, ..., n_exits]``). A policy
        evaluated on data with costs reports in them; on data without, in its own.
    has_probs : bool
        Whether the data hold each exit's class probabilities.
    confidence_name : str or None
        For data from :meth:`from_predictions`: the score the given confidence is.
    n_classes_given : bool
        False where ``n_classes`` was inferred from predictions and labels (a lower bound).
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
        self.confidence_name = None
        if not validate:
            # Trusted arrays from eeopt's own code paths (subsets, the torch runtime), as
            # torchmetrics' ``validate_args=False``: no check, no copy, no softmax.
            self._set(probs, probs.shape, labels, costs, metadata)
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
        labels = None if labels is None else v.check_labels(labels, n_samples, n_classes)
        costs = None if costs is None else v.check_costs(costs, n_exits)
        self._set(arr, arr.shape, labels, costs, v.check_metadata(metadata))

    def _set(self, probs, shape, labels, costs, metadata, n_classes_given=True) -> None:
        self._probs = probs
        self.n_classes_given = n_classes_given
        self._shape = tuple(int(x) for x in shape)
        self.labels = labels
        self.has_costs = costs is not None
        self.costs = np.arange(1, shape[1] + 1, dtype=np.float64) if costs is None else costs
        self.metadata = {} if metadata is None else metadata

    @classmethod
    def from_logits(
        cls, logits: Any, labels: Any = None, costs: Any = None, *, metadata: dict | None = None
    ) -> ExitData:
        """Build from raw exit logits ``(n_samples, n_exits, n_classes)`` (stable softmax)."""
        return cls(logits, labels, costs, input="logits", metadata=metadata, name="logits")

    @classmethod
    def from_predictions(
        cls,
        predictions: Any,
        confidence: Any = None,
        labels: Any = None,
        costs: Any = None,
        *,
        n_classes: int | None = None,
        confidence_name: str = "maxprob",
        metadata: dict | None = None,
    ) -> ExitData:
        """Build from each exit's predicted class and (optionally) its confidence.

        What repositories publish (a per-exit argmax and its max probability, or hard
        predictions only), and all that can be kept for token-level exits of a language model:
        memory is O(n K), never (n, K, C). Integer and float32/float64 arrays are kept as given.

        Parameters
        ----------
        predictions : array-like of shape (n_samples, n_exits), int
            Each exit's predicted class (its argmax).
        confidence : array-like of shape (n_samples, n_exits), optional
            Each exit's confidence in ``[0, 1]``: by default its max class probability. Without
            it, patience, the oracle and the consistency checks work; threshold rules and BEEM
            say they need a confidence.
        labels : array-like of shape (n_samples,), optional
        costs : array-like of shape (n_exits,), optional
        n_classes : int, optional
            Default: inferred as ``max(predictions, labels) + 1`` (at least 2).
        confidence_name : {"maxprob", "entropy", "margin"}, default="maxprob"
            Which score ``confidence`` is: the threshold method of that name uses it, and
            ``maxprob`` (BEEM's ``C_k``) is available only when it is the max probability.
        metadata : dict, optional

        Examples
        --------
        >>> import eeopt
        >>> full = eeopt.datasets.load("mnist1d", "val")
        >>> scores = eeopt.ExitData.from_predictions(
        ...     full.predictions, full.maxprob, full.labels, full.costs)
        >>> scores.has_probs, scores.n_classes
        (False, 10)
        >>> policy = eeopt.fit(scores, method="maxprob", budget=500_000)
        >>> bool((policy.exit_index(full) == policy.exit_index(scores)).all())
        True
        """
        v.check_choice(confidence_name, "confidence_name", CONFIDENCE_NAMES)
        preds = v.check_int_array(predictions, "predictions", ndim=2)
        n_samples, n_exits = preds.shape
        if confidence is not None:
            confidence = v.check_float_array(confidence, "confidence", ndim=2)
            if confidence.shape != preds.shape:
                raise ValueError(
                    f"confidence must have the shape of predictions {preds.shape}, got "
                    f"{confidence.shape}."
                )
            v.check_unit_interval(confidence, "confidence")
        raw_labels = None if labels is None else np.asarray(labels)
        n_classes_given = n_classes is not None
        if n_classes is None:
            top = int(preds.max())
            if (
                raw_labels is not None
                and raw_labels.size
                and np.issubdtype(raw_labels.dtype, np.integer)
            ):
                top = max(top, int(raw_labels.max()))
            n_classes = max(top + 1, 2)
        else:
            n_classes = v.Interval("int", 2, None).check(n_classes, "n_classes")
        if preds.min() < 0 or preds.max() >= n_classes:
            raise ValueError(
                f"predictions must lie in [0, {n_classes}) (n_classes = {n_classes}); found "
                f"values in [{preds.min()}, {preds.max()}]."
            )
        derived = {"predictions": _readonly(preds.view())}
        if confidence is not None:
            derived[confidence_name] = _readonly(confidence.view())
        return cls._assemble(
            None,
            (n_samples, n_exits, n_classes),
            None if labels is None else v.check_labels(labels, n_samples, n_classes),
            None if costs is None else v.check_costs(costs, n_exits),
            v.check_metadata(metadata),
            confidence_name if confidence is not None else None,
            derived,
            n_classes_given,
        )

    @classmethod
    def _assemble(
        cls, probs, shape, labels, costs, metadata, confidence_name, derived, n_classes_given=True
    ) -> ExitData:
        """An ExitData from checked parts; ``derived`` pre-fills cached arrays (the given
        predictions and confidence, or those shared with another ExitData). The one place
        besides ``__init__`` that sets an ExitData up; used by this module only."""
        self = cls.__new__(cls)
        self.confidence_name = confidence_name
        self._set(probs, shape, labels, costs, metadata, n_classes_given)
        self.__dict__.update(derived)
        return self

    # -- shape and content -----------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return self._shape[0]

    @property
    def n_exits(self) -> int:
        return self._shape[1]

    @property
    def n_classes(self) -> int:
        return self._shape[2]

    @property
    def has_probs(self) -> bool:
        return self._probs is not None

    @property
    def probs(self) -> np.ndarray:
        if self._probs is None:
            self.require("probs")
        return self._probs

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        name = self.metadata.get("name")
        label = f" {name!r}" if name else ""
        content = "" if self.has_probs else f", content={self.content!r}"
        return (
            f"ExitData{label}(n_samples={self.n_samples}, n_exits={self.n_exits}, "
            f"n_classes={self.n_classes}, labels={'yes' if self.labels is not None else 'no'}, "
            f"costs={self.costs.tolist()}{content})"
        )

    @property
    def content(self) -> str:
        """``"probabilities"``, ``"predictions + <confidence_name>"`` or ``"predictions"``."""
        if self.has_probs:
            return "probabilities"
        if self.confidence_name is not None:
            return f"predictions + {self.confidence_name}"
        return "predictions"

    def provides(self, name: str) -> bool:
        """Whether the derived quantity ``name`` (``probs``, a score name, ``predictions``,
        ``correct``) can be computed from what these data hold (labels aside)."""
        if self.has_probs or name == self.confidence_name:
            return True
        return name not in _NEEDS_PROBS

    def require(self, *names: str, purpose: str | None = None) -> None:
        """A ValueError naming what is missing unless every quantity in ``names`` is available
        (:meth:`provides`): called before any long work starts."""
        missing = [n for n in names if not self.provides(n)]
        if not missing:
            return
        what = f"{purpose} reads" if purpose else "this reads"
        if self.confidence_name is None:
            held = "per-exit predictions only (no confidence)"
            fix = (
                "pass the per-exit confidence (ExitData.from_predictions(predictions, "
                "confidence)) or the probabilities; patience, the oracle and the consistency "
                "checks work on predictions alone"
            )
        else:
            held = f"per-exit predictions and confidence ({self.confidence_name!r}) only"
            fix = (
                f"use a method that needs only the argmax and that confidence "
                f"({_SCORE_ONLY_METHODS} for 'maxprob'), or load the probabilities"
            )
        raise ValueError(
            f"{what} {', '.join(repr(n) for n in missing)}, computed from each exit's full "
            f"probability vector; these data hold {held}: {fix}."
        )

    # -- derived quantities (cached) -----------------------------------------------------
    @cached_property
    def predictions(self) -> np.ndarray:
        return _readonly(_scores.exit_predictions(self.probs))

    @cached_property
    def maxprob(self) -> np.ndarray:
        self.require("maxprob")
        return _readonly(_scores.maxprob(self.probs, self.predictions))

    @cached_property
    def entropy(self) -> np.ndarray:
        self.require("entropy")
        return _readonly(_scores.entropy_confidence(self.probs))

    @cached_property
    def margin(self) -> np.ndarray:
        self.require("margin")
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
        """The samples at ``indices`` (an index array, a boolean mask or a slice; a slice gives
        views, not copies), same costs and metadata."""
        idx = indices if isinstance(indices, slice) else np.asarray(indices)
        labels = None if self.labels is None else self.labels[idx]
        costs = self.costs if self.has_costs else None
        if self.has_probs:
            probs = _readonly(self._probs[idx])
            # A slice shares the derived arrays computed so far (views, not copies).
            derived = {}
            if isinstance(idx, slice):
                derived = {k: self.__dict__[k][idx] for k in _LABEL_FREE if k in self.__dict__}
            return ExitData._assemble(
                probs, probs.shape, labels, costs, self.metadata, None, derived
            )
        derived = {"predictions": _readonly(self.predictions[idx])}
        if self.confidence_name is not None:
            derived[self.confidence_name] = _readonly(self.score(self.confidence_name)[idx])
        shape = (derived["predictions"].shape[0], *self._shape[1:])
        return ExitData._assemble(
            None,
            shape,
            labels,
            costs,
            self.metadata,
            self.confidence_name,
            derived,
            self.n_classes_given,
        )

    def with_costs(self, costs: Any) -> ExitData:
        """The same outputs with other cumulative costs (say latency instead of FLOPs)."""
        return self.replace(costs=costs)

    def replace(self, *, labels: Any = _KEEP, costs: Any = _KEEP) -> ExitData:
        """The same outputs with other labels and/or costs (each validated).

        Derived arrays that do not depend on the labels (scores, predictions) are shared, not
        recomputed. ``labels=None`` drops the labels; ``costs=None`` gives ``[1, ..., n_exits]``.
        """
        if labels is _KEEP:
            labels = self.labels
        elif labels is not None:
            labels = v.check_labels(labels, self.n_samples, self.n_classes)
        if costs is _KEEP:
            costs = self.costs if self.has_costs else None
        elif costs is not None:
            costs = v.check_costs(costs, self.n_exits)
        derived = {k: self.__dict__[k] for k in _LABEL_FREE if k in self.__dict__}
        return ExitData._assemble(
            self._probs,
            self._shape,
            labels,
            costs,
            self.metadata,
            self.confidence_name,
            derived,
            self.n_classes_given,
        )

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, compress: bool = True) -> None:
        """Write eeopt's cache file: a ``.npz`` (compressed unless ``compress=False``), or, for
        a path without the ``.npz`` suffix, a folder of ``.npy`` files.

        Keys: ``probs`` (or ``predictions`` and ``confidence``), ``labels`` (when present),
        ``costs`` (when given), ``metadata`` (JSON). An uncompressed ``.npz`` and a folder can be
        memory-mapped by :meth:`load` (``mmap=True``).
        """
        from eeopt import cachefile

        cachefile.write(self, path, compress=compress)

    @classmethod
    def load(cls, path: str | os.PathLike, *, input: str = "auto", mmap: bool = False) -> ExitData:
        """Read a cache: eeopt's own (:meth:`save`) or a researcher's ``np.savez`` of arrays.

        Parameters
        ----------
        path : str or path-like
            A ``.npz`` file or a folder of ``.npy`` files holding ``probs`` or ``logits``
            ``(n_samples, n_exits, n_classes)``, or ``predictions`` (and ``confidence``)
            ``(n_samples, n_exits)``; optionally ``labels`` ``(n_samples,)``, ``costs``
            ``(n_exits,)`` (default ``[1, ..., n_exits]``), ``n_classes``, ``metadata``.
        input : {"auto", "logits", "probs"}, default="auto"
            How to read ``probs`` (as :class:`ExitData`); arrays stored as ``logits`` are
            softmaxed whatever it says, unless it says "probs" (a conflict: an error).
        mmap : bool, default=False
            Memory-map the arrays instead of reading them (a folder, or an ``.npz`` written
            uncompressed): the data stay on disk and are read as they are used.
        """
        from eeopt import cachefile

        return cachefile.read(path, input=input, mmap=mmap)


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
