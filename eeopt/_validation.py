"""The boundary checks of eeopt: arrays, costs, labels, budgets and method options.

Public functions call these on their arguments; the code behind them trusts its inputs. Each
message names the argument and says how to fix it. Checks that belong to one file format live
with its reader (:mod:`eeopt.io`, :func:`eeopt.load_policy`) and call these for the arrays.

Method options are declared as **constraints** (:class:`Interval`, :class:`Choice`,
:class:`Boolean`, ...), in the spirit of scikit-learn's ``_parameter_constraints``: each method's
spec lists its options once and :func:`eeopt.fit` validates them from there.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

INPUT_KINDS = ("auto", "logits", "probs")
#: Tolerance on row sums when deciding (input="auto") or checking (input="probs") probabilities.
PROB_SUM_ATOL = 1e-4


def check_float_array(x: Any, name: str, ndim: int) -> np.ndarray:
    """Return ``x`` as a floating array of ``ndim`` dimensions, non-empty and finite.

    float32 and float64 are kept as given (no copy, no upcast); integer and boolean input is
    converted to float64, float16 to float32.
    """
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}.")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ValueError(f"{name} could not be read as an array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}.")
    if arr.ndim != ndim:
        shape_names = {
            1: "(n,)",
            2: "(n_samples, n_exits)",
            3: "(n_samples, n_exits, n_classes)",
        }
        raise ValueError(
            f"{name} must have {ndim} dimensions {shape_names.get(ndim, '')}, "
            f"got shape {arr.shape}."
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one sample.")
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    n_bad = count_nonfinite(arr)
    if n_bad:
        raise ValueError(
            f"{name} contains {n_bad} NaN or infinite value(s); remove or repair those samples."
        )
    return arr


#: Rows per block when a check scans a large array, so that no temporary the size of the
#: array is made (a memory-mapped cache stays on disk).
_CHECK_ROWS = 1 << 16


def _blocks(arr: np.ndarray):
    for start in range(0, arr.shape[0], _CHECK_ROWS):
        yield arr[start : start + _CHECK_ROWS]


def count_nonfinite(arr: np.ndarray) -> int:
    """Number of NaN or infinite values, scanned in row blocks."""
    if not np.issubdtype(arr.dtype, np.floating):
        return 0
    return int(sum(block.size - np.count_nonzero(np.isfinite(block)) for block in _blocks(arr)))


def check_int_array(x: Any, name: str, ndim: int) -> np.ndarray:
    """``x`` as an integer array of ``ndim`` dimensions, non-empty, values >= 0 (dtype kept:
    int32 stays int32). Whole-number floats are refused with the conversion to use."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be an array of integer classes, got {type(x).__name__}.")
    arr = _class_index_dtype(np.asarray(x), name, "")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one sample.")
    if arr.min() < 0:
        raise ValueError(f"{name} must be class indices >= 0; found {arr.min()}.")
    return arr


def _class_index_dtype(arr: np.ndarray, name: str, where: str) -> np.ndarray:
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"{name} must hold integer class indices{where}, got dtype {arr.dtype}; convert "
            f"with {name}.astype(int) if they are whole numbers."
        )
    return arr


def check_unit_interval(arr: np.ndarray, name: str) -> None:
    """Every value in [0, 1] (after :func:`check_float_array`: finite)."""
    low, high = arr.min(), arr.max()
    if low < 0 or high > 1:
        raise ValueError(
            f"{name} must lie in [0, 1] (a probability-like confidence); found values in "
            f"[{low:g}, {high:g}]."
        )


def looks_like_probs(arr: np.ndarray) -> bool:
    """True if every value is in [0, 1] and every row (last axis) sums to 1 within 1e-4."""
    if arr.min() < 0 or arr.max() > 1:
        return False
    return all(
        np.all(np.abs(block.sum(axis=-1, dtype=np.float64) - 1.0) <= PROB_SUM_ATOL)
        for block in _blocks(arr)
    )


