"""The method contract: what a method is (:class:`MethodSpec`), the registry, and the one fit
skeleton behind :func:`eeopt.fit` and :func:`eeopt.candidates`.

A method is declared once: its options with their constraints and defaults, its direct
settings, the targets it takes, whether it needs labels, and three hooks — ``build`` (a policy
from a direct setting), ``candidates`` (its ordered path of settings with their exact outcomes)
and, for budget-only methods, ``solve_budget``. The skeleton validates the options from the
spec, resolves the target once, asks the method for its candidates (or its budget solver),
selects with :func:`eeopt.targets.select`, builds the policy and records the fit. Nothing about
a method lives outside its spec and its module.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eeopt import _validation as v
from eeopt import engine
from eeopt.data import ExitData, as_exit_data
from eeopt.guarantee import certified_fit
from eeopt.guarantee import resolve as resolve_certified
from eeopt.policy import Policy
from eeopt.targets import Candidates, Target, select

#: Options every method takes, as arguments of :func:`fit`.
SKELETON_OPTIONS = ("verbose", "random_state")
#: The options that state a target (besides a method's direct settings).
TARGET_OPTIONS = ("budget", "target", "tolerance")
_TOLERANCE = v.Interval("real", 0.0, 1.0)


@dataclass(frozen=True)
class Direct:
    """A direct setting: an option that fixes the policy without fitting to a target.

    ``needs_labels`` is True where the setting is applied through the labels (BEEM's error
    ``level``); ``info`` names what to record of it in ``fit_info_``.
    """

    name: str
    constraint: v.Constraint
    needs_labels: bool = False


def _no_labels(settings: Mapping[str, Any]) -> bool:
    return False


def _nothing(settings: Mapping[str, Any]) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class MethodSpec:
    """Everything about one method.

    Attributes
    ----------
    name, summary : str
    build : callable
        ``build(data, method, settings, name, value) -> (Policy, info)``: the policy of the direct
        setting ``name=value`` (one of ``direct``); ``info`` is recorded in ``fit_info_``.
    options : mapping of name -> (Constraint, default)
        The method's own options (not targets, not direct settings).
    direct : tuple of Direct
        Its direct settings (``threshold=``, ``patience=``, ``q=``, ``alpha=``, ``level=``).
    targets : tuple of str
        Target kinds it takes besides a direct setting: "budget", "accuracy" and its own
        (``special_targets``).
    default_target : str or None
        The target without ``budget=``/``target=``; None for budget-only methods.
    candidates : callable, optional
        ``candidates(data, method, settings, target) -> Candidates``: the ordered path (most
        conservative first) with exact outcomes; ``target`` (None for the whole path) lets a
        method stop early.
    candidates_take_rows : bool
        Whether ``candidates`` also takes ``rows=`` (increasing sample indices to build the
        path on, read in place: a certified target's split copies no samples for it).
    solve_budget : callable, optional
        ``solve_budget(data, method, settings, budget) -> (Policy, info)`` for methods fitted to a
        budget by a solver rather than by selecting along a path.
    budget_path : callable, optional
        ``budget_path(data, method, settings, budgets, budget) -> [(Policy, info), ...]``: the
        policies at several budgets for a certified budget ``budget``, when that is cheaper
        than one ``solve_budget`` each (EENet trains once).
    special_targets : mapping of kind -> callable
        ``fn(data, method, settings, tolerance) -> ({direct name: value}, info)``: a method's own
        target, resolved into a direct setting (BEEM's "exit-error").
    needs_labels : callable
        ``needs_labels(settings) -> bool``: whether even a direct setting needs labels (the
        score is learned from them: BEEM-A's weights, EENet).
    budget_needs_labels : bool
        Whether fitting to a budget uses the labels (False for MSDNet's geometric rule).
    uses_random_state, long_running : bool
        Whether the fit draws random numbers / shows a progress bar (then ``random_state`` and
        ``verbose`` reach the hooks in ``settings``).
    renamed : mapping of old name -> callable
        Options renamed in this release: ``fn(old value) -> (new name, new value)``; the old
        name still works with a DeprecationWarning.
    requires : callable
        ``requires(settings) -> names``: what the method reads from the data (``"probs"`` or a
        score name, :meth:`eeopt.ExitData.provides`); data without it (score-only data) get a
        ValueError naming it before any work.
    path_uses_data : callable
        ``path_uses_data(settings) -> bool``: whether the candidate path is built from the
        fitting samples (per-exit thresholds, learned weights or scores, quantiles) rather than
        being a fixed family; a certified target then tests it on a separate split
        (:mod:`eeopt.guarantee`).
    """

    name: str
    summary: str
    build: Callable[..., tuple[Policy, dict]] | None = None
    options: Mapping[str, tuple[v.Constraint, Any]] = field(default_factory=dict)
    direct: tuple[Direct, ...] = ()
    targets: tuple[str, ...] = ("budget", "accuracy")
    default_target: str | None = "accuracy"
    candidates: Callable[..., Candidates] | None = None
    candidates_take_rows: bool = False
    solve_budget: Callable[..., tuple[Policy, dict]] | None = None
    budget_path: Callable[..., list[tuple[Policy, dict]]] | None = None
    special_targets: Mapping[str, Callable[..., tuple[dict, dict]]] = field(default_factory=dict)
    needs_labels: Callable[[Mapping[str, Any]], bool] = _no_labels
    budget_needs_labels: bool = True
    uses_random_state: bool = False
    long_running: bool = False
    renamed: Mapping[str, Callable[[Any], tuple[str, Any]]] = field(default_factory=dict)
    requires: Callable[[Mapping[str, Any]], tuple[str, ...]] = _nothing
    path_uses_data: Callable[[Mapping[str, Any]], bool] = _no_labels

    @property
    def budget_only(self) -> bool:
        """True for methods fitted to a budget only (no accuracy target)."""
        return self.default_target is None

    def upgrade(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` with renamed options under their new names (DeprecationWarning)."""
        options = dict(options)
        for old, convert in self.renamed.items():
            if old not in options:
                continue
            new, value = convert(options.pop(old))
            if new in options:
                raise ValueError(f"give {new}= only ({old}= is its deprecated name), not both.")
            warnings.warn(
                f"option {old}= of method {self.name!r} is deprecated and will be removed in the "
                f"next release; use {new}={value!r}.",
                DeprecationWarning,
                stacklevel=4,
            )
            options[new] = value
        return options

    @property
    def option_names(self) -> frozenset[str]:
        """Every option :func:`fit` accepts for this method (besides ``verbose`` and
        ``random_state``)."""
        names = set(self.options) | {d.name for d in self.direct} | set(TARGET_OPTIONS)
        return frozenset(names)

    # -- the skeleton's steps ---------------------------------------------------------------
    def check_settings(
        self, data: ExitData, options: Mapping[str, Any], *, verbose: bool, random_state: Any
    ) -> dict[str, Any]:
        """The method's own options, validated from the spec and completed with defaults; and
        the data checked to hold what the method reads."""
        settings = {}
        for name, (constraint, default) in self.options.items():
            value = options.get(name, default)
            # None is the "not set" of options whose default is None; elsewhere it must be a
            # value the constraint accepts (per_exit=None is an error, not False).
            unset = value is None and default is None
            settings[name] = None if unset else constraint.check(value, name, data)
        data.require(*self.requires(settings), purpose=f"method {self.name!r}")
        if self.long_running:
            settings["verbose"] = v.Boolean().check(verbose, "verbose")
        if self.uses_random_state:
            v.check_random_state(random_state)  # checked here, drawn from by the method
            settings["random_state"] = random_state
        return settings

    def resolve_target(self, data: ExitData, options: Mapping[str, Any]) -> Target:
        """The one target of a fit, from ``budget=``, ``target=``/``tolerance=`` or a direct
        setting; at most one is given, and labels are required where the target uses them."""
        direct = {d.name: d for d in self.direct}
        if self.budget_only and options.get("budget") is None:
            if not any(options.get(d) is not None for d in direct):
                directs = "".join(f" or {d}=" for d in direct)
                raise ValueError(
                    f"method {self.name!r} needs budget=B (a mean cost per sample){directs}: it "
                    f"is fitted to a budget only, not to target= or tolerance=."
                )
        if self.budget_only and not {"target", "tolerance"}.isdisjoint(
            k for k, x in options.items() if x is not None
        ):
            raise ValueError(
                f"method {self.name!r} is fitted to a budget only: pass budget=B (a mean cost "
                f"per sample), not target= or tolerance=."
            )
        given = [n for n in ("budget", "target", *direct) if options.get(n) is not None]
        if len(given) > 1:
            names = ", ".join(f"{n}=" for n in ("budget", "target", *direct))
            raise ValueError(
                f"give at most one of {names} for method {self.name!r}; got {', '.join(given)}."
            )
        tolerance = options.get("tolerance")
        kind = given[0] if given else "target"
        if kind != "target" and tolerance is not None:
            raise ValueError(f"tolerance applies to target=, not to {kind}=.")
        if kind in direct:
            spec = direct[kind]
            value = spec.constraint.check(options[kind], kind, data)
            if spec.needs_labels:
                data.require_labels(f"{self.name!r} with {kind}=")
            return Target("direct", {kind: value})
        if kind == "budget":
            if self.budget_needs_labels:
                data.require_labels(f"fitting {self.name!r} to a budget")
            return Target("budget", v.check_budget(options["budget"], data.costs))
        name = options.get("target") or self.default_target
        v.check_choice(name, "target", [t for t in self.targets if t != "budget"])
        data.require_labels(f"fitting {self.name!r} to target={name!r}")
        tol = 0.0 if tolerance is None else _TOLERANCE.check(tolerance, "tolerance")
        final_correct = int(np.count_nonzero(data.correct[:, -1]))
        return Target(name, tol, min_correct=final_correct - tol * data.n_samples)

    def fit_to(
        self, data: ExitData, settings: dict[str, Any], target: Target
    ) -> tuple[Policy, dict, tuple[np.ndarray, int] | None]:
        """The policy that meets ``target``, what to record of it, and its outcome on
        ``data`` where the candidate path knows it (:meth:`Candidates.outcome`)."""
        if self.needs_labels(settings):
            data.require_labels(f"method {self.name!r}")
        info: dict[str, Any] = {}
        if target.kind in self.special_targets:
            setting, info = self.special_targets[target.kind](
                data, self.name, settings, target.value
            )
            target = Target("direct", setting)
        if target.kind == "direct":
            ((name, value),) = target.value.items()
            policy, built = self.build(data, self.name, settings, name, value)
            return policy, {**info, **built}, None
        if self.candidates is not None:
            path = self.candidates(data, self.name, settings, target)
            index = select(path, target)
            return *path.make_policy(index), path.outcome(index)
        return *self.solve_budget(data, self.name, settings, target.value), None


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method to the registry (each method module calls this once per name)."""
    METHODS[spec.name] = spec
    return spec


def method_names() -> list[str]:
    """Names of the registered methods, sorted."""
    return sorted(METHODS)


def method_spec(method: Any) -> MethodSpec:
    """The spec of ``method``, or a ValueError listing the registered names."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(method_names())}.")
    return METHODS[method]


def _method_argument(method: Any, labels: Any, caller: str) -> tuple[MethodSpec, Any]:
    """The spec of ``method``; ``eeopt.fit(data, "maxprob")`` puts the method where the labels
    go, and a string is never labels, so it is taken as the method."""
    if method is None and isinstance(labels, str) and labels in METHODS:
        method, labels = labels, None
    if method is None:
        raise ValueError(
            f'method is required: eeopt.{caller}(data, method="maxprob"); choose one of '
            f"{', '.join(method_names())}."
        )
    return method_spec(method), labels


def _check_unknown(
    spec: MethodSpec, options: Mapping[str, Any], allow_targets: bool = True
) -> None:
    if allow_targets:
        v.check_options(spec.name, options, spec.option_names)
    else:
        hint = " (the path spans every target: no budget= etc.)"
        v.check_options(spec.name, options, spec.options, hint)


def fit(
    logits: Any,
    labels: Any = None,
    costs: Any = None,
    method: str | None = None,
    *,
    input: str = "auto",
    verbose: bool = True,
    random_state: Any = None,
    delta: float | None = None,
    risk: str | None = None,
    bound: str | None = None,
    guarantee: str = "probability",
    calibration_split: float | None = None,
    grid: Any = None,
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
        Seeds every random choice of the fit (EENet's initialisation, the split of a certified
        target): the same seed gives the same policy. Fits that draw no random numbers ignore
        it.
    delta : float in (0, 1), optional
        Certify the target (:mod:`eeopt.guarantee`, ``docs/guarantees.md``): with probability
        at least ``1 - delta`` over these (calibration) samples, the policy's risk on new
        exchangeable data is at most ``tolerance`` (``target="accuracy"``), or its mean cost
        at most ``budget``. The statement is in ``policy.guarantee_``.
    risk : {"accuracy-gap", "consistency", "error"}, optional
        What a certified accuracy target bounds, per sample: ``1[exit wrong] - 1[final
        wrong]`` (the default with labels), ``1[exit prediction != final prediction]`` (the
        default without labels), ``1[exit wrong]``.
    bound : {"hb", "binomial", "wsr"}, optional
        The concentration bound of a certified target (:mod:`eeopt.risk`); "hb" unless
        given. An error without ``delta`` or with ``guarantee="expectation"``.
    guarantee : {"probability", "expectation"}, default="probability"
        ``"expectation"``: conformal risk control, a bound on the expected risk (no delta).
    calibration_split : float in (0, 1), optional
        Share of the samples that builds a certified target's path, the rest testing it
        (Pareto testing). Default: 0.5 where the path is built from the data (per-exit
        thresholds, learned weights, quantiles), none for fixed families.
    grid : int or array-like of float, optional
        A certified target of one shared threshold (``maxprob``, ``entropy``, ``margin``)
        tests these thresholds only, from the highest: an int n for n thresholds evenly
        spaced on [0, 1] (RC-EENN's grid is 101), or the values. Default: every threshold
        that changes a decision. A coarser grid can certify further along a path whose risk
        is not monotone (fixed-sequence testing stops at the first setting not certified).
    **options
        At most one target: ``budget=B`` (most accurate setting with mean cost <= B on the
        fitting data), ``target="accuracy"`` with ``tolerance=`` (cheapest setting within
        ``tolerance`` of the final exit's accuracy; the default for most methods), BEEM's
        ``target="exit-error"``, or a direct setting (``threshold=``, ``patience=``, ``q=``,
        ``alpha=``, ``level=``). Method-specific options are listed in each method's
        documentation (``eeopt.methods.method_spec(name).options``).

    Returns
    -------
    Policy
        With ``thresholds_``, ``exit_index``, ``predict``, ``evaluate``, ``save``;
        ``fit_info_`` (the target and the outcome on the fitting data) and ``fit_params_``
        (``eeopt.fit(data, **policy.fit_params_)`` fits it again).

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
    spec, labels = _method_argument(method, labels, "fit")
    options = spec.upgrade(options)
    _check_unknown(spec, options)
    data = as_exit_data(logits, labels, costs, input=input)
    certified = resolve_certified(
        spec,
        data,
        options,
        delta=delta,
        risk_name=risk,
        bound=bound,
        guarantee=guarantee,
        calibration_split=calibration_split,
        grid=grid,
    )
    settings = spec.check_settings(data, options, verbose=verbose, random_state=random_state)
    if certified is not None:
        policy, info, record, outcome = certified_fit(spec, data, settings, certified, random_state)
        policy.guarantee_ = record
        return record_fit(policy, data, settings, certified, info, random_state, outcome)
    target = spec.resolve_target(data, options)
    policy, info, outcome = spec.fit_to(data, settings, target)
    return record_fit(policy, data, settings, target, info, outcome=outcome)


def candidates(
    logits: Any,
    labels: Any = None,
    costs: Any = None,
    method: str | None = None,
    *,
    input: str = "auto",
    verbose: bool = True,
    **options: Any,
) -> Candidates:
    """A method's settings on the fitting data, from the most conservative to the cheapest.

    The path that targets select on and the certified targets test along: every setting of
    the method that changes a decision (a threshold sweep, BEEM's error levels), each with its
    exact mean cost and accuracy on these data. ``path.policy(i)`` is the policy of setting
    ``i``, the same as ``eeopt.fit(data, method=method, **{path.parameter: path.parameters[i]})``.

    Parameters
    ----------
    logits, labels, costs, input : as in :func:`fit`
    method : str
    verbose : bool, default=True
        Progress bar for the paths that take long (BEEM's level sweep).
    **options
        Method options other than targets (``weights=``, ``per_exit=``, ...).

    Returns
    -------
    Candidates
        ``parameter``, ``parameters``, ``mean_costs``, ``accuracies``, ``policy(i)``.
    """
    spec, labels = _method_argument(method, labels, "candidates")
    if spec.candidates is None:
        raise ValueError(
            f"method {spec.name!r} has no exact candidate path: it is fitted to a budget by a "
            f"solver; sweep budgets with eeopt.pareto_front instead."
        )
    options = spec.upgrade(options)
    _check_unknown(spec, options, allow_targets=False)
    data = as_exit_data(logits, labels, costs, input=input)
    data.require_labels(f"the candidates of {spec.name!r}")
    settings = spec.check_settings(data, options, verbose=verbose, random_state=None)
    return spec.candidates(data, spec.name, settings, None)


def record_fit(
    policy: Policy,
    data: ExitData,
    settings: dict[str, Any],
    target: Any,
    info: dict,
    random_state: Any = None,
    outcome: tuple[np.ndarray, int] | None = None,
) -> Policy:
    """Store how the policy was fitted (``fit_info_``, ``fit_params_``) and what it gives on
    the fitting data: from ``outcome`` (its exit counts and correct count there, which a
    candidate path knows exactly) or else by evaluating it."""
    if outcome is None:
        result = policy.evaluate(data)
        accuracy, mean_cost, fractions = result.accuracy, result.mean_cost, result.exit_fractions
    else:  # evaluate's figures, from the same counts
        counts, n_correct = outcome
        accuracy = None if data.labels is None else n_correct / data.n_samples
        mean_cost = float(engine.mean_cost_from_counts(counts, data.costs))
        fractions = counts / data.n_samples
    described = target.describe() if isinstance(target, Target) else {"target": "certified"}
    policy.fit_info_ = {**described, **info, "n_fit_samples": data.n_samples}
    if accuracy is not None:
        policy.fit_info_["fit_accuracy"] = accuracy
    policy.fit_info_["fit_mean_cost"] = mean_cost
    policy.fit_info_["fit_exit_fractions"] = fractions.tolist()
    params = {"method": policy.method}
    for name, value in settings.items():
        if name == "verbose":
            continue
        if name == "random_state" and not isinstance(value, (int, np.integer)):
            continue  # a Generator or None does not reproduce a fit
        params[name] = int(value) if isinstance(value, np.integer) else value
    if not isinstance(target, Target) and isinstance(random_state, (int, np.integer)):
        params["random_state"] = int(random_state)  # the split of a certified target
    policy.fit_params_ = {**_plain_params(params), **target.as_options()}
    return policy


def _plain_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (x.tolist() if isinstance(x, np.ndarray) else x) for k, x in params.items()}
