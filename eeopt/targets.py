"""What a fit aims at, the ordered candidate path of a method, and the one selection rule.

A method's settings form a path ordered from the most conservative (no early exit) to the most
aggressive. :class:`Candidates` holds that path with each setting's exact outcome on the fitting
data; :func:`select` picks the setting a :class:`Target` asks for; the certified targets
(:mod:`eeopt.risk`) test along the same path.

The sweep of a global threshold: ``tau`` sends sample n out at the first early exit k with
``score[n, k] >= tau``. Lowering ``tau`` only ever moves a sample to an earlier exit, and it
does so exactly when ``tau`` passes a *record* of the sample's running maximum score. So the
whole accuracy/cost curve is obtained by sorting those records once (``O(K N log(K N))``) and
accumulating the cost and correctness changes they cause: no grid, nothing missed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eeopt import engine
from eeopt.exceptions import BudgetUnreachableError

#: Target kinds every method with a candidate path understands.
TARGET_KINDS = ("budget", "accuracy")


@dataclass(frozen=True)
class Target:
    """What a fit aims at.

    Attributes
    ----------
    kind : {"budget", "accuracy", "direct"} or a method's own kind (BEEM's "exit-error")
    value : float or dict
        The budget (a mean cost per sample), the tolerance (a share of samples), or, for a
        direct setting, ``{option name: value}``.
    min_correct : float or None
        For ``kind="accuracy"``: the fewest correct samples a candidate may have, the final
        exit's count minus ``tolerance * n_samples``.
    """

    kind: str
    value: Any = None
    min_correct: float | None = None

    def describe(self) -> dict[str, Any]:
        """As recorded in ``policy.fit_info_``."""
        if self.kind == "direct":
            ((name, value),) = self.value.items()
            return {"target": "direct", "setting": _plain(value), "parameter": name}
        key = "budget" if self.kind == "budget" else "tolerance"
        return {"target": self.kind, key: self.value}

    def as_options(self) -> dict[str, Any]:
        """The options of :func:`eeopt.fit` that ask for this target again."""
        if self.kind == "direct":
            return {name: _plain(value) for name, value in self.value.items()}
        if self.kind == "budget":
            return {"budget": self.value}
        return {"target": self.kind, "tolerance": self.value}


def _plain(value: Any) -> Any:
    # A direct setting as JSON-friendly Python: arrays become lists.
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class ExitMoves:
    """The exit moves of a threshold sweep, in sweep order, for exact counts on demand.

    ``to_exit[e]`` is where the e-th move sends a sample, ``from_exit[e]`` where it came from;
    candidate ``i >= 1`` has applied the moves ``0 .. ends[i - 1]``; candidate 0 none (every
    sample at ``start``).
    """

    to_exit: np.ndarray
    from_exit: np.ndarray
    ends: np.ndarray
    start_counts: np.ndarray


@dataclass(frozen=True)
class Sweep:
    """Every distinct outcome of a one-parameter family of policies on the fitting data.

    Attributes
    ----------
    parameters : ndarray of shape (n_candidates,)
        The parameter of each candidate, from the most conservative (no early exit) to the most
        aggressive.
    mean_costs : ndarray of shape (n_candidates,)
        Mean cost per sample. Equal to the engine's figure bit for bit where the sweep keeps
        exit counts (``counts``); a running sum, equal to it to rounding, where it keeps the
        exit moves instead: :meth:`exact_mean_costs` gives the engine's figure.
    n_correct : ndarray of shape (n_candidates,), int64
    n_samples : int
    costs : ndarray of shape (n_exits,)
    counts : ndarray of shape (n_candidates, n_exits), optional
        Samples per exit of every candidate.
    moves : ExitMoves, optional
        Where ``counts`` is not kept: the moves that rebuild them exactly.
    """

    parameters: np.ndarray
    mean_costs: np.ndarray
    n_correct: np.ndarray
    n_samples: int
    costs: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    counts: np.ndarray | None = field(default=None, repr=False)
    moves: ExitMoves | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.parameters.shape[0]

    @property
    def accuracies(self) -> np.ndarray:
        return self.n_correct / self.n_samples

    def exit_counts(self, indices: Any) -> np.ndarray:
        """Exact samples per exit of the candidates ``indices``, ``(len(indices), n_exits)``.

        From the moves: the requested candidates cut the move list into segments; one
        ``bincount`` per direction counts each segment's moves per exit, and a cumulative sum
        over the segments gives the counts: ``O(E + M K)`` for E moves and M indices.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if self.counts is not None:
            return self.counts[indices]
        moves = self.moves
        n_exits = moves.start_counts.shape[0]
        order = np.argsort(indices, kind="stable")
        wanted = indices[order]
        # Candidate i has applied the moves up to and including ends[i - 1].
        cutoffs = np.where(wanted > 0, moves.ends[np.maximum(wanted - 1, 0)] + 1, 0)
        segment = np.searchsorted(cutoffs, np.arange(moves.to_exit.shape[0]), side="right")
        size = (wanted.shape[0] + 1) * n_exits
        delta = np.bincount(segment * n_exits + moves.to_exit, minlength=size) - np.bincount(
            segment * n_exits + moves.from_exit, minlength=size
        )
        cumulative = np.cumsum(delta.reshape(-1, n_exits), axis=0)[:-1]
        out = np.empty((wanted.shape[0], n_exits), dtype=np.int64)
        out[order] = moves.start_counts + cumulative
        return out

    def exact_mean_costs(self, indices: Any) -> np.ndarray:
        """The engine's mean cost of the candidates ``indices`` (``policy.evaluate``'s figure)."""
        return engine.mean_cost_from_counts(self.exit_counts(indices), self.costs)

    def head(self, n: int) -> Sweep:
        """The first ``n`` candidates (the exit moves are kept: their indices do not change)."""
        return Sweep(
            self.parameters[:n],
            self.mean_costs[:n],
            self.n_correct[:n],
            self.n_samples,
            self.costs,
            None if self.counts is None else self.counts[:n],
            self.moves,
        )


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
    start = np.zeros(n_exits, dtype=np.int64)
    start[-1] = n_samples
    if n_exits == 1:
        empty = np.empty(0, dtype=np.int64)
        return Sweep(
            np.array([np.inf]),
            np.array([costs[0]]),
            np.array([base_correct]),
            n_samples,
            costs,
            moves=ExitMoves(empty, empty, empty, start),
        )
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
    to_exit = np.broadcast_to(np.arange(n_exits - 1, dtype=next_record.dtype), early.shape)
    to_exit = to_exit[is_record]
    from_exit = next_record[is_record]
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
        costs=costs,
        moves=ExitMoves(to_exit[order], from_exit[order], group_end, start),
    )


