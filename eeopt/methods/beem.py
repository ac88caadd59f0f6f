"""BEEM: the exits of a multi-exit network as experts (Bajpai & Hanawal, ICLR 2025).

Each exit k votes with its max class probability ``C_k`` times a weight ``w_k``; the votes of
consecutive exits that agree on the class add up (spec section 4)::

    S_0 = w_0 C_0
    S_k = S_{k-1} + w_k C_k   if argmax_k == argmax_{k-1}
    S_k = w_k C_k             otherwise (the consistent run starts again)

A sample leaves at the first exit k with ``S_k >= alpha_k`` (the last exit always fires) and is
predicted the argmax there. BEEM-C weighs exits by cost (``w_k = costs[k] / costs[-1]``), BEEM-A
by their accuracy on the fitting data.

Thresholds follow the paper's error-rate rule: with ``p`` the final exit's error rate on the fitting
data, go from the first exit to the last-but-one and pick the smallest ``alpha_k`` whose exiting
samples (given the earlier thresholds) err at most ``p`` (:func:`exit_error_thresholds`). The error
level is BEEM's one knob; :func:`level_sweep` enumerates every level that changes a decision, so
that budget and accuracy targets are met exactly on the fitting data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from eeopt import _validation as v
from eeopt import engine
from eeopt._progress import Progress
from eeopt.data import ExitData
from eeopt.methods._beem_sweep import PerExitSweep, replay
from eeopt.methods.registry import Direct, MethodSpec, register
from eeopt.policy import Policy, encode_floats, param_choice, param_floats
from eeopt.targets import Candidates, ExitCountTable, Sweep, Target, threshold_sweep

#: ``reset=`` values: the paper's rule, or the accumulation of the authors' released code.
RESET_MODES = ("paper", "zero")
#: ``thresholds=`` values of the functions (and the fit option before ``per_exit=``).
THRESHOLD_MODES = ("per-exit", "global")
#: ``levels=``: how many evenly spaced error levels, or which.
LEVELS = v.UnitGrid("error levels", "error rates do")


# -- the score ----------------------------------------------------------------------------------
def beem_scores(
    predictions: Any, confidence: Any, weights: Any, reset: str = "paper"
) -> np.ndarray:
    """BEEM's accumulated expert score of every sample at every exit.

    Parameters
    ----------
    predictions : array-like of shape (n_samples, n_exits), int
        Each exit's predicted class (its argmax).
    confidence : array-like of shape (n_samples, n_exits), float
        Each exit's confidence ``C_k``, the max class probability in the paper.
    weights : array-like of shape (n_exits,)
        Non-negative, finite expert weights ``w_k``, at least one positive (a zero weight
        drops that exit's vote: BEEM-A's weight of an exit that is never right).
    reset : {"paper", "zero"}, default="paper"
        What happens when exit k disagrees with exit k - 1:

        - ``"paper"`` (spec section 4): ``S_0 = w_0 C_0``; ``S_k = S_{k-1} + w_k C_k`` if the
          argmaxes agree, else ``S_k = w_k C_k`` (the new run starts with exit k's own vote).
        - ``"zero"``: the accumulation of the authors' released code, for comparison.
          ``S_0 = 0`` (the first exit has no predecessor to agree with, so it counts as a
          disagreement); ``S_k = S_{k-1} + w_k C_k`` if the argmaxes agree, else ``S_k = 0``:
          the score is reset to 0 *and exit k's vote is not added*. So the first exit only fires
          with ``alpha_0 <= 0``, and a disagreeing exit only with ``alpha_k <= 0``. (The released
          code also shifts the weights by one exit, ``0.1 * k`` from k = 0; pass such weights
          through ``weights=`` to reproduce it: ``w_0`` is never used with ``"zero"``.)

    Returns
    -------
    scores : ndarray of shape (n_samples, n_exits), float64
        Non-negative; accumulated in float64 in exit order, so a per-sample loop adding
        ``w_k * C_k`` one exit at a time gives identical values.

    Examples
    --------
    >>> import numpy as np
    >>> from eeopt.methods.beem import beem_scores
    >>> beem_scores([[0, 0, 1]], [[0.5, 0.5, 0.5]], [1.0, 1.0, 1.0]).tolist()
    [[0.5, 1.0, 0.5]]
    >>> beem_scores([[0, 0, 1]], [[0.5, 0.5, 0.5]], [1.0, 1.0, 1.0], reset="zero").tolist()
    [[0.0, 0.5, 0.0]]
    """
    conf = v.check_float_array(confidence, "confidence", ndim=2)
    preds = np.asarray(predictions)
    if preds.dtype == np.bool_ or not np.issubdtype(preds.dtype, np.integer):
        raise TypeError(f"predictions must hold integer classes, got dtype {preds.dtype}.")
    if preds.shape != conf.shape:
        raise ValueError(
            f"predictions and confidence must have the same shape (n_samples, n_exits); got "
            f"{preds.shape} and {conf.shape}."
        )
    n_samples, n_exits = conf.shape
    weights = v.check_weights(weights, n_exits)
    v.check_choice(reset, "reset", RESET_MODES)
    scores = np.empty((n_samples, n_exits), dtype=np.float64)
    # Exit by exit within blocks of rows that stay in cache: a column of a whole (n, K) array
    # is a strided pass over all of it, K times over (25x one evaluation at 10^7 samples).
    rows = max(1, _SCORE_BLOCK // n_exits)
    for lo in range(0, n_samples, rows):
        block, conf_b, preds_b = scores[lo : lo + rows], conf[lo : lo + rows], preds[lo : lo + rows]
        votes = conf_b * weights  # float64: the weights are
        block[:, 0] = votes[:, 0] if reset == "paper" else 0.0
        for k in range(1, n_exits):
            agree = preds_b[:, k] == preds_b[:, k - 1]
            restart = votes[:, k] if reset == "paper" else 0.0
            block[:, k] = np.where(agree, block[:, k - 1] + votes[:, k], restart)
    return scores


#: Elements per block of rows when BEEM scores are accumulated.
_SCORE_BLOCK = 1 << 15


def cost_weights(costs: np.ndarray) -> np.ndarray:
    """BEEM-C's weights ``w_k = costs[k] / costs[-1]``, ``(n_exits,)``."""
    return np.asarray(costs, dtype=np.float64) / float(costs[-1])


def accuracy_weights(correct: np.ndarray) -> np.ndarray:
    """BEEM-A's weights: each exit's accuracy on the fitting data, ``(n_exits,)``."""
    return np.asarray(correct).mean(axis=0, dtype=np.float64)


# -- the error-rate rule --------------------------------------------------------------------------
def _group_ends(sorted_scores: np.ndarray) -> np.ndarray:
    """Index of the last element of each run of equal values in a sorted array."""
    return np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])


