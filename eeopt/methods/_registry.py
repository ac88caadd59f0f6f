"""Name -> fitting function, and the one entry point :func:`fit`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eeopt import _validation as v
from eeopt.data import ExitData, as_exit_data
from eeopt.policy import Policy


@dataclass(frozen=True)
class Method:
    """A registered method: its fitting function and the options it accepts."""

    name: str
    fit: Callable[..., Policy]
    options: frozenset[str]
    summary: str
    budget_only: bool = False


METHODS: dict[str, Method] = {}


def register(name: str, options: set[str], summary: str, budget_only: bool = False) -> Callable:
    """Decorator: ``fit_fn(data: ExitData, method: str, **options) -> Policy``."""

    def decorate(fit_fn: Callable[..., Policy]) -> Callable[..., Policy]:
        METHODS[name] = Method(name, fit_fn, frozenset(options), summary, budget_only)
        return fit_fn

    return decorate


@dataclass(frozen=True)
class SweepSpec:
    """An exact sweep: ``fn(data, method, verbose=..., **options) -> targets.Sweep`` over
    every value of the fit option ``parameter`` that changes a decision;
    ``fit(..., parameter=value)`` reproduces each point. A sweep that can take long draws a
    progress bar when ``verbose``."""

    fn: Callable[..., Any]
    parameter: str


#: Exact parameter sweeps for Pareto fronts. Methods without one are swept over budgets.
SWEEPS: dict[str, SweepSpec] = {}


def register_sweep(*names: str, parameter: str) -> Callable:
    """Decorator registering an exact sweep over the fit option ``parameter`` for ``names``."""

    def decorate(sweep_fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            SWEEPS[name] = SweepSpec(sweep_fn, parameter)
        return sweep_fn

    return decorate


def method_names() -> list[str]:
    return sorted(METHODS)


def fit(
    logits: Any,
    labels: Any = None,
    costs: Any = None,
    method: str | None = None,
    *,
    input: str = "auto",
    verbose: bool = True,
    random_state: Any = None,
    **options: Any,
) -> Policy:
    """Fit an early-exit policy on cached exit outputs.

    Parameters
    ----------
    logits : ExitData or array-like of shape (n_samples, n_exits, n_classes)
        Exit logits or probabilities (``input``); an ExitData brings its labels and costs.
    labels : array-like of shape (n_samples,), optional
        Needed for every target but a direct setting.
    costs : array-like of shape (n_exits,), optional
        Cumulative cost per exit; default ``[1, ..., n_exits]`` (or the ExitData's).
    method : str
        One of :func:`eeopt.methods.method_names`: ``maxprob``, ``entropy``, ``margin``,
        ``patience``, ``msdnet``, ``beem-c``, ``beem-a``, ``eenet``.
    input : {"auto", "logits", "probs"}, default="auto"
    verbose : bool, default=True
        Progress bar for the methods whose fit takes long (EENet's training); False draws
        nothing.
    random_state : None, int or numpy Generator
        Seeds every random choice of the fit (EENet's initialisation): the same seed gives
        the same policy. Methods that draw no random numbers ignore it.
    **options
        At most one target: ``budget=B`` (most accurate setting with mean cost <= B on the
        fitting data), ``target="accuracy"`` with ``tolerance=`` (cheapest setting within
        ``tolerance`` of the final exit's accuracy; the default for most methods), BEEM's
        ``target="exit-error"``, or a direct setting (``threshold=``, ``patience=``, ``q=``,
        ``alpha=``). Method-specific options are listed in each method's documentation.

    Returns
    -------
    Policy
        With ``thresholds_``, ``exit_index``, ``predict``, ``evaluate``, ``save``.

    Examples
    --------
    >>> import numpy as np, eeopt
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(size=(500, 4, 3)) * np.arange(1, 5)[None, :, None]
    >>> labels = logits[:, -1].argmax(axis=1)
    >>> policy = eeopt.fit(logits, labels, costs=[1, 2, 3, 4], method="maxprob", budget=2.5)
    >>> policy.evaluate(logits, labels).mean_cost <= 2.5
    True
    """
    if method is None and isinstance(labels, str) and labels in METHODS:
        # eeopt.fit(val, "maxprob"): a string is never labels, so it is the method.
        method, labels = labels, None
    if method is None:
        raise ValueError(
            f'method is required: eeopt.fit(data, method="maxprob"); choose one of '
            f"{', '.join(method_names())}."
        )
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(method_names())}.")
    spec = METHODS[method]
    v.check_options(method, options, spec.options - _SKELETON_OPTIONS)
    data: ExitData = as_exit_data(logits, labels, costs, input=input)
    for name, value in (("verbose", verbose), ("random_state", random_state)):
        if name in spec.options:
            options[name] = value
    return spec.fit(data, method, **options)


#: Options every method takes, as arguments of :func:`fit` (passed on to the methods whose
#: fit uses them).
_SKELETON_OPTIONS = frozenset({"verbose", "random_state"})


@dataclass(frozen=True)
class Target:
    """What a fit aims at: ``kind`` is "budget", "accuracy", "exit-error" or "direct"."""

    kind: str
    value: Any = None  # the budget, the tolerance, or the direct setting

    def describe(self) -> dict[str, Any]:
        key = {"budget": "budget", "direct": "setting"}.get(self.kind, "tolerance")
        return {"target": self.kind, key: self.value}


def resolve_target(
    method: str,
    data: ExitData,
    options: dict[str, Any],
    *,
    direct: str,
    targets: tuple[str, ...] = ("accuracy",),
    default: str | None = "accuracy",
) -> Target:
    """Read the target options (``budget``, ``target``, ``tolerance``, the direct setting)
    out of ``options``, checking that at most one is given and that it fits the data."""
    budget = options.pop("budget", None)
    target = options.pop("target", None)
    tolerance = options.pop("tolerance", None)
    setting = options.pop(direct, None)
    given = [
        name
        for name, x in (("budget", budget), ("target", target), (direct, setting))
        if x is not None
    ]
    if len(given) > 1:
        raise ValueError(
            f"give at most one of budget=, target=, {direct}= for method {method!r}; "
            f"got {', '.join(given)}."
        )
    if setting is not None:
        if tolerance is not None:
            raise ValueError(f"tolerance applies to target=, not to a direct {direct}=.")
        return Target("direct", setting)
    if budget is not None:
        if tolerance is not None:
            raise ValueError("tolerance applies to target=, not to budget=.")
        data.require_labels(f"fitting {method!r} to a budget")
        return Target("budget", v.check_budget(budget, data.costs))
    if target is None:
        if default is None:
            raise ValueError(f"method {method!r} needs budget= (or {direct}=).")
        target = default
    v.check_choice(target, "target", targets)
    data.require_labels(f"fitting {method!r} to target={target!r}")
    tol = 0.0 if tolerance is None else v.check_fraction(tolerance, "tolerance")
    return Target(target, tol)


def record_fit(policy: Policy, data: ExitData, target: Target, **fitted: Any) -> Policy:
    """Store how the policy was fitted and what it gives on the fitting data."""
    result = policy.evaluate(data)
    policy.fit_info_ = {
        **target.describe(),
        **fitted,
        "n_fit_samples": data.n_samples,
        "fit_accuracy": result.accuracy,
        "fit_mean_cost": result.mean_cost,
        "fit_exit_fractions": result.exit_fractions.tolist(),
    }
    return policy
