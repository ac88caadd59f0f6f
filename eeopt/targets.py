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

The records are found chunk by chunk over the samples (a few MB at a time: no ``(N, K)``
temporary), and each becomes one *move*: the sample goes from exit ``old`` to exit ``new``
when ``tau`` reaches the record's value. For float32 scores (and integer scores below 2^24)
a move is one uint64 key, the complemented order-preserving bits of its value above its
payload ``(new, old, final exit right, change in correctness)``, and one ``np.sort`` of the
keys replaces an argsort (measured 4x faster on AVX-512 machines, and without an index
array); float64 scores are sorted with a stable argsort of their values.

With numba installed (``pip install eeopt[fast]``), finding the records and accumulating the
sorted moves are two compiled kernels, one pass each, instead of some thirty vectorised
passes; the results are the same bit for bit (the tests run both).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eeopt import engine
from eeopt._accel import HAVE_NUMBA, jit
from eeopt.exceptions import BudgetUnreachableError

#: Score elements per chunk of samples while finding records (a few MB, cache-resident).
_CHUNK_ELEMENTS = 1 << 19
#: Moves per block when accumulating them (bounds the float64 temporaries).
_BLOCK_MOVES = 1 << 22
#: The packed payload holds an exit index in 8 bits.
_MAX_PACKED_EXITS = 256
#: A move's payload ``(new * n_exits + old) << 3 | flags`` is a uint32.
_MAX_SWEEP_EXITS = 1 << 14
#: Integers up to 2^24 are exact in float32.
_FLOAT32_EXACT = 1 << 24
_LITTLE_ENDIAN = sys.byteorder == "little"
#: Sweep float32 scores with the compiled kernels (numba installed) rather than numpy passes.
_KERNELS = HAVE_NUMBA


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
    """The moves of samples between exits along a sweep, from which exit counts are rebuilt.

    Attributes
    ----------
    codes : ndarray of shape (n_moves,), uint16 (uint32 above 256 exits)
        ``new * n_exits + old`` for a sample moving from exit ``old`` to exit ``new``, in
        sweep order (a strided view of the sorted keys for packed scores).
    ends : ndarray of shape (n_candidates,), int
        Moves applied by each candidate (candidate i applies ``codes[:ends[i]]``).
    start : ndarray of shape (n_exits,), int64
        Exit counts of the first candidate.
    flags : ndarray of shape (n_moves,), uint8, or None
        Per move, ``final_right << 2 | (change + 1)``: whether the moving sample's last exit
        is right, and its change in correctness (-1, 0 or 1), where the sweep keeps them.
    """

    codes: np.ndarray
    ends: np.ndarray
    start: np.ndarray
    flags: np.ndarray | None = field(default=None, kw_only=True)

    def counts(self, indices: np.ndarray) -> np.ndarray:
        """Exit counts ``(len(indices), n_exits)`` of the given candidates, exact integers.

        The candidates asked for (sorted) cut the moves into segments; per block of them, one
        ``bincount`` over ``(segment, move code)`` counts each segment's moves between every
        pair of exits when the block is small (a handful of candidates: one pass; one
        candidate: in pieces of the moves), or two over
        ``(segment, exit)`` (the moves into and out of each exit) when it is large; a
        cumulative sum over the segments gives the counts: ``O(E + M K)`` in vectorised
        passes, with temporaries of one block.
        """
        n_exits = self.start.shape[0]
        pairs = n_exits * n_exits
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((indices.shape[0], n_exits), dtype=np.int64)
        order = np.argsort(indices, kind="stable")
        current = self.start.astype(np.int64)
        done = 0
        for lo in range(0, order.shape[0], _COUNT_BLOCK):
            block = order[lo : lo + _COUNT_BLOCK]
            cutoffs = self.ends[indices[block]].astype(np.int64)
            codes = self.codes[done : int(cutoffs[-1])]
            if block.shape[0] == 1 and _KERNELS:  # one segment, one compiled pass
                moved = np.zeros((1, n_exits), dtype=np.int64)
                _count_moves(codes, n_exits, moved[0])
            elif block.shape[0] == 1:  # one segment: in pieces, no full-length intp temporary
                by_pair = np.zeros(pairs, dtype=np.int64)
                for at in range(0, codes.shape[0], _BLOCK_MOVES):
                    by_pair += np.bincount(codes[at : at + _BLOCK_MOVES], minlength=pairs)
                by_pair = by_pair.reshape(n_exits, n_exits)  # [new, old]
                moved = (by_pair.sum(axis=1) - by_pair.sum(axis=0))[None]
            else:
                # The segment of each move: which of the block's candidates first applies it.
                segment = np.repeat(np.arange(block.shape[0]), np.diff(cutoffs, prepend=done))
                if block.shape[0] * pairs <= _PAIR_BINS:
                    by_pair = np.bincount(segment * pairs + codes, minlength=block.shape[0] * pairs)
                    by_pair = by_pair.reshape(block.shape[0], n_exits, n_exits)  # [seg, new, old]
                    moved = by_pair.sum(axis=2) - by_pair.sum(axis=1)
                else:
                    size = block.shape[0] * n_exits
                    segment *= n_exits
                    new = codes // n_exits
                    moved = np.bincount(segment + new, minlength=size)
                    moved -= np.bincount(segment + (codes - new * n_exits), minlength=size)
                    moved = moved.reshape(-1, n_exits)
            running = np.cumsum(moved, axis=0)
            out[block] = current + running
            current = current + running[-1]
            done = int(cutoffs[-1])
        return out


#: Candidates per block when counts are rebuilt from the moves (bounds the temporaries).
_COUNT_BLOCK = 1 << 14
#: Largest ``(segment, move code)`` table counted in one pass (above it, two by exit).
_PAIR_BINS = 1 << 16