def _choose(
    values: np.ndarray,
    n_exit: np.ndarray,
    n_wrong: np.ndarray,
    level: float,
    min_samples: int,
) -> tuple[int, float]:
    """The candidate the error-rate rule picks, and the next level at which that changes.

    Candidates are ordered from the highest threshold to the lowest; ``n_exit`` and ``n_wrong``
    are the samples that would exit with each threshold and those of them that err. The rule
    takes the last (lowest-threshold) candidate with at least ``min_samples`` exiting and an
    error rate ``n_wrong / n_exit <= level``; -1 if there is none. Raising the level changes the
    choice exactly when it reaches the smallest rate of an eligible candidate after it.
    """
    eligible = np.flatnonzero(n_exit >= min_samples)
    rates = n_wrong[eligible] / n_exit[eligible]
    feasible = np.flatnonzero(rates <= level)
    if feasible.size:
        last = int(feasible[-1])
        chosen, later = int(eligible[last]), rates[last + 1 :]
    else:
        chosen, later = -1, rates
    return chosen, float(later.min()) if later.size else np.inf


def _check_rule_inputs(scores: Any, correct: Any, min_samples: Any, mode: Any):
    scores = v.check_float_array(scores, "scores", ndim=2)
    correct = np.asarray(correct)
    if correct.dtype != np.bool_ or correct.shape != scores.shape:
        raise ValueError(
            f"correct must be a boolean array of the same shape as scores {scores.shape}, got "
            f"dtype {correct.dtype} and shape {correct.shape}."
        )
    min_samples = v.check_positive_int(min_samples, "min_samples")
    v.check_choice(mode, "thresholds", THRESHOLD_MODES)
    return scores, correct, min_samples


