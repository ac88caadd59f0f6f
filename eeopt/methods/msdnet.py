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
from eeopt._accel import HAVE_NUMBA, jit
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
    on the data, and only a new count vector is realised: by a pass over the data (one
    partition per exit, :func:`eeopt.quantile.quantile_assignment`), or, once the bisection
    has narrowed q to a bracket whose counts differ by a small share of the samples, on the
    few samples whose exit the bracket leaves open (:class:`_Bracket`). The steps, and so q,
    are those of a bisection that realises every step on the data, bit for bit.
    """
    n_samples, n_exits = exit_scores.shape
    by_exit = _by_exit(exit_scores)  # each realisation then gathers from contiguous rows
    # Rounding of the K-term mean cost is far below this margin.
    margin = 8 * n_exits * np.finfo(np.float64).eps * float(np.max(np.abs(costs)))
    realised: dict[bytes, tuple[bool, np.ndarray | None]] = {}
    bracket: _Bracket | None = None  # the latest, if any
    saving: float | None = None  # what ties can save at most, once needed

    def counts_of(q: float) -> np.ndarray:
        return exit_counts(geometric_fractions(q, n_exits), n_samples)

    def realise(counts: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        nonlocal bracket
        if bracket is None or not bracket.holds(counts):
            low, high = _count_bounds(counts_of(np.exp(lo)), counts_of(np.exp(hi)), counts)
            if (high - low)[:-1].sum() <= n_samples * _BRACKET_SHARE:
                bracket = _Bracket(by_exit, low, high)
        if bracket is not None and bracket.holds(counts):
            result = bracket.realise(counts)
            if result is not None:
                return result
        return quantile_assignment(by_exit, counts, by_exit=True)

    def within(q: float, lo: float, hi: float) -> bool:
        nonlocal saving
        counts = counts_of(q)
        requested = engine.mean_cost_from_counts(counts, costs)
        if requested <= budget - margin:
            return True
        key = counts.tobytes()
        if key in realised:
            return realised[key][0]
        if n_samples >= _TIE_BOUND_MIN_SAMPLES:
            if saving is None:
                saving = _tie_saving(by_exit, costs)
            # Ties cannot bring the cost of these counts down to the budget.
            if requested - saving > budget + margin:
                realised[key] = (False, None)
        if key not in realised:
            thresholds, exits = realise(counts, lo, hi)
            realised[key] = (engine.mean_cost_from_counts(exits, costs) <= budget, thresholds)
        return realised[key][0]

    def answer(q: float):
        known = realised.get(counts_of(q).tobytes())
        if known is not None and known[1] is not None:
            return q, known[1]
        return q, realise(counts_of(q), lo, hi)[0]

    lo, hi = -_LOG_Q_RANGE, _LOG_Q_RANGE
    if within(np.inf, lo, hi):
        return answer(np.inf)
    if not within(np.exp(lo), lo, hi):
        return answer(0.0)
    # Invariant: lo is within budget, hi is not; stop when they are numerically adjacent.
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        if within(np.exp(mid), lo, hi):
            lo = mid
        else:
            hi = mid
    return answer(float(np.exp(lo)))


#: Below this many samples a pass over the data costs less than the tie bound.
_TIE_BOUND_MIN_SAMPLES = 1 << 18
#: Hash buckets per exit for the tie bound (uint16 counts: 2 MB).
_TIE_BUCKETS = 1 << 20
_TIE_SATURATED = np.iinfo(np.uint16).max
_NEGATIVE_ZERO = np.uint32(0x80000000)
#: Run the tie bound and the bracket's statistics compiled (numba installed).
_KERNELS = HAVE_NUMBA


def _tie_saving(by_exit: np.ndarray, costs: np.ndarray) -> float:
    """An upper bound on how much ties can lower the mean cost of any requested counts.

    At exit k the quantile rule takes the samples scoring at least the n_k-th largest, so it
    takes at most ``m_k - 1`` more than asked, ``m_k`` being how often a score repeats at k;
    each extra sample there ends up to ``costs[-1] - costs[k]`` cheaper (costs do not
    decrease). ``m_k`` is bounded by the fullest bucket of a hash of the scores' bits (equal
    scores share a bucket): one pass per exit, instead of a sort.
    """
    n_exits, n_samples = by_exit.shape
    repeats = np.empty(n_exits - 1)
    table = np.empty(_TIE_BUCKETS, dtype=np.uint16)
    for k in range(n_exits - 1):
        repeats[k] = _largest_bucket(_hash_bits(by_exit[k]), table)
    return float(np.sum((repeats - 1) * (costs[-1] - costs[:-1]))) / n_samples


def _hash_bits(scores: np.ndarray) -> np.ndarray:
    """The scores' bits as uint32, equal scores to equal words (a view for float32; the
    bucket hash reads -0.0 as 0.0)."""
    if scores.dtype == np.float32:
        return scores.view(np.uint32)
    wide = (scores.astype(np.float64) + 0.0).view(np.uint64)
    return (wide ^ (wide >> np.uint64(32))).astype(np.uint32)


def _largest_bucket(bits: np.ndarray, table: np.ndarray) -> int:
    """The count of the fullest bucket of ``(b ^ b >> 16) mod len(table)`` over ``bits``,
    or ``len(bits)`` if a bucket reaches the table's capacity."""
    if _KERNELS:
        return int(_largest_bucket_kernel(bits, table))
    bits = np.where(bits == _NEGATIVE_ZERO, np.uint32(0), bits)
    hashed = (bits ^ (bits >> np.uint32(16))) & np.uint32(table.shape[0] - 1)
    largest = int(np.bincount(hashed, minlength=table.shape[0]).max())
    return bits.shape[0] if largest >= _TIE_SATURATED else largest


