"""MSDNet's budgeted classification (Huang et al., ICLR 2018), also EENet's baseline.

Exit fractions follow a geometric law ``pi_k ∝ q^k``; thresholds are the quantile thresholds of
section 6 on a confidence score. ``q`` is solved for, not scanned: the largest ``q`` whose
realised mean cost on the fitting data is within the budget (the reference code scans a coarse
grid and overshoots).
"""

from __future__ import annotations

import numpy as np

from eeopt import _validation as v
from eeopt import engine
from eeopt.data import ExitData
from eeopt.methods.registry import Direct, MethodSpec, register
from eeopt.policy import ScorePolicy
from eeopt.quantile import exit_counts, thresholds_from_counts

#: Search range of log q: e^-60 puts every sample at the first exit, e^60 at the last.
_LOG_Q_RANGE = 60.0


def geometric_fractions(q: float, n_exits: int) -> np.ndarray:
    """Exit distribution ``pi_k = q^k / sum_j q^j``, ``(n_exits,)``; q = 0 and q = inf allowed."""
    if q == 0:
        return np.eye(n_exits)[0]
    if np.isinf(q):
        return np.eye(n_exits)[-1]
    log_weights = np.arange(n_exits) * np.log(q)
    weights = np.exp(log_weights - log_weights.max())
    return weights / weights.sum()


def _thresholds_for(q: float, exit_scores: np.ndarray) -> np.ndarray:
    counts = exit_counts(geometric_fractions(q, exit_scores.shape[1]), exit_scores.shape[0])
    return thresholds_from_counts(exit_scores, counts)


def solve_q(exit_scores: np.ndarray, costs: np.ndarray, budget: float) -> float:
    """The largest q whose quantile thresholds give a mean cost <= budget on these scores.

    Bisection on log q. The realised cost is a step function of q that is monotone up to
    one-sample steps (``floor(pi_k N)`` rounds each exit separately), so the result sits at a
    jump: one step further overshoots the budget, and its cost is generically within one
    sample's cost step of the budget.
    """

    def realised(q: float) -> float:
        exits = engine.first_exit(exit_scores, _thresholds_for(q, exit_scores))
        return engine.mean_cost(exits, costs)

    if realised(np.inf) <= budget:
        return np.inf
    lo, hi = -_LOG_Q_RANGE, _LOG_Q_RANGE
    if realised(np.exp(lo)) > budget:
        return 0.0
    # Invariant: lo is within budget, hi is not; stop when they are numerically adjacent.
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        if realised(np.exp(mid)) <= budget:
            lo = mid
        else:
            hi = mid
    return float(np.exp(lo))


def build_msdnet(
    data: ExitData, method: str, settings: dict, name: str, q: float
) -> tuple[ScorePolicy, dict]:
    """The policy of a given ``q`` (quantile thresholds of the geometric distribution)."""
    score = settings["score"]
    thresholds = _thresholds_for(q, data.score(score))
    policy = ScorePolicy(method, thresholds, data.costs, data.n_classes, score=score)
    return policy, {"q": q, "fractions": geometric_fractions(q, data.n_exits).tolist()}


def solve_budget(
    data: ExitData, method: str, settings: dict, budget: float
) -> tuple[ScorePolicy, dict]:
    """The largest q within the budget (:func:`solve_q`); labels are not needed."""
    q = solve_q(data.score(settings["score"]), data.costs, budget)
    return build_msdnet(data, method, settings, "q", q)


register(
    MethodSpec(
        name="msdnet",
        summary="geometric exit distribution pi_k ∝ q^k with quantile thresholds (budget only)",
        build=build_msdnet,
        options={"score": (v.ScoreName(), "maxprob")},
        direct=(Direct("q", v.Interval("real", 0.0, None)),),
        targets=("budget",),
        default_target=None,
        solve_budget=solve_budget,
        budget_needs_labels=False,
        requires=lambda settings: (settings["score"],),
        path_uses_data=lambda settings: True,  # quantile thresholds of the fitting scores
    )
)