def exit_error_thresholds(
    scores: Any,
    correct: Any,
    level: float,
    *,
    min_samples: int = 1,
    thresholds: str = "per-exit",
) -> np.ndarray:
    """Thresholds of BEEM's error-rate rule at a given error level.

    Per exit (``thresholds="per-exit"``), from the first exit to the last-but-one: among the
    samples that have not left yet, ``alpha_k`` is the smallest score value whose exiting samples
    (score >= alpha_k) err at a rate ``<= level``, counting only candidates with at least
    ``min_samples`` samples exiting; ``+inf`` if none qualifies. ``alpha_k`` is reported as the
    score of the weakest sample that leaves (any value down to the next lower remaining score
    gives the same exits on these data).
    Sorting once per exit and counting cumulatively makes this ``O(K N log N)``.

    With ``thresholds="global"`` one alpha is shared by every early exit: the smallest with at
    least ``min_samples`` samples leaving early, at an error rate ``<= level`` among them. It is
    likewise the score of the weakest sample that leaves early (each sample leaves at the first
    exit whose score reaches alpha).

    Parameters
    ----------
    scores : array-like of shape (n_samples, n_exits)
        BEEM scores (:func:`beem_scores`).
    correct : array-like of shape (n_samples, n_exits), bool
        Whether each exit's prediction is right.
    level : float
        The error level: the paper uses the final exit's error rate ``p`` (plus a tolerance).
    min_samples : int, default=1
        Fewest samples a candidate must let out to count.
    thresholds : {"per-exit", "global"}, default="per-exit"

    Returns
    -------
    thresholds : ndarray of shape (n_exits,)
        The last entry is ``-inf`` (the last exit always fires).
    """
    scores, correct, min_samples = _check_rule_inputs(scores, correct, min_samples, thresholds)
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating, np.integer)):
        raise TypeError(f"level must be a number, got {level!r}.")
    if not level >= 0:
        raise ValueError(f"level must be >= 0, got {level!r}.")
    level = float(level)
    n_samples, n_exits = scores.shape
    out = np.full(n_exits, -np.inf)
    if thresholds == "global":
        sweep = _GlobalSweep(scores, correct)
        chosen, _ = _choose(sweep.values, sweep.n_early, sweep.n_early_wrong, level, min_samples)
        out[:-1] = sweep.values[chosen] if chosen >= 0 else np.inf
        return out
    remaining = np.arange(n_samples)
    for k in range(n_exits - 1):
        if remaining.size == 0:  # everyone has left: nothing to let out here
            out[k] = np.inf
            continue
        exit_scores = scores[remaining, k]
        order = np.argsort(exit_scores)[::-1]
        ordered = exit_scores[order]
        ends = _group_ends(ordered)
        n_wrong = np.cumsum(~correct[remaining[order], k])[ends]
        chosen, _ = _choose(ordered[ends], ends + 1, n_wrong, level, min_samples)
        if chosen < 0:
            out[k] = np.inf
            continue
        out[k] = ordered[ends[chosen]]
        remaining = remaining[exit_scores < out[k]]
    return out