def check_metadata(metadata: Any, name: str = "metadata") -> dict:
    """A JSON-serialisable dict (a copy); None gives {}."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError(f"{name} must be a dict, got {type(metadata).__name__}.")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be JSON-serialisable: {exc}") from None
    return dict(metadata)


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}.")
    return value


def check_shapes_agree(
    probs_shape: tuple[int, ...], labels: Any, costs: Any, name: str = "probs"
) -> None:
    """Catch the (n_exits, n_samples, n_classes) layout early, with a message that says so."""
    if len(probs_shape) != 3:
        return
    n_samples, n_exits = probs_shape[0], probs_shape[1]
    n_labels = np.shape(labels)[0] if labels is not None and np.ndim(labels) == 1 else None
    n_costs = np.shape(costs)[0] if costs is not None and np.ndim(costs) == 1 else None
    labels_fit_transposed = n_labels is not None and n_labels != n_samples and n_labels == n_exits
    costs_fit_transposed = n_costs is not None and n_costs != n_exits and n_costs == n_samples
    if (labels_fit_transposed or costs_fit_transposed) and not (
        (n_labels is not None and n_labels == n_samples)
        or (n_costs is not None and n_costs == n_exits)
    ):
        raise ValueError(
            f"{name} has shape {probs_shape}, but labels/costs only fit the transposed layout "
            f"(n_exits, n_samples, n_classes) used by MSDNet-family caches. eeopt puts samples "
            f"first: pass {name}.transpose(1, 0, 2), or read the cache with "
            f"eeopt.io.load_msdnet_cache."
        )


def check_labels(labels: Any, n_samples: int, n_classes: int, name: str = "labels") -> np.ndarray:
    if isinstance(labels, (str, bytes)):
        raise TypeError(f"{name} must be an array of integer class indices, got a string.")
    arr = _class_index_dtype(np.asarray(labels), name, f" in [0, {n_classes})")
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (n_samples,), got shape {arr.shape}.")
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} entries but there are {n_samples} samples; "
            f"pass one label per sample."
        )
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(
            f"{name} must lie in [0, {n_classes}) (n_classes = {n_classes}); "
            f"found values in [{arr.min()}, {arr.max()}]."
        )
    return arr.astype(np.int64, copy=False)


def check_costs(costs: Any, n_exits: int, name: str = "costs") -> np.ndarray:
    """Cumulative per-exit costs: positive, non-decreasing, finite, one per exit.

    ``None`` gives ``[1, 2, ..., n_exits]`` (the layer count used by PABEE and BEEM).
    """
    if costs is None:
        return np.arange(1, n_exits + 1, dtype=np.float64)
    arr = check_float_array(costs, name, ndim=1).astype(np.float64, copy=False)
    if arr.shape[0] != n_exits:
        raise ValueError(
            f"{name} must have one cumulative cost per exit ({n_exits}), got {arr.shape[0]}."
        )
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be positive; got {arr.tolist()}.")
    if np.any(np.diff(arr) < 0):
        raise ValueError(
            f"{name} must be non-decreasing (cumulative cost up to each exit); got "
            f"{arr.tolist()}. If these are per-stage costs, pass np.cumsum(costs)."
        )
    return arr


def check_budget(budget: Any, costs: np.ndarray, name: str = "budget") -> float:
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real):
        raise TypeError(f"{name} must be a number (a mean cost per sample), got {budget!r}.")
    budget = float(budget)
    if not np.isfinite(budget) or budget < costs[0] or budget > costs[-1]:
        raise ValueError(
            f"{name} must lie in [costs[0], costs[-1]] = [{costs[0]:g}, {costs[-1]:g}] "
            f"(a mean cost per sample in the units of costs); got {budget:g}."
        )
    return budget


def check_fraction(value: Any, name: str, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [{low}, {high}], got {value!r}.")
    value = float(value)
    if not (low <= value <= high):
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value:g}.")
    return value


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def check_options(
    method: str, options: Mapping[str, Any], allowed: Iterable[str], hint: str = ""
) -> None:
    """Every option is one the method takes; ``hint`` is appended to the message."""
    allowed = sorted(allowed)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for method {method!r}; "
            f"allowed: {', '.join(allowed) if allowed else 'none'}{hint}."
        )


def check_thresholds(value: Any, n_exits: int, name: str = "threshold") -> np.ndarray:
    """A direct threshold setting: a scalar for every early exit, or one per exit.

    Returns the ``(n_exits,)`` thresholds with the last exit at ``-inf`` (it always fires).
    ``+inf`` disables an exit. An array may have ``n_exits - 1`` entries (the early exits) or
    ``n_exits`` entries whose last is ``-inf``.
    """
    arr = np.asarray(value, dtype=np.float64) if not isinstance(value, str) else None
    if arr is None or arr.ndim > 1:
        raise TypeError(f"{name} must be a number or a 1-d array of numbers, got {value!r}.")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN; use +inf to disable an exit.")
    out = np.full(n_exits, -np.inf)
    if arr.ndim == 0:
        out[:-1] = float(arr)
        return out
    if arr.shape[0] == n_exits - 1:
        out[:-1] = arr
        return out
    if arr.shape[0] == n_exits:
        if arr[-1] != -np.inf:
            raise ValueError(
                f"{name}[-1] must be -inf: the last exit always fires. Pass {n_exits - 1} "
                f"values for the early exits, or end the array with -np.inf."
            )
        return arr.copy()
    raise ValueError(
        f"{name} must be a number or have {n_exits - 1} (early exits) or {n_exits} entries, "
        f"got {arr.shape[0]}."
    )


def check_random_state(random_state: Any, name: str = "random_state") -> np.random.Generator:
    """A numpy Generator from None, an int or a Generator (eeopt draws with the Generator API;
    scikit-learn's helper of the same name returns the legacy RandomState)."""
    if random_state is None or isinstance(random_state, (numbers.Integral, np.random.Generator)):
        if isinstance(random_state, bool):
            raise TypeError(f"{name} must be None, an int or a numpy Generator.")
        return np.random.default_rng(random_state)
    raise TypeError(f"{name} must be None, an int or a numpy Generator, got {random_state!r}.")


def check_weights(value: Any, n_exits: int, name: str = "weights") -> np.ndarray:
    """Per-exit weights: ``n_exits`` non-negative finite numbers, not all zero, as float64.

    A zero weight is legitimate: BEEM-A weighs each exit by its accuracy, which is 0 for an exit
    that is never right; its confidence then adds nothing to the score.
    """
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(
            f"{name} must be an array of {n_exits} non-negative numbers, got {value!r}."
        )
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be an array of {n_exits} positive numbers, got {value!r}."
        ) from None
    if arr.ndim != 1 or arr.shape[0] != n_exits:
        raise ValueError(
            f"{name} must have one weight per exit ({n_exits}), got shape {arr.shape}."
        )
    if not np.isfinite(arr).all() or np.any(arr < 0) or not np.any(arr > 0):
        raise ValueError(
            f"{name} must be non-negative and finite, with at least one positive; "
            f"got {arr.tolist()}."
        )
    return arr