@jit
def _largest_bucket_kernel(bits, table):
    mask = table.shape[0] - 1
    table[:] = 0
    largest = 0
    for i in range(bits.shape[0]):
        word = bits[i] if bits[i] != _NEGATIVE_ZERO else 0
        h = (word ^ (word >> 16)) & mask
        count = table[h] + 1
        if count >= _TIE_SATURATED:
            return bits.shape[0]
        table[h] = count
        largest = max(largest, count)
    return largest


#: A bracket is built once its counts differ by at most this share of the samples (summed
#: over the early exits): building costs two passes over the data, and the samples it leaves
#: open are then a few times that share.
_BRACKET_SHARE = 1 / 64


def _count_bounds(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-exit bounds on the counts of the q between two bisection ends (``a``, ``b``) and
    the step's own (``c``), with some room: pi_k is monotone in q but for the one exit
    whose mode lies in between, and the counts are floored."""
    low, high = np.minimum(np.minimum(a, b), c), np.maximum(np.maximum(a, b), c)
    room = 1 + (high - low) // 4
    return np.maximum(low - room, 0), high + room


def _lowest_decided(by_exit: np.ndarray, exits: np.ndarray, decided: np.ndarray) -> np.ndarray:
    """Per exit, the lowest score there of the decided samples leaving there (inf if none)."""
    lowest = np.full(by_exit.shape[0], np.inf)
    if _KERNELS:
        _lowest_decided_kernel(by_exit, exits, decided, lowest)
        return lowest
    samples = np.flatnonzero(decided)
    order = np.argsort(exits[samples], kind="stable")  # a radix sort of small integers
    samples = samples[order]
    where = exits[samples].astype(np.intp)
    if samples.size:
        starts = np.flatnonzero(np.r_[True, where[1:] != where[:-1]])
        lowest[where[starts]] = np.minimum.reduceat(by_exit[where, samples], starts)
    return lowest


@jit
def _lowest_decided_kernel(by_exit, exits, decided, lowest):
    for i in range(exits.shape[0]):
        if decided[i]:
            value = by_exit[exits[i], i]
            if value < lowest[exits[i]]:
                lowest[exits[i]] = value


class _Bracket:
    """Realisations of every count vector between two, on the samples whose exit they leave
    open.

    More samples asked for at any early exit only moves samples to earlier exits: the samples
    out by exit k are nested in each count (at exit k, fewer samples remain, so the n_k-th
    largest score among them is no larger). So between per-exit bounds ``low <= counts <=
    high``, each sample's exit lies between its exit under ``high`` (``first``) and under
    ``low`` (``last``): two passes over the data. Where they agree the exit is decided; the
    others are *open* (a few times the counts' spread). A count vector between the bounds is
    then realised exit by exit on the open samples alone: at exit k the threshold is the
    ``(n_k - d_k)``-th largest score of the open samples still in that may leave at k, ``d_k``
    being the decided samples that leave there (or the lowest of those, if lower). Each
    threshold is checked (fewer than n_k samples still in score above it; every sample with
    ``first > k`` scores below it), so the result is exactly
    :func:`eeopt.quantile.quantile_assignment`'s; where a check fails (``None``) the caller
    realises the counts on the data.

    Memory: two exits per sample (int8 below 128 exits) and the open samples' scores.
    """

    def __init__(self, by_exit: np.ndarray, low: np.ndarray, high: np.ndarray) -> None:
        n_exits, n_samples = by_exit.shape
        self.low, self.high = low, high
        small = np.int8 if n_exits < 128 else np.int16
        first, last = np.empty(n_samples, small), np.empty(n_samples, small)
        #: per exit, the largest score of the samples with ``first > k``
        self.stay_max = np.empty(n_exits)
        quantile_assignment(by_exit, high, by_exit=True, exit_of=first, stay_max=self.stay_max)
        quantile_assignment(by_exit, low, by_exit=True, exit_of=last)
        self.n_samples = n_samples
        self.nested = bool(np.all(first <= last))  # else the bounds are not ordered
        decided = first == last
        self.n_decided = np.bincount(first[decided], minlength=n_exits)
        #: per exit, the lowest score of the samples decided to leave there
        self.decided_min = _lowest_decided(by_exit, first, decided)
        open_ = np.flatnonzero(~decided)
        self.open_first = first[open_]
        self.open_scores = by_exit[:, open_]

    def holds(self, counts: np.ndarray) -> bool:
        """Whether ``counts`` lies within the bounds at every early exit."""
        return self.nested and bool(
            np.all(self.low[:-1] <= counts[:-1]) and np.all(counts[:-1] <= self.high[:-1])
        )

    def realise(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``quantile_assignment(scores, counts)`` from the open samples, or None where a
        check fails (counts outside the bounds, or ties at a bound). The checks alone make
        the answer exact, whatever the counts; the bounds make them pass."""
        n_exits = counts.shape[0]
        thresholds = np.full(n_exits, np.inf)
        thresholds[-1] = -np.inf
        realised = np.zeros(n_exits, dtype=np.int64)
        still_in = np.ones(self.open_first.shape[0], dtype=bool)
        pool = self.n_samples
        for k in range(n_exits - 1):
            if pool == 0:
                break
            decided = int(self.n_decided[k])
            if counts[k] == 0:
                if decided:
                    return None
                continue
            wanted = int(counts[k]) - decided
            if wanted < 0:  # more decided than asked for: ties at a bound
                return None
            may_leave = np.flatnonzero(still_in & (self.open_first <= k))
            scores = self.open_scores[k, may_leave]
            if may_leave.size < wanted:
                return None
            tau = self.decided_min[k]
            if wanted > 0:
                tau = min(tau, np.partition(scores, scores.size - wanted)[scores.size - wanted])
            # tau is the counts[k]-th largest score still in if fewer than counts[k] lie
            # above it: the decided ones above it are at most decided (- 1 if tau is theirs),
            # the open ones above it at most wanted, the samples with first > k none.
            above = wanted if tau < self.decided_min[k] else np.count_nonzero(scores > tau)
            if above > wanted or not self.stay_max[k] < tau:
                return None
            leaving = may_leave[scores >= tau]
            still_in[leaving] = False
            thresholds[k] = tau
            realised[k] = decided + leaving.size
            pool -= int(realised[k])
        realised[-1] = pool
        return thresholds, realised


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