@dataclass(frozen=True)
class LevelSweep(Sweep):
    """Every distinct outcome of BEEM's error-rate rule as the error level rises.

    ``parameters`` are the error levels, increasing from 0: each is the lowest level giving its
    candidate, which holds up to (not including) the next one. Every candidate's exit counts
    are kept (``exit_counts``) and ``mean_costs`` is the engine's figure from them (identical
    to ``policy.evaluate``).

    Attributes
    ----------
    thresholds : ndarray of shape (n_candidates, n_exits)
        The thresholds of each candidate (:func:`exit_error_thresholds` at that level).
    """

    thresholds: np.ndarray = None  # type: ignore[assignment]
    #: After :meth:`on` with ``rank``: each sample's smallest rank among the policies at which
    #: its exit is wrong (``np.iinfo(np.int64).max`` if none), ``(n_samples,)`` int64.
    first_wrong: np.ndarray | None = None
    #: After :meth:`on` with ``rank`` and ``reach=True``: per sample and exit k = 1 ..
    #: n_exits - 1, the smallest rank among the policies at which it leaves at exit k or
    #: later, ``(n_samples, n_exits - 1)`` int64 (``np.iinfo(np.int64).max`` if none).
    first_reach: np.ndarray | None = None

    def on(
        self,
        scores: Any,
        correct: Any,
        costs: Any,
        rank: Any = None,
        reach: bool = False,
        n_jobs: int | None = None,
    ) -> LevelSweep:
        """The same policies (levels and thresholds) with their outcomes on other samples:
        exit counts, correct counts, the accuracy gap's positive part and mean costs exactly
        as ``policy.evaluate`` finds them there. Only the samples whose exit changes between
        consecutive policies are moved (:func:`eeopt.methods._beem_sweep.replay`), so this
        costs about what the sweep's own moves did, not an evaluation per policy.

        With ``rank`` (each policy's position in a testing order; a large value: not in it),
        the result's ``first_wrong`` holds each sample's first position in that order at which
        its exit is wrong, tracked in the same replay: conformal risk control of a 0/1 loss
        counts these (a sample's running maximum is 1 from that position on). With
        ``reach=True`` as well, ``first_reach`` instead: a cost's running maximum along that
        order is the cost of the latest exit reached so far, so its sums follow from each
        sample's first position at or past each exit.

        Parameters
        ----------
        scores : array-like of shape (n_samples, n_exits)
            The policies' scores on the other samples (the same weights).
        correct : array-like of shape (n_samples, n_exits), bool
        costs : array-like of shape (n_exits,)
        rank : array-like of shape (n_policies,), int, optional
        reach : bool, default=False
        n_jobs : int, optional
            Threads sorting the other samples' exits (as :func:`level_sweep`'s).
        """
        scores, correct, _ = _check_rule_inputs(scores, correct, 1, "per-exit")
        if scores.shape[1] != self.thresholds.shape[1]:
            raise ValueError(
                f"scores must have {self.thresholds.shape[1]} exits (the policies'), got "
                f"shape {scores.shape}."
            )
        costs = v.check_costs(costs, scores.shape[1])
        if rank is not None:
            rank = np.asarray(rank)
            if rank.shape != (self.thresholds.shape[0],) or not np.issubdtype(
                rank.dtype, np.integer
            ):
                raise ValueError(
                    f"rank must hold one integer per policy ({self.thresholds.shape[0]}), got "
                    f"shape {rank.shape} of {rank.dtype}."
                )
        if reach and rank is None:
            raise ValueError("reach=True tracks positions in a testing order: pass rank= too.")
        n_jobs = v.NJobs().check(n_jobs, "n_jobs")
        counts, n_correct, lost, *first = replay(
            self.thresholds, scores, correct, rank, reach, n_jobs
        )
        return LevelSweep(
            parameters=self.parameters,
            mean_costs=_mean_costs(counts, costs),
            n_correct=n_correct,
            n_samples=scores.shape[0],
            thresholds=self.thresholds,
            moves=ExitCountTable(counts),
            costs=costs,
            lost=lost,
            first_wrong=first[0] if first and not reach else None,
            first_reach=first[0] if first and reach else None,
        )


class _GlobalSweep:
    """Every shared threshold that changes a decision (:func:`eeopt.targets.threshold_sweep`),
    with the samples that leave early and those of them that err."""

    def __init__(
        self, scores: np.ndarray, correct: np.ndarray, costs: np.ndarray | None = None
    ) -> None:
        n_samples, n_exits = scores.shape
        # The same sweep with indicator costs (1 at early exits, 0 at the last) counts the early
        # exits, and with "correct" = wrong at an early exit it counts their errors.
        early = np.r_[np.ones(n_exits - 1), 0.0]
        early_wrong = ~correct
        early_wrong[:, -1] = False
        counting = threshold_sweep(scores, early_wrong, early)
        outcome = None if costs is None else threshold_sweep(scores, correct, costs)
        # parameters[0] is +inf (no early exit): the rule's candidates are the others.
        self.values = counting.parameters[1:]
        self.n_early = np.rint(counting.mean_costs[1:] * n_samples).astype(np.int64)
        self.n_early_wrong = counting.n_correct[1:]
        self.outcome = outcome


