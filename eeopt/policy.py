"""Policies: fitted parameters + method name; exit_index / predict / evaluate; JSON files.

A policy holds what was fitted and computes per-exit scores; the exit rule itself lives in
:mod:`eeopt.engine`. Every subclass registers itself by class name so that
:func:`load_policy` can rebuild it from JSON.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from eeopt import _validation as v
from eeopt import engine
from eeopt.data import ExitData, as_exit_data

#: Rows per block when a policy scores many samples (:meth:`Policy.exit_index`).
ROWS_PER_BLOCK = 1 << 18
_FORMAT = "eeopt.policy"
_FORMAT_VERSION = 1
#: Versions of the policy format this eeopt reads.
_READABLE_VERSIONS = (1,)
_POLICY_CLASSES: dict[str, type[Policy]] = {}


class Policy:
    """A fitted early-exit policy.

    Attributes
    ----------
    method : str
        The method name (``"maxprob"``, ``"beem-a"``, ...).
    thresholds_ : ndarray of shape (n_exits,)
        Per-exit thresholds on the policy's score; ``+inf`` disables an exit, the last is
        ``-inf`` (it always fires).
    costs_ : ndarray of shape (n_exits,)
        The cumulative costs it was fitted with; used by :meth:`evaluate` by default.
    n_classes_ : int
    fit_info_ : dict
        How it was fitted: the target, the fitted parameter, accuracy and mean cost on the
        fitting data.
    fit_params_ : dict
        The arguments of :func:`eeopt.fit` that made it (method, options, target, seed):
        ``eeopt.fit(data, **policy.fit_params_)`` fits it again on the same data.
    guarantee_ : dict or None
        For a certified target (``eeopt.fit(..., delta=...)``): ``statement`` (in words),
        ``epsilon``, ``delta``, ``risk``, ``bound``, ``n_calibration``, the upper bound of every
        tested setting, ... (:mod:`eeopt.guarantee`). None otherwise.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _POLICY_CLASSES[cls.__name__] = cls

    def __init__(
        self,
        method: str,
        thresholds: np.ndarray,
        costs: np.ndarray,
        n_classes: int,
        fit_info: dict | None = None,
        fit_params: dict | None = None,
    ) -> None:
        self.method = method
        self.thresholds_ = np.asarray(thresholds, dtype=np.float64)
        self.costs_ = np.asarray(costs, dtype=np.float64)
        self.n_classes_ = int(n_classes)
        self.fit_info_ = dict(fit_info or {})
        self.fit_params_ = dict(fit_params or {})
        self.guarantee_: dict | None = None

    @property
    def n_exits_(self) -> int:
        return self.thresholds_.shape[0]

    # -- to be provided by subclasses ----------------------------------------------------
    def compute_scores(self, data: ExitData) -> np.ndarray:
        """Per-sample, per-exit scores ``(n_samples, n_exits)`` that the thresholds apply to."""
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        """Method-specific settings, JSON-serialisable."""
        return {}

    def prefix_scores(self, probs_prefix: np.ndarray) -> np.ndarray:
        """Scores of the first ``k + 1`` exits from their probabilities alone.

        Every policy's score at exit k depends only on exits ``0..k`` (a sample cannot see
        deeper exits before it reaches them), so a model run exit by exit can ask for the
        score of the exit it just computed: ``prefix_scores(probs[:, :k + 1])[:, k]``.

        Parameters
        ----------
        probs_prefix : ndarray of shape (n_samples, k + 1, n_classes)
            Probabilities of exits ``0..k``, ``k < n_exits``.

        Returns
        -------
        ndarray of shape (n_samples, k + 1)
        """
        n_prefix = probs_prefix.shape[1]
        if not 1 <= n_prefix <= self.n_exits_ or probs_prefix.shape[2] != self.n_classes_:
            raise ValueError(
                f"probs_prefix must have shape (n, k + 1 <= {self.n_exits_}, "
                f"{self.n_classes_}), got {probs_prefix.shape}."
            )
        prefix = ExitData(probs_prefix, costs=self.costs_[:n_prefix], input="probs")
        return self.compute_scores(prefix)

    @classmethod
    def _from_params(cls, common: dict[str, Any], params: dict[str, Any]) -> Policy:
        return cls(**common, **params)

    # -- use -----------------------------------------------------------------------------
    def _data(self, logits: Any, labels: Any = None, input: str = "auto") -> ExitData:
        data = as_exit_data(logits, labels, input=input)
        # Data without class vectors may infer fewer classes than the model has (a class no
        # exit predicted and no label names): that is no mismatch.
        classes_differ = data.n_classes != self.n_classes_
        if not data.has_probs and not data.n_classes_given:
            classes_differ = data.n_classes > self.n_classes_
        if data.n_exits != self.n_exits_ or classes_differ:
            raise ValueError(
                f"logits have {data.n_exits} exits and {data.n_classes} classes, but this "
                f"{self.method!r} policy was fitted on {self.n_exits_} exits and "
                f"{self.n_classes_} classes; pass outputs of the same model."
            )
        data.require(*self.requires(), purpose=f"the {self.method!r} policy")
        return data

    def _exits(self, data: ExitData) -> np.ndarray:
        """The exit rule on the policy's scores, in blocks of rows: a score at exit k depends on
        that sample's exits 0..k only, so blocks give the same exits, and the temporaries of a
        block (scores, comparisons) stay small however many samples a (memory-mapped) cache
        holds."""
        n = data.n_samples
        if n <= ROWS_PER_BLOCK:
            return engine.first_exit(self.compute_scores(data), self.thresholds_)
        exits = np.empty(n, dtype=np.int64)
        for start in range(0, n, ROWS_PER_BLOCK):
            block = data.subset(slice(start, start + ROWS_PER_BLOCK))
            exits[start : start + ROWS_PER_BLOCK] = engine.first_exit(
                self.compute_scores(block), self.thresholds_
            )
        return exits

    def requires(self) -> tuple[str, ...]:
        """What the policy's score is computed from (``probs`` or a score name, see
        :meth:`ExitData.provides`); data without it get a ValueError saying so."""
        return ()

    def _costs_for(self, data: ExitData, costs: Any) -> np.ndarray:
        """The costs a metric is computed in: ``costs=`` when given (an explicit choice), else
        the data's own when it was built with costs, else the policy's."""
        if costs is not None:
            return v.check_costs(costs, self.n_exits_)
        return data.costs if data.has_costs else self.costs_

    def exit_index(self, logits: Any, *, input: str = "auto") -> np.ndarray:
        """The exit each sample leaves at, ``(n_samples,)`` int, 0-based.

        ``logits`` is an :class:`ExitData` or an array ``(n_samples, n_exits, n_classes)`` of
        logits or probabilities (``input``).
        """
        data = self._data(logits, input=input)
        return self._exits(data)

    def predict(self, logits: Any, *, input: str = "auto") -> np.ndarray:
        """The predicted class of each sample at its exit, ``(n_samples,)`` int."""
        data = self._data(logits, input=input)
        exits = self._exits(data)
        return engine.at_exit(data.predictions, exits)

    def evaluate(
        self,
        logits: Any,
        labels: Any = None,
        *,
        costs: Any = None,
        input: str = "auto",
        n_bootstrap: int = 0,
        confidence: float = 0.95,
        random_state: Any = None,
    ) -> engine.EvaluationResult:
        """Accuracy, mean cost, speedup and exit fractions on the given samples.

        Parameters
        ----------
        logits : ExitData or array-like of shape (n_samples, n_exits, n_classes)
        labels : array-like of shape (n_samples,), optional
            Taken from ``logits`` when it is an ExitData; without labels accuracy is None.
        costs : array-like of shape (n_exits,), optional
            Cumulative costs for the metrics. Default: the data's own costs when ``logits`` is
            an ExitData built with costs (``test.with_costs(seconds)`` reports in seconds),
            else the policy's ``costs_`` (arrays carry no costs). Given, they are used.
        n_bootstrap : int, default=0
            With n > 0, ``result.intervals`` holds percentile bootstrap intervals (n resamples
            of the samples) for ``accuracy`` (needs labels) and ``mean_cost``.
        confidence : float, default=0.95
            Coverage of the intervals.
        random_state : int, Generator or None
            Seed of the resampling; the same seed gives the same intervals.

        Examples
        --------
        >>> import eeopt
        >>> val, test = eeopt.datasets.load_both("mnist1d")
        >>> policy = eeopt.fit(val, method="maxprob", budget=500_000)
        >>> result = policy.evaluate(test, n_bootstrap=200, random_state=0)
        >>> result  # doctest: +ELLIPSIS
        EvaluationResult(accuracy=0.9680, mean_cost=474376, speedup=3.664x, exit_fractions=[...])
        >>> low, high = result.intervals["accuracy"]
        >>> print(f"{low:.3f} {high:.3f}")
        0.962 0.973
        """
        data = self._data(logits, labels, input=input)
        costs = self._costs_for(data, costs)
        n_bootstrap = v.check_positive_int(n_bootstrap, "n_bootstrap", minimum=0)
        confidence = v.check_fraction(confidence, "confidence")
        rng = v.check_random_state(random_state)
        exits = self._exits(data)
        result = engine.evaluate_exits(exits, data.predictions, data.labels, costs)
        if n_bootstrap:
            per_sample = {"mean_cost": costs[exits]}
            if data.labels is not None:
                per_sample["accuracy"] = result.predictions == data.labels
            result.intervals = engine.bootstrap_intervals(per_sample, n_bootstrap, confidence, rng)
        return result

    def score(self, logits: Any, labels: Any = None, *, input: str = "auto") -> float:
        """Accuracy of the policy's predictions, as scikit-learn's ``score(X, y)``.

        ``logits`` as in :meth:`exit_index`; ``labels`` are needed unless ``logits`` is an
        ExitData with labels.
        """
        result = self.evaluate(logits, labels, input=input)
        if result.accuracy is None:
            raise ValueError("score needs labels: pass labels=, or an ExitData with labels.")
        return result.accuracy

    # -- files ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "policy_class": type(self).__name__,
            "method": self.method,
            "n_classes": self.n_classes_,
            "costs": encode_floats(self.costs_),
            "thresholds": encode_floats(self.thresholds_),
            "params": self._params(),
            "fit_info": _jsonable(self.fit_info_),
            "fit_params": _jsonable(self.fit_params_),
            "guarantee": _jsonable(self.guarantee_),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the policy as JSON; :func:`load_policy` restores it exactly."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, allow_nan=False)
            f.write("\n")

    def __repr__(self) -> str:
        thresholds = ", ".join(f"{t:.4g}" for t in self.thresholds_)
        return f"{type(self).__name__}(method={self.method!r}, thresholds_=[{thresholds}])"