# -- declared option constraints --------------------------------------------------------------
class Constraint:
    """What an option accepts; ``check(value, name, data)`` returns the normalised value or
    raises a ValueError/TypeError naming the option. ``data`` (an ExitData) is given to the
    checks that depend on it (a budget within the costs, one weight per exit)."""

    def check(self, value: Any, name: str, data: Any = None) -> Any:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover
        raise NotImplementedError


class Interval(Constraint):
    """A real or integer number in ``[low, high]`` (``None`` = unbounded; ``closed`` as in
    scikit-learn: "both", "left", "right", "neither"). Checked with scikit-learn's
    ``check_scalar``, plus what it lets through: booleans, NaN and infinities (an unbounded
    side still takes finite numbers only)."""

    def __init__(
        self, kind: str, low: float | None, high: float | None, closed: str = "both"
    ) -> None:
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def check(self, value: Any, name: str, data: Any = None) -> Any:
        from sklearn.utils import check_scalar

        target = numbers.Integral if self.kind == "int" else numbers.Real
        if isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be {self.describe()}, got {value!r}.")
        if isinstance(value, numbers.Real) and not np.isfinite(value):
            raise ValueError(f"{name} must be {self.describe()} (finite), got {value!r}.")
        check_scalar(
            value,
            name,
            target,
            min_val=self.low,
            max_val=self.high,
            include_boundaries=self.closed,
        )
        return int(value) if self.kind == "int" else float(value)

    def describe(self) -> str:
        kind = "an integer" if self.kind == "int" else "a number"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{kind} in {left}{low}, {high}{right}"


class Choice(Constraint):
    """One of a fixed set of strings."""

    def __init__(self, *values: str) -> None:
        self.values = values

    def check(self, value: Any, name: str, data: Any = None) -> str:
        return check_choice(value, name, self.values)

    def describe(self) -> str:
        return "one of " + ", ".join(repr(x) for x in self.values)


class IsNone(Constraint):
    """None itself (``AnyOf(Interval(...), IsNone())``: an option where None has a meaning)."""

    def check(self, value: Any, name: str, data: Any = None) -> None:
        if value is not None:
            raise TypeError(f"{name} must be None, got {value!r}.")

    def describe(self) -> str:
        return "None"