def level_sweep(
    scores: Any,
    correct: Any,
    costs: Any,
    *,
    min_samples: int = 1,
    thresholds: str = "per-exit",
    max_level: float = 1.0,
    levels: Any = None,
    n_jobs: int | None = None,
    verbose: bool = False,
) -> LevelSweep:
    """Accuracy and mean cost of BEEM's error-rate rule at every level that changes a decision
    (or at the given ``levels`` only).

    The rule's thresholds are a step function of the error level: exit k's choice changes only
    when the level reaches the error rate of a candidate with a lower threshold, or when the
    samples reaching exit k change. The result lists each policy of the family once, at the
    lowest level that gives it, with its exact outcome on these samples.

    Per exit (``thresholds="per-exit"``) the sweep is an event simulation
    (:mod:`eeopt.methods._beem_sweep`): every exit's samples are sorted once and counted in a
    tree over their score groups; moving from one level to the next re-queries only the exits
    whose choice is due or whose samples changed, and moves only the samples whose exit
    changes. The time grows about linearly with the number of policies (one or two per
    sample), times the exits and samples each one changes (on token-like data about 8 exits
    and 60 samples per policy); see ``benchmarks/README.md``. The kernel is compiled with
    numba where it is installed (``pip install eeopt[fast]``, about 100x faster) and runs as
    plain Python otherwise, with identical results. ``thresholds="global"`` is one sorted sweep
    (:func:`eeopt.targets.threshold_sweep`).

    Parameters
    ----------
    scores, correct : as in :func:`exit_error_thresholds`
    costs : array-like of shape (n_exits,)
        Cumulative costs.
    min_samples, thresholds : as in :func:`exit_error_thresholds`
    max_level : float, default=1.0
        Stop at this level (error rates never exceed 1).
    levels : int or array-like of shape (n_levels,), optional
        Only these error levels: an int n for n levels evenly spaced on ``[0, max_level]``, or
        the levels themselves (in ``[0, 1]``; those above ``max_level`` are left out). Each
        distinct policy is listed once, at the lowest of these levels that gives it: the exact
        sweep's policies in effect at these levels (the last one at or below each). Per exit
        the state jumps from one level to the next, moving only the samples whose exit differs
        between the two policies, so the time no longer grows with the number of distinct
        policies (on token data the exact sweep lists 1.6 per token).
    n_jobs : int, optional
        Threads sorting and grouping the exits before the per-exit sweep (scikit-learn's
        convention: None is 1, -1 every core); the same result whatever the number.
    verbose : bool, default=False
        Progress bar (policies found, current level) for the per-exit sweep.

    Returns
    -------
    LevelSweep
    """
    scores, correct, min_samples = _check_rule_inputs(scores, correct, min_samples, thresholds)
    n_samples, n_exits = scores.shape
    costs = v.check_costs(costs, n_exits)
    if n_exits == 1:
        raise ValueError("BEEM needs at least 2 exits.")
    grid = None if levels is None else level_grid(levels, max_level)
    n_jobs = v.NJobs().check(n_jobs, "n_jobs")  # the per-exit sweep's; one sort for "global"
    if thresholds == "global":
        sweep = _global_level_sweep(scores, correct, costs, min_samples, max_level)
        return sweep if grid is None else _at_levels(sweep, grid)
    return _per_exit_level_sweep(
        scores, correct, costs, min_samples, max_level, grid, n_jobs, verbose
    )