def policy_from_dict(d: dict[str, Any]) -> Policy:
    """Rebuild a policy from :meth:`Policy.to_dict` output, validating every field.

    A policy file is what gets deployed, so it is checked like any input: the format and its
    version, each field's type, lengths that agree, finite numbers (``"inf"``/``"-inf"``
    strings where a threshold disables or always fires an exit), costs positive and
    non-decreasing, the last threshold ``-inf``. A bad field is a ValueError that names it.
    """
    if not isinstance(d, dict) or d.get("format") != _FORMAT:
        raise ValueError("not an eeopt policy: the JSON has no 'format': 'eeopt.policy' field.")
    version = _field(d, "format_version")
    if isinstance(version, bool) or version not in _READABLE_VERSIONS:
        raise ValueError(
            f"policy field 'format_version' is {version!r}; this eeopt reads version(s) "
            f"{list(_READABLE_VERSIONS)}: upgrade eeopt to read newer policy files."
        )
    name = _field(d, "policy_class")
    cls = _POLICY_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(
            f"policy field 'policy_class' is {name!r}; known: {sorted(_POLICY_CLASSES)}."
        )
    method = _field(d, "method")
    if not isinstance(method, str):
        raise ValueError(f"policy field 'method' must be a string, got {method!r}.")
    n_classes = _field(d, "n_classes")
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"policy field 'n_classes' must be an integer >= 2, got {n_classes!r}.")
    costs = decode_floats(_field(d, "costs"), "costs", finite=True)
    v.check_costs(costs, costs.shape[0], name="policy field 'costs'")
    thresholds = decode_floats(_field(d, "thresholds"), "thresholds", length=costs.shape[0])
    if thresholds[-1] != -np.inf:
        raise ValueError(
            f"policy field 'thresholds' must end with '-inf' (the last exit always fires), got "
            f"{thresholds[-1]!r}."
        )
    common = {
        "method": method,
        "thresholds": thresholds,
        "costs": costs,
        "n_classes": n_classes,
        "fit_info": _dict_field(d, "fit_info"),
        "fit_params": _dict_field(d, "fit_params"),
    }
    policy = cls._from_params(common, _dict_field(d, "params"))
    guarantee = d.get("guarantee")
    if guarantee is not None and not isinstance(guarantee, dict):
        raise ValueError(
            f"policy field 'guarantee' must be an object or null, got {type(guarantee).__name__}."
        )
    policy.guarantee_ = guarantee
    return policy