@dataclass(frozen=True)
class ExitCountTable:
    """Exit counts kept for every candidate, ``(n_candidates, n_exits)``, as a level sweep
    records them."""

    table: np.ndarray

    def counts(self, indices: np.ndarray) -> np.ndarray:
        return self.table[indices].astype(np.int64)


@dataclass(frozen=True)
class Sweep:
    """Every distinct outcome of a one-parameter family of policies on the fitting data.

    Attributes
    ----------
    parameters : ndarray of shape (n_candidates,)
        The parameter (a threshold) of each candidate, from no early exit to the most exits.
    mean_costs : ndarray of shape (n_candidates,)
        Mean cost per sample. A sweep may accumulate it as a running sum, equal to the
        engine's figure (:func:`eeopt.engine.mean_cost_from_counts`) to rounding;
        :meth:`exit_counts` gives the exact counts that figure is computed from.
    n_correct : ndarray of shape (n_candidates,), int64
    n_samples : int
    moves : ExitMoves or ExitCountTable or None
        How the exit counts change along the sweep, or the counts themselves
        (:meth:`exit_counts`), where the sweep keeps them.
    costs : ndarray of shape (n_exits,) or None
        The cumulative costs the sweep was computed with (:meth:`exact_mean_costs`).
    lost : ndarray of shape (n_candidates,), int64, or None
        :meth:`n_lost` of every candidate, where the sweep counted it itself (BEEM's level
        sweeps and their replays on other samples); a threshold sweep counts it from its moves.
    """

    parameters: np.ndarray
    mean_costs: np.ndarray
    n_correct: np.ndarray
    n_samples: int
    moves: ExitMoves | ExitCountTable | None = field(
        default=None, kw_only=True, repr=False, compare=False
    )
    costs: np.ndarray | None = field(default=None, kw_only=True, repr=False, compare=False)
    lost: np.ndarray | None = field(default=None, kw_only=True, repr=False, compare=False)

    def __len__(self) -> int:
        return self.parameters.shape[0]

    @property
    def accuracies(self) -> np.ndarray:
        return self.n_correct / self.n_samples

    @property
    def exact_costs(self) -> bool:
        """True when ``mean_costs`` are the engine's figures already (counts kept per
        candidate), not running sums."""
        return isinstance(self.moves, ExitCountTable)

    def exact_mean_costs(self, indices: Any) -> np.ndarray:
        """The engine's mean cost of the candidates ``indices`` (``policy.evaluate``'s figure),
        from their exact exit counts."""
        if self.exact_costs:  # the sweep kept the counts: its mean costs are these already
            return self.mean_costs[np.asarray(indices, dtype=np.int64)]
        return engine.mean_cost_from_counts(self.exit_counts(indices), self.costs)

    def mean_costs_near(self, indices: Any, level: float) -> np.ndarray:
        """The candidates' mean costs, exact (``policy.evaluate``'s figure) for those within
        rounding of ``level`` and running sums elsewhere: each compares with ``level`` as its
        exact cost does, for ``O(len(indices))`` and no ``(len(indices), n_exits)`` table."""
        indices = np.asarray(indices, dtype=np.int64)
        costs = self.mean_costs[indices]
        if not self.exact_costs:
            close = np.abs(costs - level) <= _COST_SLACK * max(abs(level), 1.0)
            costs[close] = self.exact_mean_costs(indices[close])
        return costs

    def cheapest(self, indices: Any) -> np.ndarray:
        """The candidates among ``indices`` whose exact mean cost (``policy.evaluate``'s
        figure) is the smallest, in the order given.

        Running-sum costs narrow the field first; exact counts are rebuilt only for the
        candidates within rounding of the smallest, so that this costs O(len(indices)) and
        no ``(len(indices), n_exits)`` table.
        """
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size == 0:
            return indices
        close = indices[near_cheapest(self.mean_costs[indices])]
        if close.size == 1:  # no exact count needed (mean_costs_near would rebuild it)
            return close
        exact = self.exact_mean_costs(close)
        return close[exact == exact.min()]

    def deciding_alike(self, thresholds: Any) -> np.ndarray:
        """For a sweep of one shared threshold, the candidate that decides every sample of
        this sweep as each given threshold does: the last candidate at least as high (no
        record of these samples lies in between). ``(len(thresholds),)`` int64."""
        return _last_at_least(self.parameters, np.asarray(thresholds, dtype=np.float64))

    def n_lost(self, stop: int | None = None) -> np.ndarray:
        """Samples that the last exit gets right and each candidate's exit gets wrong,
        ``(n_candidates,)`` int64 (the first ``stop`` candidates if given): the sum of the
        accuracy gap's positive part ``1[exit wrong and final right]``, counted along the
        same sorted moves as ``n_correct`` (no second sweep).

        Raises
        ------
        ValueError
            The sweep neither counted it nor keeps its move flags (:attr:`counts_lost`).
        """
        if not self.counts_lost:
            raise ValueError(
                "n_lost needs the counts of a sweep that keeps them (threshold_sweep's move "
                "flags, BEEM's level sweep, or lost= given)."
            )
        n = self.parameters.shape[0] if stop is None else min(stop, self.parameters.shape[0])
        if self.lost is not None:
            return self.lost[:n].astype(np.int64)
        out = np.empty(n, dtype=np.int64)
        out[:1] = 0  # the first candidate: every sample at the last exit
        # A move changes the count by -change when the sample's last exit is right.
        out[1:] = _cumulative(self.moves.flags, self.moves.ends[1:n], _LOST_CHANGE, np.int64(0))
        return out

    @property
    def counts_lost(self) -> bool:
        """True when :meth:`n_lost` is available (counted, or a threshold sweep's flags)."""
        if self.lost is not None:
            return True
        return isinstance(self.moves, ExitMoves) and self.moves.flags is not None

    def head(self, n: int) -> Sweep:
        """The first ``n`` candidates (the exit moves are kept: their indices do not change)."""
        return Sweep(
            self.parameters[:n],
            self.mean_costs[:n],
            self.n_correct[:n],
            self.n_samples,
            moves=self.moves,
            costs=self.costs,
            lost=None if self.lost is None else self.lost[:n],
        )

    def with_parameters(self, parameters: np.ndarray) -> Sweep:
        """The same candidates named by other parameters (patience counts for thresholds)."""
        return Sweep(
            parameters,
            self.mean_costs,
            self.n_correct,
            self.n_samples,
            moves=self.moves,
            costs=self.costs,
            lost=self.lost,
        )

    def exit_counts(self, indices) -> np.ndarray:
        """Samples leaving at each exit under the given candidates, exact integers.

        Parameters
        ----------
        indices : array-like of int, shape (n_indices,)
            Candidate indices into this sweep.

        Returns
        -------
        counts : ndarray of shape (n_indices, n_exits), int64
            Each row sums to ``n_samples``; ``engine.mean_cost_from_counts(counts, costs)``
            is the engine's mean cost of those candidates, bit for bit.
        """
        if self.moves is None:
            raise ValueError(
                "this sweep does not keep its exit moves; build it with threshold_sweep or "
                "level_sweep to call exit_counts."
            )
        indices = np.asarray(indices).reshape(-1) if np.ndim(indices) == 0 else np.asarray(indices)
        if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
            raise TypeError(f"indices must be a 1-d array of integers, got {indices!r}.")
        n_candidates = self.parameters.shape[0]
        if indices.size and (indices.min() < -n_candidates or indices.max() >= n_candidates):
            raise ValueError(f"indices must be in [0, {n_candidates}), got {indices!r}.")
        return self.moves.counts(np.where(indices < 0, indices + n_candidates, indices))