def level_grid(levels: Any, max_level: float) -> np.ndarray:
    """The error levels of ``levels=`` (an int n: n evenly spaced on ``[0, max_level]``; else the
    values, checked by :data:`LEVELS`) up to ``max_level``, increasing."""
    levels = LEVELS.check(levels, "levels")
    if isinstance(levels, int):
        return max_level * np.arange(levels) / (levels - 1)  # i / (n - 1) exactly at max 1
    kept = levels[levels <= max_level]
    if kept.size == 0:
        raise ValueError(
            f"levels= holds no error level at or below {max_level:g}, the highest this target "
            f"searches (an accuracy target: the final exit's error rate); add lower levels."
        )
    return kept


def _at_levels(sweep: LevelSweep, grid: np.ndarray) -> LevelSweep:
    """The policies of an exact level sweep in effect at the ``grid`` levels (the last at or
    below each), each distinct one once, at the lowest grid level giving it."""
    rows = np.searchsorted(sweep.parameters, grid, side="right") - 1  # parameters[0] is 0
    rows, first = np.unique(rows, return_index=True)
    return LevelSweep(
        parameters=grid[first],
        mean_costs=sweep.mean_costs[rows],
        n_correct=sweep.n_correct[rows],
        n_samples=sweep.n_samples,
        thresholds=sweep.thresholds[rows],
        moves=ExitCountTable(sweep.moves.table[rows]),
        costs=sweep.costs,
        lost=sweep.lost[rows],
    )


def _global_level_sweep(scores, correct, costs, min_samples, max_level) -> LevelSweep:
    n_samples, n_exits = scores.shape
    sweep = _GlobalSweep(scores, correct, costs)
    eligible = sweep.n_early >= min_samples
    rates = np.full(sweep.values.shape[0], np.inf)
    rates[eligible] = sweep.n_early_wrong[eligible] / sweep.n_early[eligible]
    # Level L picks the last candidate with rate <= L: candidate j is picked from level rates[j]
    # on exactly when every later candidate has a higher rate (a strict suffix minimum).
    later_min = np.r_[np.minimum.accumulate(rates[::-1])[::-1][1:], np.inf]
    picked = np.flatnonzero((rates < later_min) & (rates <= max_level))
    levels = rates[picked]
    if levels.size == 0 or levels[0] > 0:  # level 0 itself: no candidate, no early exit
        picked, levels = np.r_[-1, picked], np.r_[0.0, levels]
    index = picked + 1  # into the outcome sweep, whose entry 0 is "no early exit"
    parameters = sweep.outcome.parameters[index]
    thresholds = np.repeat(parameters[:, None], n_exits, axis=1)
    thresholds[:, -1] = -np.inf
    counts = sweep.outcome.exit_counts(index)
    return LevelSweep(
        parameters=levels,
        mean_costs=engine.mean_cost_from_counts(counts, costs),
        n_correct=sweep.outcome.n_correct[index],
        n_samples=n_samples,
        thresholds=thresholds,
        moves=ExitCountTable(counts),
        costs=costs,
        lost=sweep.outcome.n_lost()[index],
    )


#: Policies the first call of the per-exit sweep records (then four times as many per call).
_FIRST_CHUNK = 1024


def _per_exit_level_sweep(
    scores, correct, costs, min_samples, max_level, grid=None, n_jobs=None, verbose=False
) -> LevelSweep:
    n_samples, n_exits = scores.shape
    state = PerExitSweep(scores, correct, min_samples, n_jobs)
    chunks = []
    # Every level: the policies found so far; given levels: how many of them are done.
    total, unit = (None, "policies") if grid is None else (grid.shape[0], "levels")
    with Progress(total, f"BEEM level sweep ({unit})", verbose) as bar:
        capacity = _FIRST_CHUNK if grid is None else 16
        while not state.done:
            used = int(state.cursor[3])
            chunk = state.run(max_level, capacity, grid)
            chunks.append(chunk)
            step = chunk[0].shape[0] if grid is None else int(state.cursor[3]) - used
            postfix = f"level {chunk[0][-1]:.4g} of {max_level:g}" if chunk[0].size else None
            bar.update(step, postfix=postfix)
            capacity = min(capacity * 4, 1 << 20) if grid is None else min(capacity * 2, 1024)
    parts = zip(*chunks, strict=True)
    levels, alphas, counts, n_correct, lost = (np.concatenate(part) for part in parts)
    del chunks
    thresholds = np.empty((levels.shape[0], n_exits))
    thresholds[:, :-1] = alphas
    thresholds[:, -1] = -np.inf
    del alphas
    return LevelSweep(
        parameters=levels,
        mean_costs=_mean_costs(counts, costs),
        n_correct=n_correct,
        n_samples=n_samples,
        thresholds=thresholds,
        moves=ExitCountTable(counts),
        costs=costs,
        lost=lost,
    )