def _field(d: dict[str, Any], key: str) -> Any:
    if key not in d:
        raise ValueError(
            f"policy field {key!r} is missing; the file is not a whole eeopt policy (write it "
            f"with Policy.save)."
        )
    return d[key]


def _dict_field(d: dict[str, Any], key: str) -> dict:
    value = d.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"policy field {key!r} must be an object, got {type(value).__name__}.")
    return value


def param_floats(params: dict[str, Any], key: str, length: int | None = None) -> np.ndarray:
    """A policy class's float parameter ``params[key]`` from a file, validated."""
    return decode_floats(_field(params, key), f"params.{key}", length=length)


def param_choice(params: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
    """A policy class's string parameter ``params[key]`` from a file, validated."""
    value = _field(params, key)
    if value not in choices:
        raise ValueError(
            f"policy field 'params.{key}' is {value!r}; expected one of {list(choices)}."
        )
    return value


def load_policy(path: str | os.PathLike) -> Policy:
    """Read a policy written by :meth:`Policy.save`."""
    with open(path, encoding="utf-8") as f:
        try:
            d = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"path {os.fspath(path)!r} is not valid JSON: {exc}") from None
        except UnicodeDecodeError:
            raise ValueError(
                f"path {os.fspath(path)!r} is not a policy file (binary content, not JSON); "
                f"policy files are written by Policy.save or eeopt fit."
            ) from None
    return policy_from_dict(d)