class Boolean(Constraint):
    """True or False (numpy booleans accepted)."""

    def check(self, value: Any, name: str, data: Any = None) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}.")
        return bool(value)

    def describe(self) -> str:
        return "True or False"


class Budget(Constraint):
    """A mean cost per sample within ``[costs[0], costs[-1]]`` of the data."""

    def check(self, value: Any, name: str, data: Any = None) -> float:
        return check_budget(value, data.costs, name)

    def describe(self) -> str:
        return "a mean cost per sample in [costs[0], costs[-1]]"


class Thresholds(Constraint):
    """A threshold for every early exit, or one per exit (:func:`check_thresholds`)."""

    def check(self, value: Any, name: str, data: Any = None) -> np.ndarray:
        return check_thresholds(value, data.n_exits, name)

    def describe(self) -> str:
        return "a number or an array with one threshold per (early) exit"


class Weights(Constraint):
    """Per-exit weights (:func:`check_weights`); None keeps the method's own."""

    def check(self, value: Any, name: str, data: Any = None) -> np.ndarray | None:
        return None if value is None else check_weights(value, data.n_exits, name)

    def describe(self) -> str:
        return "one non-negative weight per exit"


class UnitGrid(Constraint):
    """Values to try on ``[0, 1]``: an int n >= 2 (n evenly spaced, on a range the caller
    knows), returned as is, or the values themselves, a non-empty 1-d array in ``[0, 1]``,
    returned sorted without repeats. ``grid=``'s shared thresholds, BEEM's ``levels=``.

    Parameters
    ----------
    what : str
        What the values are ("thresholds", "error levels"), for the messages.
    why : str
        Why they lie in ``[0, 1]``, for the message of one that does not.
    """

    def __init__(self, what: str, why: str) -> None:
        self.what, self.why = what, why

    def check(self, value: Any, name: str, data: Any = None) -> int | np.ndarray:
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
            return int(Interval("int", 2, None).check(value, name))
        try:
            values = None if isinstance(value, str) else np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            values = None
        if values is None or values.ndim != 1 or values.size == 0:
            raise TypeError(f"{name} must be {self.describe()}, got {value!r}.")
        if not np.isfinite(values).all():
            raise ValueError(f"{name} must be {self.describe()}; it holds NaN or infinity.")
        if values.min() < 0.0 or values.max() > 1.0:
            raise ValueError(
                f"{name}: {self.what} must lie in [0, 1] ({self.why}); got values from "
                f"{values.min():g} to {values.max():g}."
            )
        return np.unique(values)

    def describe(self) -> str:
        return (
            f"an int n >= 2 (n evenly spaced {self.what}) or a 1-d array of {self.what} in [0, 1]"
        )


class NJobs(Constraint):
    """scikit-learn's ``n_jobs``: None (1, unless a ``joblib.parallel_config`` says
    otherwise), a positive count, or a negative one (-1: every core, -2: all but one, ...)."""

    def check(self, value: Any, name: str, data: Any = None) -> int | None:
        if value is None:
            return None
        value = Interval("int", None, None).check(value, name)
        if value == 0:
            raise ValueError(f"{name} must be {self.describe()}, not 0.")
        return int(value)

    def describe(self) -> str:
        return "None, a positive number of workers or a negative one (-1: every core)"


class AnyOf(Constraint):
    """The first of several constraints that accepts the value (``Interval(...)`` or
    ``Choice("auto")``); the error lists them all."""

    def __init__(self, *constraints: Constraint) -> None:
        self.constraints = constraints

    def check(self, value: Any, name: str, data: Any = None) -> Any:
        for constraint in self.constraints:
            try:
                return constraint.check(value, name, data)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"{name} must be {self.describe()}, got {value!r}.")

    def describe(self) -> str:
        return " or ".join(c.describe() for c in self.constraints)


class ScoreName(Constraint):
    """The name of a confidence score of :mod:`eeopt.scores`."""

    def check(self, value: Any, name: str, data: Any = None) -> str:
        from eeopt.scores import SCORE_NAMES

        return check_choice(value, name, SCORE_NAMES)

    def describe(self) -> str:
        from eeopt.scores import SCORE_NAMES

        return "one of " + ", ".join(repr(x) for x in SCORE_NAMES)