def _order_bits(values: np.ndarray) -> np.ndarray:
    """uint32 keys whose unsigned order is the order of the float32 values (-0.0 as +0.0)."""
    bits = (values + np.float32(0.0)).view(np.uint32)  # + 0.0 turns -0.0 into +0.0
    # Negative floats: flip every bit; others: set the sign bit.
    flip = bits >> np.uint32(31)
    np.negative(flip, out=flip)
    flip |= np.uint32(0x80000000)
    bits ^= flip
    return bits


def _float_from_bits(keys: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_order_bits`, as float64 (``keys`` is overwritten)."""
    bits = keys
    flip = (bits >> np.uint32(31)) ^ np.uint32(1)  # 1 for the keys of negative floats
    np.negative(flip, out=flip)
    flip |= np.uint32(0x80000000)
    bits ^= flip
    return bits.view(np.float32).astype(np.float64)


def _moves(values: np.ndarray, correct: np.ndarray, shift: int):
    """Yield the moves of a chunk of samples exit by exit: ``(value, payload)`` arrays.

    ``values`` and ``correct`` are the chunk transposed, ``(n_exits, n_rows)``, so that each
    exit's column is contiguous. A sample's records are the exits where its running maximum
    score rises. When tau falls to a record's value the sample moves from the exit of its
    next record (or the last exit), ``old``, to the record's exit, ``new``; the payload
    packs that as ``(new * n_exits + old) << shift | flags``, the flags being
    ``final_right << 2 | (change + 1)``: whether the sample's last exit is right, and the
    change in correctness (-1, 0 or 1). ``values`` may be any ordered representation of the
    scores (floats, or their order-preserving bits).
    """
    n_exits = values.shape[0]
    run = values[0].copy()  # the running max, i.e. the value of the latest record
    # What the payload knows at the latest record: (its exit * n_exits) << shift, the final
    # bit and its correctness + 1; adding k << shift and subtracting the correctness at k
    # completes it.
    final_bit = correct[-1].astype(np.uint32) << np.uint32(2)
    latest = final_bit + correct[0] + np.uint32(1)
    for k in range(1, n_exits - 1):
        column = values[k]
        found = np.flatnonzero(column > run)
        right = correct[k][found]
        yield run[found], latest[found] + np.uint32(k << shift) - right
        run[found] = column[found]
        latest[found] = np.uint32((k * n_exits) << shift) + final_bit[found] + right + np.uint32(1)
    # Every sample's latest record moves it from the last exit.
    yield run, latest + np.uint32((n_exits - 1) << shift) - correct[-1]


def _transposed(array: np.ndarray, chunk: slice | np.ndarray) -> np.ndarray:
    """``array[chunk].T`` (a slice or row indices) as a contiguous copy, made 1024 rows at a
    time (twice as fast as a plain transposed copy)."""
    rows = array[chunk]
    out = np.empty(rows.shape[::-1], dtype=rows.dtype)
    for lo in range(0, rows.shape[0], 1024):
        out[:, lo : lo + 1024] = rows[lo : lo + 1024].T
    return out


def _packable(scores: np.ndarray) -> np.ndarray | None:
    """The scores as float32 if that is exact and the key payload fits, else None."""
    if scores.shape[1] > _MAX_PACKED_EXITS:
        return None
    if scores.dtype == np.float32:
        return scores
    if np.issubdtype(scores.dtype, np.integer) and scores.size:
        if -_FLOAT32_EXACT <= scores.min() and scores.max() <= _FLOAT32_EXACT:
            return scores.astype(np.float32)
    return None


def threshold_sweep(
    scores: np.ndarray,
    correct: np.ndarray,
    costs: np.ndarray,
    rows: np.ndarray | None = None,
) -> Sweep:
    """Accuracy and mean cost of every global threshold that changes an exit decision.

    Parameters
    ----------
    scores : ndarray of shape (n_samples, n_exits)
        float32 and small integers take the packed-key sort; other dtypes an argsort.
    correct : ndarray of shape (n_samples, n_exits), bool
    costs : ndarray of shape (n_exits,)
    rows : ndarray of shape (n_rows,), int, optional
        Sweep only these samples (increasing indices), read block by block from ``scores``
        and ``correct`` instead of a copy of them: the same sweep as
        ``threshold_sweep(scores[rows], correct[rows], costs)``.

    Returns
    -------
    Sweep
        ``parameters[0] = +inf`` (everyone at the last exit); then each distinct record value
        in decreasing order: the threshold equal to that value and the outcome it gives.
        ``mean_costs`` are running sums (equal to the engine's figure to rounding);
        ``exit_counts`` gives the exact counts. Time ``O(NK + E log E)`` for ``E`` moves
        (one per sample and rise of its running maximum). The result takes 28 bytes per
        candidate and, for packed scores, 8 per move (the sorted keys, whose payload
        ``exit_counts`` reads through views; 3 per move otherwise); the work needs a few MB
        more (numba installed) or about 12 bytes per move (numpy passes).
    """
    n_exits = scores.shape[1]
    n_samples = scores.shape[0] if rows is None else rows.shape[0]
    if n_exits > _MAX_SWEEP_EXITS:
        raise ValueError(
            f"threshold_sweep packs a move between two exits in 29 bits: at most "
            f"{_MAX_SWEEP_EXITS} exits, got {n_exits}."
        )
    final = correct[:, -1] if rows is None else correct[rows, -1]
    base_correct = int(np.count_nonzero(final))
    del final
    start = np.zeros(n_exits, dtype=np.int64)
    start[-1] = n_samples
    if n_exits == 1:
        moves = ExitMoves(
            np.empty(0, np.uint16), np.zeros(1, np.int64), start, flags=np.empty(0, np.uint8)
        )
        return Sweep(
            np.array([np.inf]),
            np.array([costs[0]]),
            np.array([base_correct]),
            n_samples,
            moves=moves,
            costs=costs,
        )
    packed = _packable(scores)
    per_chunk = max(1, _CHUNK_ELEMENTS // n_exits)
    chunks = [slice(lo, min(lo + per_chunk, n_samples)) for lo in range(0, n_samples, per_chunk)]
    if rows is not None:  # the same blocks of the samples swept, gathered one at a time
        chunks = [rows[chunk] for chunk in chunks]
    step = costs[:, None].astype(np.float64) - costs[None, :]  # step[new, old]
    total = n_samples * float(costs[-1])
    if packed is not None:
        keys = _sorted_keys(packed, correct, chunks, n_samples)
        codes, flags = _payload_views(keys)  # strided views: the sweep keeps the keys
    if packed is not None and _KERNELS:
        # The outputs are numpy's (and so seen by tracemalloc), filled by the kernel.
        n_candidates = _count_runs(keys)
        parameters, mean_costs = np.empty(n_candidates), np.empty(n_candidates)
        n_correct = np.empty(n_candidates, dtype=np.int64)
        move_ends = np.empty(n_candidates, dtype=_ends_dtype(keys.shape[0]))
        _sweep_runs(
            keys, step.ravel(), total, base_correct, parameters, n_correct, mean_costs, move_ends
        )
        mean_costs /= n_samples
        mean_costs[0] = costs[-1]
    else:
        if packed is not None:
            boundary, parameters_of = _packed_runs(keys)
        else:
            boundary, parameters_of, payload = _sorted_generic(scores, correct, chunks, n_samples)
            codes = (payload >> np.uint32(3)).astype(np.uint16 if n_exits <= 256 else np.uint32)
            payload &= np.uint32(7)
            flags = payload.astype(np.uint8)
            del payload
        # Ties: a threshold equal to a value applies every move with that value at once.
        ends = np.flatnonzero(boundary)
        del boundary
        n_candidates = ends.shape[0] + 1
        parameters = np.empty(n_candidates)
        parameters[0] = np.inf
        parameters[1:] = parameters_of(ends)
        del parameters_of
        move_ends = np.empty(n_candidates, dtype=_ends_dtype(codes.shape[0]))
        move_ends[0] = 0
        move_ends[1:] = ends + 1
        del ends
        n_correct = np.empty(n_candidates, dtype=np.int64)
        n_correct[0] = base_correct
        n_correct[1:] = _cumulative(flags, move_ends[1:], _CHANGE, np.int64(base_correct))
        mean_costs = np.empty(n_candidates)
        mean_costs[0] = costs[-1]
        mean_costs[1:] = _cumulative(codes, move_ends[1:], step.ravel(), np.float64(total))
        mean_costs[1:] /= n_samples
    return Sweep(
        parameters=parameters,
        mean_costs=mean_costs,
        n_correct=n_correct,
        n_samples=n_samples,
        moves=ExitMoves(codes, move_ends, start, flags=flags),
        costs=costs,
    )


def _ends_dtype(n_moves: int):
    """The candidates' move ends in 4 bytes where the moves are fewer than 2^31."""
    return np.int32 if n_moves < 2**31 else np.int64


def _cumulative(values, stops, lookup, initial) -> np.ndarray:
    """``out[r]``: ``initial`` plus ``lookup[values[i]]`` summed over ``i < stops[r]``
    (``stops`` non-decreasing, e.g. the candidates' move ends), with the dtype of ``initial``.
    The additions are sequential, so the result depends neither on the block size nor on
    the implementation: one compiled pass with numba, else blocks of numpy ``cumsum`` up to
    the last stop only."""
    dtype = type(initial)
    out = np.empty(stops.shape[0], dtype=dtype)
    lookup = lookup.astype(dtype, copy=False)
    if _KERNELS:
        _running_sums(values, stops, lookup, initial, out)
        return out
    at = stops.dtype.type  # searchsorted with a key of another dtype would copy the stops
    first = int(np.searchsorted(stops, at(0), side="right"))
    out[:first] = initial  # stops at 0 sum nothing
    carry, done = initial, 0
    while first < stops.shape[0]:
        stop = min(done + _BLOCK_MOVES, int(stops[-1]))
        running = lookup[values[done:stop]]
        running[0] += carry  # then the running sum adds in sequence
        np.cumsum(running, out=running)
        last = int(np.searchsorted(stops, at(stop), side="right"))
        out[first:last] = running[stops[first:last] - 1 - done]  # the sum over values[:s]
        carry, done, first = running[-1], stop, last
    return out


def _sorted_keys(scores, correct, chunks, n_samples) -> np.ndarray:
    """The moves as uint64 keys, ``complemented order bits of the value << 32 | payload``
    with the payload ``(new * n_exits + old) << 16 | flags`` (:func:`_moves`), sorted
    ascending, i.e. by decreasing value (the complement saves inverting the keys around the
    sort). ``chunks``: slices or index arrays of the rows, ``n_samples`` rows in all."""
    keys = _Buffer(np.uint64)
    n_exits = scores.shape[1]
    # The kernel reads the rows where they lie (a split's rows too: no gathered copy) when
    # the arrays are C-ordered; otherwise each chunk is copied to C order first.
    in_place = scores.flags.c_contiguous and correct.flags.c_contiguous
    all_bits = np.asarray(scores).view(np.uint32) if in_place else None
    for chunk in chunks:
        if _KERNELS:
            rows = np.arange(chunk.start, chunk.stop) if isinstance(chunk, slice) else chunk
            free = keys.reserve(rows.shape[0] * (n_exits - 1))
            if in_place:
                keys.size += _packed_move_keys(all_bits, correct, rows, free)
            else:
                block = np.ascontiguousarray(scores[chunk]).view(np.uint32)
                block_correct = np.ascontiguousarray(correct[chunk])
                every = np.arange(block.shape[0])
                keys.size += _packed_move_keys(block, block_correct, every, free)
        else:
            bits = _order_bits(_transposed(scores, chunk))
            for value, payload in _moves(bits, _transposed(correct, chunk), _PACKED_SHIFT):
                key = keys.extend(value.shape[0])
                np.left_shift(np.invert(value, out=value), 32, out=key, dtype=np.uint64)
                key |= payload
        if chunk is chunks[0]:
            keys.expect(_estimate(keys.size, chunk, n_samples))
    keys = keys.array()
    keys.sort()
    return keys


def _payload_views(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The move codes (uint16) and flags (uint8) of the sorted keys, as strided views."""
    words = keys.view(np.uint16).reshape(-1, 4)
    octets = keys.view(np.uint8).reshape(-1, 8)
    return (words[:, 1], octets[:, 0]) if _LITTLE_ENDIAN else (words[:, 2], octets[:, 7])


def _packed_runs(keys):
    """From the sorted keys: where each run of equal values ends (bool), and a function
    giving the values at given positions (float64)."""
    # The high half as a strided view, no copy: the complemented order bits.
    halves = keys.view(np.uint32).reshape(-1, 2)
    high = halves[:, 1] if _LITTLE_ENDIAN else halves[:, 0]
    del keys, halves
    boundary = np.empty(high.shape[0], dtype=bool)
    np.not_equal(high[1:], high[:-1], out=boundary[:-1])
    boundary[-1] = True

    def parameters_of(ends):
        return _float_from_bits(np.invert(high[ends]))

    return boundary, parameters_of


# -- compiled kernels (numba, :mod:`eeopt._accel`) for the packed sweep ----------------------
# The same keys and runs as the numpy passes above, each in one pass over the data: finding
# the records row by row and accumulating the sorted moves. Without numba the numpy passes
# run (the kernels as Python would be far slower); the tests run both.

_SIGN = np.uint32(0x80000000)
_LOW_BITS = np.uint64(0xFFFFFFFF)
#: The packed keys' payload: ``(new * n_exits + old) << 16 | flags`` (code and flags then
#: sit in their own 16 and 8 bits of the key, readable as views).
_PACKED_SHIFT = 16


@jit
def _complement_order(bits):
    """The complement of :func:`_order_bits` of one float32's bits (-0.0 as +0.0): smaller
    for larger values."""
    if bits == _SIGN:  # -0.0
        return np.uint32(0x7FFFFFFF)
    if bits >= _SIGN:  # negative: the order bits are ~bits, their complement the bits
        return np.uint32(bits)
    return np.uint32(~bits & np.uint32(0x7FFFFFFF))


@jit
def _packed_move_keys(bits, correct, rows, out):
    """Write the keys of :func:`_sorted_keys` for the ``rows`` of float32 score bits
    ``(n_samples, n_exits)`` uint32 and ``correct`` (bool) into ``out``, in any order;
    return how many (at most ``len(rows) * (n_exits - 1)``)."""
    n_exits = bits.shape[1]
    last = n_exits - 1
    shift, code_shift = np.uint64(32), np.uint64(_PACKED_SHIFT)
    written = 0
    for i in rows:
        final_bit = np.uint64(4) if correct[i, last] else np.uint64(0)
        run = _complement_order(bits[i, 0])  # the latest record, complemented
        run_exit = np.uint64(0)
        run_right = np.uint64(1) if correct[i, 0] else np.uint64(0)
        for k in range(1, last):
            value = _complement_order(bits[i, k])
            if value < run:  # a new record: the previous one moves the sample from k
                right = np.uint64(1) if correct[i, k] else np.uint64(0)
                code = run_exit * np.uint64(n_exits) + np.uint64(k)
                flags = final_bit | (run_right + np.uint64(1) - right)
                out[written] = (np.uint64(run) << shift) | (code << code_shift) | flags
                written += 1
                run, run_exit, run_right = value, np.uint64(k), right
        right = final_bit >> np.uint64(2)
        code = run_exit * np.uint64(n_exits) + np.uint64(last)
        flags = final_bit | (run_right + np.uint64(1) - right)
        out[written] = (np.uint64(run) << shift) | (code << code_shift) | flags
        written += 1
    return written


@jit
def _running_sums(values, stops, lookup, initial, out):
    """:func:`_cumulative` in one pass: ``out[r]`` is ``initial`` plus ``lookup[values[i]]``
    summed over ``i < stops[r]``, added in sequence."""
    total, at = initial, 0
    for r in range(stops.shape[0]):
        while at < stops[r]:
            total += lookup[values[at]]
            at += 1
        out[r] = total


@jit
def _count_moves(codes, n_exits, moved):
    """Add to ``moved[k]`` the moves into exit k and subtract those out of it."""
    for i in range(codes.shape[0]):
        code = np.int64(codes[i])
        moved[code // n_exits] += 1
        moved[code % n_exits] -= 1


@jit
def _count_runs(keys):
    """Runs of equal values in the sorted keys, plus one (the candidates of the sweep)."""
    shift = np.uint64(32)
    n_moves = keys.shape[0]
    n_runs = 1
    for i in range(n_moves):
        if i == n_moves - 1 or (keys[i] >> shift) != (keys[i + 1] >> shift):
            n_runs += 1
    return n_runs


@jit
def _sweep_runs(keys, step, total, base_correct, parameters, n_correct, costs, ends):
    """Fill the candidates of the sorted keys (+inf first): their thresholds, correct
    counts, running sums of ``step[code]`` from ``total`` (the numpy path's additions, in the
    same order) and move ends."""
    n_moves = keys.shape[0]
    shift = np.uint64(32)
    word = np.empty(1, np.uint32)
    as_float = word.view(np.float32)  # reads a word's bits as a float32
    parameters[0], n_correct[0], costs[0], ends[0] = np.inf, base_correct, total, 0
    correct, cost, run = base_correct, total, 1
    for i in range(n_moves):
        key = keys[i]
        correct += np.int64(key & np.uint64(3)) - 1
        cost += step[(key >> np.uint64(_PACKED_SHIFT)) & np.uint64(0xFFFF)]
        high = key >> shift
        if i == n_moves - 1 or high != (keys[i + 1] >> shift):
            order = np.uint32(~high & _LOW_BITS)  # the order bits of the value
            word[0] = order ^ _SIGN if order >= _SIGN else ~order
            parameters[run] = as_float[0]
            n_correct[run], costs[run], ends[run] = correct, cost, i + 1
            run += 1


def first_lost_values(
    scores: np.ndarray,
    lost: np.ndarray,
    among: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Per sample, the highest global threshold at which its exit loses it.

    Lowering a shared threshold moves a sample to an earlier exit exactly at its records
    (rises of its running maximum score over the early exits), so the exits it visits as the
    threshold falls from +inf are the last one, then its records' from the highest down. The
    first lost value is +inf if ``lost`` at the last exit, else the highest record whose exit
    is ``lost``, else -inf: the sample is lost at some threshold at or above ``t`` exactly
    when its first lost value is ``>= t`` (what conformal risk control's running maximum of
    a 0/1 loss counts).

    With ``among`` (thresholds in decreasing order: the settings tested, on samples other
    than those that made them), the highest of those at which the sample is lost, or -inf:
    a record's exit takes the thresholds above the record before it up to its own value,
    the last exit those above every record.

    Parameters
    ----------
    scores : ndarray of shape (n_samples, n_exits)
    lost : ndarray of shape (n_samples, n_exits), bool
    among : ndarray of shape (n_thresholds,), optional
        Non-increasing.
    rows : ndarray of shape (n_rows,), int, optional
        Only these samples, read block by block where they lie: the same values as
        ``first_lost_values(scores[rows], lost[rows], among)``.

    Returns
    -------
    ndarray of shape (n_samples,) or (n_rows,), float64
    """
    n_exits = scores.shape[1]
    n_samples = scores.shape[0] if rows is None else rows.shape[0]
    if rows is not None and n_exits == 1:
        scores, lost, rows = scores[rows], lost[rows], None
    out = np.full(n_samples, -np.inf)
    if among is not None:
        among = np.asarray(among, dtype=np.float64)
        if among.shape[0] == 0:
            return out
        falling = -among  # increasing, for searchsorted (once, not per block)
    if n_exits == 1:  # no early exit: lost or not at the only one
        out[lost[:, 0]] = np.inf if among is None else among[0]
        return out
    per_block = max(1, _CHUNK_ELEMENTS // n_exits)
    for lo in range(0, n_samples, per_block):
        at = slice(lo, lo + per_block) if rows is None else rows[lo : lo + per_block]
        block, lost_block = scores[at], lost[at]
        hi = lo + block.shape[0]
        if _KERNELS:
            if among is None:
                _first_lost_kernel(np.ascontiguousarray(block), lost_block, out[lo:hi])
            else:
                _first_lost_among_kernel(
                    np.ascontiguousarray(block), lost_block, among, falling, out[lo:hi]
                )
            continue
        early = block[:, : n_exits - 1]
        record = np.empty(early.shape, dtype=bool)
        record[:, 0] = True
        running = np.maximum.accumulate(early, axis=1)
        np.greater(early[:, 1:], running[:, :-1], out=record[:, 1:])
        record &= lost_block[:, : n_exits - 1]
        if among is None:
            out[lo:hi] = np.max(early, axis=1, where=record, initial=-np.inf)
            out[lo:hi][lost_block[:, -1]] = np.inf
            continue
        part = out[lo:hi]
        for k in range(n_exits - 1):
            # Record k's exit takes the thresholds in (running max before k, its score]; only
            # the samples it loses are searched.
            which = np.flatnonzero(record[:, k])
            found_at = np.searchsorted(falling, -early[which, k].astype(np.float64), side="left")
            found = among[np.minimum(found_at, among.shape[0] - 1)]
            below = running[which, k - 1] if k > 0 else -np.inf
            found[(found_at == among.shape[0]) | (found <= below)] = -np.inf
            part[which] = np.maximum(part[which], found)
        part[lost_block[:, -1] & (among[0] > running[:, -1])] = among[0]
    return out


@jit
def _first_lost_kernel(scores, lost, out):
    """:func:`first_lost_values` of a block of rows, one pass (records only rise, so the
    highest lost record is the last one)."""
    n_rows, n_exits = scores.shape
    for i in range(n_rows):
        if lost[i, n_exits - 1]:
            out[i] = np.inf
            continue
        run = scores[i, 0]
        best = run if lost[i, 0] else -np.inf
        for k in range(1, n_exits - 1):
            if scores[i, k] > run:
                run = scores[i, k]
                if lost[i, k]:
                    best = run
        out[i] = best


@jit
def _first_lost_among_kernel(scores, lost, among, falling, out):
    """:func:`first_lost_values` of a block of rows with ``among`` (decreasing thresholds;
    ``falling`` is ``-among``, for searchsorted): the records from the highest down, each
    searched in ``among`` (the first found is the highest)."""
    n_rows, n_exits = scores.shape
    last = n_exits - 1
    values = np.empty(last)  # the records' scores, and the running maximum before each
    before = np.empty(last)
    exits = np.empty(last, np.int64)
    for i in range(n_rows):
        n_records = 0
        run = -np.inf
        for k in range(last):
            if k == 0 or scores[i, k] > run:
                values[n_records], before[n_records], exits[n_records] = scores[i, k], run, k
                n_records += 1
                run = scores[i, k]
        if lost[i, last] and among[0] > run:
            out[i] = among[0]
            continue
        for m in range(n_records - 1, -1, -1):
            if not lost[i, exits[m]]:
                continue
            low = np.searchsorted(falling, -values[m])  # the first threshold at or below it
            if low < among.shape[0] and among[low] > before[m]:
                out[i] = among[low]
                break


def _sorted_generic(scores, correct, chunks, n_samples):
    """The moves of scores that do not pack (float64), sorted by decreasing value with a
    stable argsort; returns as :func:`_sorted_packed`."""
    values, payloads = _Buffer(scores.dtype), _Buffer(np.uint32)
    for chunk in chunks:
        values_t = _transposed(scores, chunk) + 0  # + 0 turns -0.0 into +0.0
        for value, payload in _moves(values_t, _transposed(correct, chunk), 3):
            values.extend(value.shape[0])[:] = value
            payloads.extend(value.shape[0])[:] = payload
        if chunk is chunks[0]:
            values.expect(_estimate(values.size, chunk, n_samples))
            payloads.expect(_estimate(payloads.size, chunk, n_samples))
    values, payloads = values.array(), payloads.array()
    order = np.argsort(values, kind="stable")[::-1]
    values, payloads = values[order], payloads[order]
    boundary = np.empty(values.shape[0], dtype=bool)
    np.not_equal(values[1:], values[:-1], out=boundary[:-1])
    boundary[-1] = True

    def parameters_of(ends):
        return values[ends].astype(np.float64)

    return boundary, parameters_of, payloads


def _estimate(first_moves: int, first: slice | np.ndarray, n_samples: int) -> int:
    """Moves expected for all samples from those of the first chunk, with 5% to spare."""
    size = first.stop - first.start if isinstance(first, slice) else first.shape[0]
    return int(first_moves * n_samples / size * 1.05) + 1024


class _Buffer:
    """A growing 1-d array: ``extend(n)`` returns the next ``n`` slots to fill.

    ``expect(total)`` sizes it from an estimate (the moves of the first chunk, scaled), so
    that it is usually allocated once and never copied; past the estimate it grows by 1/4.
    """

    def __init__(self, dtype) -> None:
        self.data = np.empty(1 << 16, dtype=dtype)
        self.size = 0

    def expect(self, total: int) -> None:
        if total > self.data.shape[0]:
            grown = np.empty(total, self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown

    def reserve(self, count: int) -> np.ndarray:
        """Room for at least ``count`` more items, to fill and then add to ``size``."""
        if self.size + count > self.data.shape[0]:
            grown = np.empty(max(self.data.shape[0] * 5 // 4, self.size + count), self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        return self.data[self.size : self.size + count]

    def extend(self, count: int) -> np.ndarray:
        slots = self.reserve(count)
        self.size += count
        return slots

    def array(self) -> np.ndarray:
        return self.data[: self.size]


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
        return self.make_policy(self._index(index))[0]

    def outcome(self, index: int) -> tuple[np.ndarray, int] | None:
        """Exit counts ``(n_exits,)`` and correct count of candidate ``index`` on the fitting
        data, exactly as its policy's ``evaluate`` finds them there; None where the sweep
        keeps no exit moves."""
        index = self._index(index)
        if self.sweep.moves is None:
            return None
        return self.sweep.exit_counts([index])[0], int(self.sweep.n_correct[index])

    def _index(self, index: Any) -> int:
        """A candidate's index as a non-negative int (negative ones count from the end)."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer (a setting of the path), got {index!r}.")
        if not -len(self) <= index < len(self):
            raise ValueError(
                f"index must be in [-{len(self)}, {len(self)}) (the path's settings), got {index}."
            )
        return int(index) % len(self)


def _last_at_least(descending: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For a non-increasing array, the index of its last element ``>= q`` for each query
    (-1 where none is): a binary search of all queries at once, O(len(queries)) memory
    (``np.searchsorted`` needs an increasing array, and negating a sweep's tens of millions
    of thresholds for each block of queries cost more than the search)."""
    found = np.zeros(queries.shape, dtype=np.int64)  # elements >= q: in [found, beyond]
    beyond = np.full(queries.shape, descending.shape[0], dtype=np.int64)
    open_ = found < beyond
    while open_.any():
        mid = (found + beyond) // 2
        at_least = descending[np.minimum(mid, descending.shape[0] - 1)] >= queries
        np.copyto(found, mid + 1, where=open_ & at_least)
        np.copyto(beyond, mid, where=open_ & ~at_least)
        np.less(found, beyond, out=open_)
    return found - 1


def non_dominated(costs: np.ndarray, accuracies: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (cheaper or equal and more accurate).

    Returned in increasing cost; among equal points the first is kept. Where one coordinate
    is strictly monotone along the index (a path: its costs, or in Pareto testing its risk
    estimates' other coordinate) a point is beaten exactly by the points on its better side
    in that coordinate that are at least as good in the other, so it is kept when it beats
    all of them strictly: running extremes block by block, O(n) time and O(block) memory,
    no sort. Otherwise a lexicographic sort.
    """
    n = costs.shape[0]
    direction = _direction(accuracies)
    if direction:  # kept: cheaper than every point on the more accurate side
        keep = _beats_all_after(costs if direction > 0 else costs[::-1], higher=False)
        return keep if direction > 0 else n - 1 - keep
    direction = _direction(costs)
    if direction:  # kept: more accurate than every point on the cheaper side
        keep = _beats_all_after(accuracies if direction < 0 else accuracies[::-1], higher=True)
        # Increasing cost: the cheaper side first.
        return (n - 1 - keep if direction > 0 else keep)[::-1].copy()
    order = np.lexsort((-accuracies, costs))  # by cost, then most accurate first
    best_so_far = np.maximum.accumulate(accuracies[order])
    previous_best = np.r_[-np.inf, best_so_far[:-1]]
    return order[accuracies[order] > previous_best]


#: Points per block of :func:`non_dominated`'s running extremes.
_FRONT_BLOCK = 1 << 16


def _direction(values: np.ndarray) -> int:
    """1 if ``values`` strictly rise along the index, -1 if they strictly fall, else 0 (also
    for fewer than two values), checked block by block."""
    n = values.shape[0]
    if n < 2:
        return 0
    rising = falling = True
    for lo in range(0, n - 1, _FRONT_BLOCK):
        block = values[lo : lo + _FRONT_BLOCK + 1]  # one value of overlap
        rising = rising and bool(np.all(block[1:] > block[:-1]))
        falling = falling and bool(np.all(block[1:] < block[:-1]))
        if not (rising or falling):
            return 0
    return 1 if rising else -1


def _beats_all_after(values: np.ndarray, higher: bool) -> np.ndarray:
    """Increasing indices ``i`` with ``values[i]`` strictly better (higher, or lower) than
    every later value; the last always. Blocks from the end, carrying the best so far."""
    better = np.greater if higher else np.less
    best_of = np.maximum if higher else np.minimum
    kept, carry = [], None
    for stop in range(values.shape[0], 0, -_FRONT_BLOCK):
        block = values[max(0, stop - _FRONT_BLOCK) : stop]
        best = best_of.accumulate(block[::-1])[::-1]  # over this point and the later ones
        beats = np.empty(block.shape[0], dtype=bool)
        better(block[:-1], best[1:], out=beats[:-1])
        beats[-1] = True
        if carry is not None:  # and better than every value of the later blocks
            beats &= better(block, carry)
        carry = best[0] if carry is None else best_of(best[0], carry)
        kept.append(np.flatnonzero(beats) + (stop - block.shape[0]))
    if not kept:
        return np.zeros(0, dtype=np.intp)
    return np.concatenate(kept[::-1])


#: A move's change in correctness from its flags (see :func:`_moves`).
_CHANGE = np.array([(f & 3) - 1 for f in range(8)], dtype=np.int64)
#: A move's change in ``1[exit wrong and final right]`` from its flags (see :func:`_moves`).
_LOST_CHANGE = np.array([(1 - (f & 3)) * (f >> 2) for f in range(8)], dtype=np.int64)

#: Relative slack within which two running-sum costs are compared exactly.
_COST_SLACK = 1e-9


def near_cheapest(costs: np.ndarray) -> np.ndarray:
    """Which running-sum mean ``costs`` lie within rounding of the smallest, ``(len(costs),)``
    bool: the candidates whose exact cost may be the smallest (the others' cannot)."""
    slack = _COST_SLACK * max(abs(float(costs.min())), 1.0)
    return costs <= costs.min() + slack


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
    exact_costs = sweep.exact_costs  # mean_costs are the engine's figures already
    feasible = sweep.mean_costs <= (budget if exact_costs else budget + slack)
    while feasible.any():
        # Masked reductions: no index array of the (possibly millions of) feasible candidates.
        best = np.max(sweep.n_correct, where=feasible, initial=np.iinfo(np.int64).min)
        tied = np.flatnonzero((sweep.n_correct == best) & feasible)
        close = tied[sweep.mean_costs[tied] <= sweep.mean_costs[tied].min() + slack]
        close_costs = sweep.exact_mean_costs(close)
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
    close = sweep.cheapest(feasible)
    return int(close[np.argmax(sweep.n_correct[close])])