def encode_floats(values: Any) -> list:
    """A float array as a JSON list, with infinities as the strings "inf" and "-inf".

    Python's ``repr`` of a float round-trips exactly, so the file restores identical values.
    """
    return [_encode_float(x) for x in np.asarray(values, dtype=np.float64).ravel().tolist()]


def decode_floats(
    values: Any, name: str = "values", *, length: int | None = None, finite: bool = False
) -> np.ndarray:
    """A JSON list of :func:`encode_floats` back to float64, checked: numbers, or the strings
    ``"inf"``/``"-inf"`` unless ``finite``; no NaN; ``length`` entries if given. Errors name the
    policy field ``name``."""
    if not isinstance(values, list):
        raise ValueError(f"policy field {name!r} must be a list of numbers, got {values!r}.")
    out = np.empty(len(values), dtype=np.float64)
    for i, x in enumerate(values):
        ok = isinstance(x, (int, float)) and not isinstance(x, bool)
        ok = ok or (isinstance(x, str) and x in ("inf", "-inf") and not finite)
        if not ok or math.isnan(float(x)) or (finite and math.isinf(float(x))):
            allowed = "finite numbers" if finite else "numbers or the strings 'inf', '-inf'"
            shown = "NaN" if ok and math.isnan(float(x)) else repr(x)
            raise ValueError(f"policy field {name!r}[{i}] is {shown}; it must hold {allowed}.")
        out[i] = float(x)
    if length is not None and out.shape[0] != length:
        raise ValueError(
            f"policy field {name!r} has {out.shape[0]} entries; expected {length} (one per exit)."
        )
    return out


def _encode_float(x: float) -> float | str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if math.isnan(x):
        raise ValueError("a policy parameter is NaN; this is a bug, please report it.")
    return x


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(val) for k, val in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(x) for x in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float):
        return _encode_float(obj)
    return obj


class ScorePolicy(Policy):
    """Thresholds on a named confidence score of :mod:`eeopt.scores`.

    Used by ``maxprob``, ``entropy``, ``margin``, ``patience`` and ``msdnet``.

    Attributes
    ----------
    score_name : str
        The score the thresholds apply to (one of ``eeopt.scores.SCORE_NAMES``). (Called
        ``score`` before 0.2; ``score`` is now the accuracy method, as in scikit-learn.)
    """

    def __init__(
        self, method, thresholds, costs, n_classes, fit_info=None, fit_params=None, *, score: str
    ):
        super().__init__(method, thresholds, costs, n_classes, fit_info, fit_params)
        self.score_name = score

    def compute_scores(self, data: ExitData) -> np.ndarray:
        return data.score(self.score_name)

    def requires(self) -> tuple[str, ...]:
        return (self.score_name,)

    def _params(self) -> dict[str, Any]:
        return {"score": self.score_name}

    @classmethod
    def _from_params(cls, common: dict[str, Any], params: dict[str, Any]) -> ScorePolicy:
        from eeopt.scores import SCORE_NAMES

        return cls(**common, score=param_choice(params, "score", SCORE_NAMES))
