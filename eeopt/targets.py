"""Exact threshold fitting: every decision-changing threshold, evaluated by cumulative counts.

A global threshold ``tau`` sends sample n out at the first early exit k with
``score[n, k] >= tau``. Lowering ``tau`` only ever moves a sample to an earlier exit, and it
does so exactly when ``tau`` passes a *record* of the sample's running maximum score. So the
whole accuracy/cost curve is obtained by sorting those records once (``O(K N log(K N))``) and
accumulating the cost and correctness changes they cause: no grid, nothing missed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from eeopt.exceptions import BudgetUnreachableError


@dataclass(frozen=True)
class Sweep:
    """Every distinct outcome of a one-parameter family of policies on the fitting data.

    Attributes
    ----------
    parameters : ndarray of shape (n_candidates,)
        The parameter (a threshold) of each candidate, from no early exit to the most exits.
    mean_costs : ndarray of shape (n_candidates,)
    n_correct : ndarray of shape (n_candidates,), int64
    n_samples : int
    """

    parameters: np.ndarray
    mean_costs: np.ndarray
    n_correct: np.ndarray
    n_samples: int

    @property
    def accuracies(self) -> np.ndarray:
        return self.n_correct / self.n_samples


def threshold_sweep(scores: np.ndarray, correct: np.ndarray, costs: np.ndarray) -> Sweep:
    """Accuracy and mean cost of every global threshold that changes an exit decision.

    Parameters
    ----------
    scores : ndarray of shape (n_samples, n_exits)
    correct : ndarray of shape (n_samples, n_exits), bool
    costs : ndarray of shape (n_exits,)

    Returns
    -------
    Sweep
        ``parameters[0] = +inf`` (everyone at the last exit); then each distinct record value
        in decreasing order: the threshold equal to that value and the outcome it gives.
    """
    n_samples, n_exits = scores.shape
    base_correct = int(np.count_nonzero(correct[:, -1]))
    if n_exits == 1:
        return Sweep(np.array([np.inf]), np.array([costs[0]]), np.array([base_correct]), n_samples)
    early = scores[:, :-1]
    running_max = np.maximum.accumulate(early, axis=1)
    is_record = np.empty(early.shape, dtype=bool)
    is_record[:, 0] = True
    np.greater(early[:, 1:], running_max[:, :-1], out=is_record[:, 1:])
    # For each record, the exit the sample leaves from when tau passes it: the next record
    # to its right, or the last exit.
    next_record = np.empty(early.shape, dtype=np.int8 if n_exits < 128 else np.int64)
    following = np.full(n_samples, n_exits - 1, dtype=next_record.dtype)
    for k in range(n_exits - 2, -1, -1):
        next_record[:, k] = following
        following = np.where(is_record[:, k], k, following).astype(next_record.dtype)
    # Changes caused by each record, computed densely and then picked out by the mask (cheaper
    # than gathering by index pairs).
    exit_costs = costs[:-1].astype(np.float64)
    delta_cost = (exit_costs[None, :] - costs[next_record])[is_record]
    delta_correct = (
        correct[:, :-1].astype(np.int8)
        - np.take_along_axis(correct, next_record.astype(np.intp), axis=1)
    )[is_record]
    values = early[is_record]
    order = np.argsort(values)[::-1]
    values, delta_cost, delta_correct = values[order], delta_cost[order], delta_correct[order]
    # Ties: a threshold equal to a value applies every event with that value at once.
    group_end = np.flatnonzero(np.r_[values[1:] != values[:-1], True])
    total_cost = n_samples * costs[-1] + np.cumsum(delta_cost)[group_end]
    n_correct = base_correct + np.cumsum(delta_correct)[group_end]
    return Sweep(
        parameters=np.r_[np.inf, values[group_end].astype(np.float64)],
        mean_costs=np.r_[costs[-1], total_cost / n_samples],
        n_correct=np.r_[base_correct, n_correct],
        n_samples=n_samples,
    )


def select_for_budget(
    sweep: Sweep, budget: float, exact_mean_cost: Callable[[int], float] | None = None
) -> int:
    """Index of the most accurate candidate with mean cost <= budget (then the cheapest).

    The sweep's costs are running sums and can be off in the last digits; candidates within a
    relative 1e-9 of the budget are therefore checked with ``exact_mean_cost(index)`` (the
    engine's own figure) and dropped if it exceeds the budget.

    Raises BudgetUnreachableError (a ValueError) if no candidate is within the budget.
    """
    slack = 1e-9 * max(abs(budget), 1.0)
    feasible = sweep.mean_costs <= budget + slack
    while feasible.any():
        candidates = np.flatnonzero(feasible)
        best = sweep.n_correct[candidates].max()
        tied = candidates[sweep.n_correct[candidates] == best]
        index = int(tied[np.argmin(sweep.mean_costs[tied])])
        if exact_mean_cost is None or sweep.mean_costs[index] <= budget - slack:
            return index
        if exact_mean_cost(index) <= budget:
            return index
        feasible[index] = False
    raise BudgetUnreachableError(budget, float(sweep.mean_costs.min()))


def select_for_accuracy(sweep: Sweep, min_correct: float) -> int:
    """Index of the cheapest candidate with at least ``min_correct`` correct (then the most
    accurate). The candidate without early exits always qualifies when ``min_correct`` is the
    final exit's count."""
    feasible = np.flatnonzero(sweep.n_correct >= min_correct - 1e-9)
    if feasible.size == 0:
        raise ValueError(
            "target accuracy is above every setting this method reaches on the fitting data; "
            "raise tolerance."
        )
    cheapest = sweep.mean_costs[feasible].min()
    tied = feasible[sweep.mean_costs[feasible] == cheapest]
    return int(tied[np.argmax(sweep.n_correct[tied])])