def _mean_costs(counts: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """The engine's mean cost of every row of exit counts (so that the figures equal those of
    ``policy.evaluate`` bit for bit), in blocks of rows: its temporaries stay small."""
    out = np.empty(counts.shape[0])
    for lo in range(0, counts.shape[0], 1 << 16):
        out[lo : lo + (1 << 16)] = engine.mean_cost_from_counts(counts[lo : lo + (1 << 16)], costs)
    return out


# -- the policy and the fitting entry point ------------------------------------------------------
class BeemPolicy(Policy):
    """Thresholds on the BEEM score (:func:`beem_scores`).

    Attributes
    ----------
    weights_ : ndarray of shape (n_exits,)
        The expert weights (fitted accuracies for BEEM-A).
    reset : {"paper", "zero"}
    """

    def __init__(
        self,
        method: str,
        thresholds: np.ndarray,
        costs: np.ndarray,
        n_classes: int,
        fit_info: dict | None = None,
        fit_params: dict | None = None,
        *,
        weights: Any,
        reset: str = "paper",
    ) -> None:
        super().__init__(method, thresholds, costs, n_classes, fit_info, fit_params)
        self.weights_ = np.array(weights, dtype=np.float64)  # its own copy (shared per fit)
        self.reset = reset

    def compute_scores(self, data: ExitData) -> np.ndarray:
        # The score at exit k uses exits 0..k only, so a prefix of the exits (exit-by-exit
        # inference, Policy.prefix_scores) takes the matching prefix of the weights.
        weights = self.weights_[: data.n_exits]
        return beem_scores(data.predictions, data.maxprob, weights, self.reset)

    def _params(self) -> dict[str, Any]:
        return {"weights": encode_floats(self.weights_), "reset": self.reset}

    def requires(self) -> tuple[str, ...]:
        return ("predictions", "maxprob")

    @classmethod
    def _from_params(cls, common: dict[str, Any], params: dict[str, Any]) -> BeemPolicy:
        weights = param_floats(params, "weights", length=common["costs"].shape[0])
        v.check_weights(weights, weights.shape[0], name="policy field 'params.weights'")
        return cls(**common, weights=weights, reset=param_choice(params, "reset", RESET_MODES))


def weights_for(method: str, data: ExitData, weights: np.ndarray | None) -> np.ndarray:
    """The expert weights: the user's, or the method's own (cost- or accuracy-based)."""
    if weights is not None:
        return weights
    if method == "beem-c":
        return cost_weights(data.costs)
    return accuracy_weights(data.correct)


# The weights are computed once per fit (BEEM-A's are an O(N K) mean) and passed along.
def _policy(
    data: ExitData, method: str, settings: dict, thresholds: np.ndarray, weights: np.ndarray
) -> BeemPolicy:
    return BeemPolicy(
        method, thresholds, data.costs, data.n_classes, weights=weights, reset=settings["reset"]
    )


def _scores(data: ExitData, settings: dict, weights: np.ndarray) -> np.ndarray:
    return beem_scores(data.predictions, data.maxprob, weights, settings["reset"])


def _final_error(data: ExitData) -> float:
    return float(np.count_nonzero(~data.correct[:, -1]) / data.n_samples)


def build_beem(
    data: ExitData, method: str, settings: dict, name: str, value: Any
) -> tuple[BeemPolicy, dict]:
    """A direct setting: thresholds ``alpha=``, or the rule at an error ``level=``."""
    _no_levels(settings, f"{name}=")
    per_exit, min_samples = settings["per_exit"], settings["min_samples"]
    weights = weights_for(method, data, settings["weights"])
    if name == "level":
        mode = "per-exit" if per_exit else "global"
        thresholds = exit_error_thresholds(
            _scores(data, settings, weights),
            data.correct,
            value,
            min_samples=min_samples,
            thresholds=mode,
        )
        policy = _policy(data, method, settings, thresholds, weights)
        return policy, {"level": value, "weights": policy.weights_.tolist()}
    if not per_exit and np.unique(value[:-1]).size > 1:
        raise ValueError(
            "per_exit=False shares one alpha across the early exits; pass a single number as "
            "alpha=, or per_exit=True."
        )
    policy = _policy(data, method, settings, value, weights)
    return policy, {"weights": policy.weights_.tolist()}


def exit_error_level(
    data: ExitData, method: str, settings: dict, tolerance: float
) -> tuple[dict, dict]:
    """The paper's rule: the error level is the final exit's error rate plus ``tolerance``."""
    _no_levels(settings, "target='exit-error' (BEEM's default)")
    p = _final_error(data)
    return {"level": p + tolerance}, {"final_error": p}


def _no_levels(settings: dict, setting: str) -> None:
    """``levels=`` picks the levels a target or a front searches: with one level it conflicts."""
    if settings["levels"] is not None:
        raise ValueError(
            f"levels= lists the error levels that budget=, target='accuracy' and the Pareto "
            f"front search; {setting} sets one level or the thresholds: remove levels=."
        )


def beem_candidates(
    data: ExitData, method: str, settings: dict, target: Target | None = None
) -> Candidates:
    """Every error level that changes a decision, or those of ``levels=``
    (:func:`level_sweep`); an accuracy target needs only the levels up to the final exit's
    error rate."""
    p = _final_error(data)
    max_level = p if target is not None and target.kind == "accuracy" else 1.0
    weights = weights_for(method, data, settings["weights"])
    sweep = level_sweep(
        _scores(data, settings, weights),
        data.correct,
        data.costs,
        min_samples=settings["min_samples"],
        thresholds="per-exit" if settings["per_exit"] else "global",
        max_level=max_level,
        levels=settings["levels"],
        n_jobs=settings["n_jobs"],
        verbose=settings["verbose"],
    )

    def make(i: int) -> tuple[BeemPolicy, dict]:
        policy = _policy(data, method, settings, sweep.thresholds[i].copy(), weights)
        level = float(sweep.parameters[i])
        return policy, {"level": level, "final_error": p, "weights": policy.weights_.tolist()}

    return Candidates(method, "level", sweep, make)


def _thresholds_option(value: Any) -> tuple[str, bool]:
    v.check_choice(value, "thresholds", THRESHOLD_MODES)
    return "per_exit", value == "per-exit"


def _beem_spec(method: str, summary: str) -> MethodSpec:
    return MethodSpec(
        name=method,
        summary=summary,
        build=build_beem,
        options={
            "weights": (v.Weights(), None),
            "reset": (v.Choice(*RESET_MODES), "paper"),
            "per_exit": (v.Boolean(), True),
            "min_samples": (v.Interval("int", 1, None), 1),
            "levels": (LEVELS, None),
            "n_jobs": (v.NJobs(), None),
        },
        direct=(
            Direct("alpha", v.Thresholds()),
            Direct("level", v.Interval("real", 0.0, 1.0), needs_labels=True),
        ),
        targets=("budget", "accuracy", "exit-error"),
        default_target="exit-error",
        candidates=beem_candidates,
        special_targets={"exit-error": exit_error_level},
        needs_labels=lambda settings: method == "beem-a" and settings["weights"] is None,
        long_running=True,
        renamed={"thresholds": _thresholds_option},
        requires=lambda settings: ("predictions", "maxprob"),
        # Per-exit thresholds, or BEEM-A's accuracy weights, are chosen on the fitting samples.
        path_uses_data=lambda settings: (
            settings["per_exit"] or (method == "beem-a" and settings["weights"] is None)
        ),
    )


register(_beem_spec("beem-c", "BEEM, experts weighted by cost costs[k] / costs[-1]"))
register(_beem_spec("beem-a", "BEEM, experts weighted by their accuracy on the fitting data"))
