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
from eeopt.quantile import exit_counts, quantile_assignment

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
    return quantile_assignment(exit_scores, counts)[0]


def solve_q(exit_scores: np.ndarray, costs: np.ndarray, budget: float) -> float:
    """The largest q whose quantile thresholds give a mean cost <= budget on these scores.

    Bisection on log q. The realised cost is a step function of q that is monotone up to
    one-sample steps (``floor(pi_k N)`` rounds each exit separately), so the result sits at a
    jump: one step further overshoots the budget, and its cost is generically within one
    sample's cost step of the budget. See :func:`_solve` for how the steps avoid the data.
    """
    return _solve(exit_scores, costs, budget)[0]


def _by_exit(exit_scores: np.ndarray) -> np.ndarray:
    """The scores transposed to ``(n_exits, n_samples)``, copied in blocks of rows (a plain
    transposed copy is about twice as slow)."""
    n_samples, n_exits = exit_scores.shape
    out = np.empty((n_exits, n_samples), dtype=exit_scores.dtype)
    for lo in range(0, n_samples, 1024):
        out[:, lo : lo + 1024] = exit_scores[lo : lo + 1024].T
    return out


def _solve(exit_scores: np.ndarray, costs: np.ndarray, budget: float):
    """``(q, thresholds)``: :func:`solve_q` and the quantile thresholds of that q.

    Each bisection step asks whether the realised mean cost of q is within the budget. The
    realised cost is a function of the requested counts ``floor(pi_k(q) N)`` alone, and ties
    only ever move samples to earlier exits, so it is at most the cost of the counts
    (``O(K)``, no data): when that is within the budget (with a margin for rounding) the
    answer is yes. Otherwise the counts are looked up in a table of those already realised
    on the data, and only a new count vector costs a pass over the data (one partition per
    exit, :func:`eeopt.quantile.quantile_assignment`). Most steps are settled by the counts;
    the late steps, which straddle the jump, repeat two count vectors. The steps, and so q,
    are those of a bisection that realises every step on the data, bit for bit.
    """
    n_samples, n_exits = exit_scores.shape
    by_exit = _by_exit(exit_scores)  # each realisation then gathers from contiguous rows
    # Rounding of the K-term mean cost is far below this margin.
    margin = 8 * n_exits * np.finfo(np.float64).eps * float(np.max(np.abs(costs)))
    realised: dict[bytes, tuple[bool, np.ndarray]] = {}

    def counts_of(q: float) -> np.ndarray:
        return exit_counts(geometric_fractions(q, n_exits), n_samples)

    def within(q: float) -> bool:
        counts = counts_of(q)
        if engine.mean_cost_from_counts(counts, costs) <= budget - margin:
            return True
        key = counts.tobytes()
        if key not in realised:
            thresholds, exits = quantile_assignment(by_exit, counts, by_exit=True)
            realised[key] = (engine.mean_cost_from_counts(exits, costs) <= budget, thresholds)
        return realised[key][0]

    def answer(q: float):
        known = realised.get(counts_of(q).tobytes())
        if known is not None:
            return q, known[1]
        return q, quantile_assignment(by_exit, counts_of(q), by_exit=True)[0]

    if within(np.inf):
        return answer(np.inf)
    lo, hi = -_LOG_Q_RANGE, _LOG_Q_RANGE
    if not within(np.exp(lo)):
        return answer(0.0)
    # Invariant: lo is within budget, hi is not; stop when they are numerically adjacent.
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        if within(np.exp(mid)):
            lo = mid
        else:
            hi = mid
    return answer(float(np.exp(lo)))


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
    score = settings["score"]
    q, thresholds = _solve(data.score(score), data.costs, budget)
    policy = ScorePolicy(method, thresholds, data.costs, data.n_classes, score=score)
    return policy, {"q": q, "fractions": geometric_fractions(q, data.n_exits).tolist()}


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
