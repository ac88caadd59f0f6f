"""Threshold baselines (``maxprob``, ``entropy``, ``margin``) and PABEE's ``patience``.

A global threshold on a confidence score (DeeBERT, BranchyNet, MSDNet's anytime setting), or on
the number of consecutive agreeing exits (PABEE, Zhou et al., NeurIPS 2020). Fitting to a target
is exact on the fitting data: every threshold that changes a decision is evaluated
(:func:`eeopt.targets.threshold_sweep`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eeopt import _validation as v
from eeopt import engine
from eeopt.data import ExitData
from eeopt.methods._registry import Target, record_fit, register, register_sweep, resolve_target
from eeopt.policy import ScorePolicy
from eeopt.targets import Sweep, select_for_accuracy, select_for_budget, threshold_sweep

_THRESHOLD_OPTIONS = {"budget", "target", "tolerance", "threshold"}


def _global(threshold: float, n_exits: int) -> np.ndarray:
    thresholds = np.full(n_exits, float(threshold))
    thresholds[-1] = -np.inf
    return thresholds


def select(sweep: Sweep, target: Target, data: ExitData, scores: np.ndarray) -> int:
    """The sweep candidate that meets ``target`` (budget or accuracy), checked exactly."""
    if target.kind == "budget":

        def exact_cost(i: int) -> float:
            exits = engine.first_exit(scores, _global(sweep.parameters[i], data.n_exits))
            return engine.mean_cost(exits, data.costs)

        return select_for_budget(sweep, target.value, exact_cost)
    final_correct = int(np.count_nonzero(data.correct[:, -1]))
    return select_for_accuracy(sweep, final_correct - target.value * data.n_samples)


@register_sweep("maxprob", "entropy", "margin", parameter="threshold")
def sweep_threshold(data: ExitData, method: str, verbose: bool = False) -> Sweep:
    """Every global threshold on the method's score that changes a decision (one sort: no
    progress bar, ``verbose`` is accepted for the sweep protocol)."""
    return threshold_sweep(data.score(method), data.correct, data.costs)


@register_sweep("patience", parameter="patience")
def sweep_patience(data: ExitData, method: str = "patience", verbose: bool = False) -> Sweep:
    """Every patience t >= 1 that changes a decision; no early exit is t = n_exits - 1
    (one sort: no progress bar)."""
    sweep = threshold_sweep(data.patience, data.correct, data.costs)
    keep = sweep.parameters >= 1
    parameters = sweep.parameters[keep]
    parameters[np.isinf(parameters)] = max(data.n_exits - 1, 1)
    return Sweep(parameters, sweep.mean_costs[keep], sweep.n_correct[keep], sweep.n_samples)


@register("maxprob", _THRESHOLD_OPTIONS, "global threshold on the max class probability")
@register("entropy", _THRESHOLD_OPTIONS, "global threshold on the normalised entropy confidence")
@register("margin", _THRESHOLD_OPTIONS, "global threshold on the top-1 minus top-2 margin")
def fit_threshold(data: ExitData, method: str, **options: Any) -> ScorePolicy:
    """Exit at the first k with ``score_k >= tau`` (one global tau, or ``threshold=`` per exit)."""
    target = resolve_target(method, data, options, direct="threshold")
    if target.kind == "direct":
        thresholds = v.check_thresholds(target.value, data.n_exits, "threshold")
        policy = ScorePolicy(method, thresholds, data.costs, data.n_classes, score=method)
        target = Target("direct", thresholds[:-1].tolist())
        return record_fit(policy, data, target) if data.labels is not None else policy
    scores = data.score(method)
    sweep = sweep_threshold(data, method)
    threshold = float(sweep.parameters[select(sweep, target, data, scores)])
    policy = ScorePolicy(
        method, _global(threshold, data.n_exits), data.costs, data.n_classes, score=method
    )
    return record_fit(policy, data, target, threshold=threshold)


@register(
    "patience",
    {"budget", "target", "tolerance", "patience"},
    "PABEE: exit once the last patience + 1 exits agree",
)
def fit_patience(data: ExitData, method: str, **options: Any) -> ScorePolicy:
    """Exit at the first k whose last ``t + 1`` exits agree (``patience_k >= t``, t >= 1)."""
    target = resolve_target(method, data, options, direct="patience")
    if target.kind == "direct":
        t = v.check_positive_int(target.value, "patience", minimum=1)
        policy = ScorePolicy(
            method, _global(t, data.n_exits), data.costs, data.n_classes, score="patience"
        )
        target = Target("direct", t)
        return record_fit(policy, data, target, patience=t) if data.labels is not None else policy
    sweep = sweep_patience(data, method)
    t = int(sweep.parameters[select(sweep, target, data, data.patience)])
    policy = ScorePolicy(
        method, _global(t, data.n_exits), data.costs, data.n_classes, score="patience"
    )
    return record_fit(policy, data, target, patience=t)