@dataclass(frozen=True)
class Candidates:
    """A method's settings on the fitting data, from the most conservative to the cheapest.

    Attributes
    ----------
    method : str
    parameter : str
        The option of :func:`eeopt.fit` that each setting is a value of (``"threshold"``,
        ``"patience"``, ``"level"``, ``"budget"``, ...).
    sweep : Sweep
        ``parameters`` (the settings), ``mean_costs``, ``n_correct`` of every candidate.
    make_policy : callable
        ``make_policy(i) -> (Policy, info)``, the policy of candidate ``i`` and what to record
        of it.
    shared_scores : bool
        True when every candidate's policy computes the same scores and differs only in its
        thresholds (a threshold or level sweep): one score computation serves the whole path.
    recount : callable, optional
        ``recount(hits) -> (n_candidates,)`` for a boolean ``(n_samples, n_exits)`` matrix:
        how many samples leave at an exit where ``hits`` is True, for every candidate on the
        fitting samples (``hits=correct`` gives ``n_correct``). A threshold sweep does it in
        one more sweep; certified targets use it for losses other than the error.

    Examples
    --------
    >>> import eeopt
    >>> val = eeopt.datasets.load("mnist1d", "val")
    >>> path = eeopt.candidates(val, "maxprob")
    >>> path.parameter, float(path.parameters[0]), bool(path.mean_costs[0] == val.costs[-1])
    ('threshold', inf, True)
    """

    method: str
    parameter: str
    sweep: Sweep
    make_policy: Callable[[int], tuple[Any, dict]] = field(repr=False)
    shared_scores: bool = True
    recount: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.sweep)

    @property
    def parameters(self) -> np.ndarray:
        return self.sweep.parameters

    @property
    def mean_costs(self) -> np.ndarray:
        return self.sweep.mean_costs

    @property
    def accuracies(self) -> np.ndarray:
        return self.sweep.accuracies

    @property
    def n_samples(self) -> int:
        return self.sweep.n_samples

    def policy(self, index: int):
        """The fitted policy of candidate ``index``."""
        return self.make_policy(int(index))[0]


