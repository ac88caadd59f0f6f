"""Threshold baselines (``maxprob``, ``entropy``, ``margin``) and PABEE's ``patience``.

A global threshold on a confidence score (DeeBERT, BranchyNet, MSDNet's anytime setting), or on
the number of consecutive agreeing exits (PABEE, Zhou et al., NeurIPS 2020). Their candidates are
every threshold that changes a decision (:func:`eeopt.targets.threshold_sweep`), so fitting to a
target is exact on the fitting data. ``per_exit=True`` gives the confidence rules one threshold
per exit, chosen exit by exit by BEEM's error-rate rule on the score (its error level is the
knob, as for BEEM).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eeopt import _validation as v
from eeopt.data import ExitData
from eeopt.methods.beem import exit_error_thresholds, level_sweep
from eeopt.methods.registry import Direct, MethodSpec, register
from eeopt.policy import ScorePolicy
from eeopt.targets import Candidates, Target, threshold_sweep


def global_thresholds(threshold: float, n_exits: int) -> np.ndarray:
    """``threshold`` at every early exit, ``-inf`` at the last (it always fires)."""
    thresholds = np.full(n_exits, float(threshold))
    thresholds[-1] = -np.inf
    return thresholds


# -- maxprob, entropy, margin -------------------------------------------------------------------
def build_threshold(
    data: ExitData, method: str, settings: dict, name: str, value: Any
) -> tuple[ScorePolicy, dict]:
    """``threshold=``: one value for every early exit, or one per exit; ``level=``: per-exit
    thresholds by the error-rate rule at that level (``per_exit=True``)."""
    if name == "level":
        if not settings["per_exit"]:
            raise ValueError("level= sets per-exit thresholds: pass per_exit=True with it.")
        thresholds = exit_error_thresholds(data.score(method), data.correct, value)
        policy = ScorePolicy(method, thresholds, data.costs, data.n_classes, score=method)
        return policy, {"level": value}
    policy = ScorePolicy(method, value, data.costs, data.n_classes, score=method)
    return policy, {}


def threshold_candidates(
    data: ExitData,
    method: str,
    settings: dict,
    target: Target | None = None,
    rows: np.ndarray | None = None,
) -> Candidates:
    """Every global threshold on the method's score that changes a decision (one sort); with
    ``per_exit=True``, every error level of the per-exit error-rate rule on the score.
    ``rows``: the samples to build it on (increasing indices; None: all), read in place by
    the threshold sweep (the per-exit rule's level sweep takes a copy of them)."""
    if settings["per_exit"]:
        if rows is not None:
            data = data.subset(rows)
        return _per_exit_candidates(data, method, data.score(method))
    sweep = threshold_sweep(data.score(method), data.correct, data.costs, rows=rows)
    # The policies need the costs and shape only: the path does not keep the samples alive.
    costs, n_classes, n_exits = data.costs, data.n_classes, data.n_exits

    def make(i: int) -> tuple[ScorePolicy, dict]:
        threshold = float(sweep.parameters[i])
        thresholds = global_thresholds(threshold, n_exits)
        return ScorePolicy(method, thresholds, costs, n_classes, score=method), {
            "threshold": threshold
        }

    return Candidates(method, "threshold", sweep, make)


def _per_exit_candidates(data: ExitData, method: str, scores: np.ndarray) -> Candidates:
    """Per-exit thresholds on a confidence score, chosen exit by exit by BEEM's error-rate rule
    (:func:`eeopt.methods.beem.level_sweep`) at every level that changes a decision."""
    sweep = level_sweep(scores, data.correct, data.costs)

    def make(i: int) -> tuple[ScorePolicy, dict]:
        thresholds = sweep.thresholds[i].copy()
        policy = ScorePolicy(method, thresholds, data.costs, data.n_classes, score=method)
        return policy, {"level": float(sweep.parameters[i])}

    return Candidates(method, "level", sweep, make)


def _threshold_spec(method: str, summary: str) -> MethodSpec:
    return MethodSpec(
        name=method,
        summary=summary,
        build=build_threshold,
        options={"per_exit": (v.Boolean(), False)},
        direct=(
            Direct("threshold", v.Thresholds()),
            Direct("level", v.Interval("real", 0.0, 1.0), needs_labels=True),
        ),
        candidates=threshold_candidates,
        candidates_take_rows=True,
        requires=lambda settings: (method,),
        path_uses_data=lambda settings: settings["per_exit"],
    )


register(_threshold_spec("maxprob", "global threshold on the max class probability"))
register(_threshold_spec("entropy", "global threshold on the normalised entropy confidence"))
register(_threshold_spec("margin", "global threshold on the top-1 minus top-2 margin"))


# -- patience (PABEE) ---------------------------------------------------------------------------
def build_patience(
    data: ExitData, method: str, settings: dict, name: str, value: int
) -> tuple[ScorePolicy, dict]:
    """Exit at the first k whose last ``t + 1`` exits agree (``patience_k >= t``, t >= 1)."""
    thresholds = global_thresholds(value, data.n_exits)
    policy = ScorePolicy("patience", thresholds, data.costs, data.n_classes, score="patience")
    return policy, {"patience": int(value)}


def patience_candidates(
    data: ExitData, method: str, settings: dict, target: Target | None = None
) -> Candidates:
    """Every patience t >= 1 that changes a decision; no early exit is t = n_exits - 1."""
    sweep = threshold_sweep(data.patience, data.correct, data.costs)
    # Parameters decrease along the sweep, so the settings t >= 1 are a prefix.
    sweep = sweep.head(int(np.count_nonzero(sweep.parameters >= 1)))
    parameters = np.where(np.isinf(sweep.parameters), max(data.n_exits - 1, 1), sweep.parameters)
    parameters = parameters.astype(np.int64)
    sweep = sweep.with_parameters(parameters)

    def make(i: int) -> tuple[ScorePolicy, dict]:
        return build_patience(data, method, settings, "patience", int(parameters[i]))

    return Candidates("patience", "patience", sweep, make)


register(
    MethodSpec(
        name="patience",
        summary="PABEE: exit once the last patience + 1 exits agree",
        build=build_patience,
        direct=(Direct("patience", v.Interval("int", 1, None)),),
        candidates=patience_candidates,
        requires=lambda settings: ("patience",),
    )
)