def non_dominated(costs: np.ndarray, accuracies: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (cheaper or equal and more accurate).

    Returned in increasing cost; among equal points the first is kept.
    """
    order = np.lexsort((-accuracies, costs))  # by cost, then most accurate first
    best_so_far = np.maximum.accumulate(accuracies[order])
    previous_best = np.r_[-np.inf, best_so_far[:-1]]
    return order[accuracies[order] > previous_best]


#: Relative slack within which two running-sum costs are compared exactly.
_COST_SLACK = 1e-9


def select(candidates: Candidates | Sweep, target: Target) -> int:
    """The index of the candidate that ``target`` asks for.

    - ``kind="budget"``: the most accurate candidate whose mean cost is at most the budget,
      then the cheapest, then the most conservative.
    - ``kind="accuracy"``: the cheapest candidate with at least ``target.min_correct`` correct,
      then the most accurate, then the most conservative.

    Costs are compared as :meth:`eeopt.Policy.evaluate` computes them (exit counts and the
    engine's formula) wherever a running sum is too close to call.

    Raises
    ------
    BudgetUnreachableError
        No candidate is within the budget.
    ValueError
        No candidate reaches the accuracy.
    """
    sweep = candidates.sweep if isinstance(candidates, Candidates) else candidates
    if target.kind == "budget":
        return _select_for_budget(sweep, float(target.value))
    if target.kind == "accuracy":
        return _select_for_accuracy(sweep, float(target.min_correct))
    raise ValueError(f"select takes a budget or accuracy target, got {target.kind!r}.")


def _select_for_budget(sweep: Sweep, budget: float) -> int:
    slack = _COST_SLACK * max(abs(budget), 1.0)
    exact_costs = sweep.counts is not None  # mean_costs are the engine's figures already
    feasible = sweep.mean_costs <= (budget if exact_costs else budget + slack)
    while feasible.any():
        indices = np.flatnonzero(feasible)
        best = sweep.n_correct[indices].max()
        tied = indices[sweep.n_correct[indices] == best]
        close = tied[sweep.mean_costs[tied] <= sweep.mean_costs[tied].min() + slack]
        close_costs = sweep.mean_costs[close] if exact_costs else sweep.exact_mean_costs(close)
        within = close_costs <= budget
        if within.any():
            cheapest = close_costs[within].min()
            return int(close[within & (close_costs == cheapest)][0])
        feasible[close] = False
    raise BudgetUnreachableError(budget, float(sweep.mean_costs.min()))


def _select_for_accuracy(sweep: Sweep, min_correct: float) -> int:
    feasible = np.flatnonzero(sweep.n_correct >= min_correct - 1e-9)
    if feasible.size == 0:
        raise ValueError(
            "target accuracy is above every setting this method reaches on the fitting data; "
            "raise tolerance."
        )
    cheapest = sweep.mean_costs[feasible].min()
    slack = _COST_SLACK * max(abs(cheapest), 1.0)
    close = feasible[sweep.mean_costs[feasible] <= cheapest + slack]
    if close.size > 1:
        exact = sweep.exact_mean_costs(close)
        close = close[exact == exact.min()]
    return int(close[np.argmax(sweep.n_correct[close])])
