"""BEEM's per-exit level sweep as an event simulation over per-exit count trees.

The policy of BEEM's per-exit error-rate rule is a step function of the error level L. This
module lists every step exactly, in near-linear time, by moving L from one step to the next
and updating only what changes.

**State.** For every early exit k, the samples are sorted once by decreasing score and
grouped by equal score; a group is a candidate threshold. Per group, one int64 packs how many
of the samples still in at exit k (the remaining set R_k) it has and how many of those err at
k; a segment tree sums them over leaves of ``BLOCK`` groups. The state also has each sample's
current exit, each exit's chosen group (its threshold alpha_k) and a lower bound on the level
at which that choice next changes.

**Queries.** With prefix sums C (samples) and W (errors) over the groups, the rule at exit k
takes the last group with ``C >= min_samples`` and ``W / C <= L`` (:func:`last_feasible`),
and its choice next changes at the smallest rate ``W / C`` of an eligible group after it
(:func:`min_rate_after`). Both descend the tree with a bound: the rates of the groups in a
node are at least ``W0 / (C0 + correct in the node)``, ``(C0, W0)`` being the prefix before
the node, so whole subtrees are skipped. The bound is exact arithmetic on integers followed by
one correctly rounded division, so the float comparisons agree with the rates' own.

**Events.** The next level is the smallest next-change level over the exits. At that level
the exits whose choice is due, or whose remaining set changed so that a later group may now
qualify (rates fell after the choice, or the chosen group was touched), are re-queried in
exit order;
a choice that moves lets samples out or back in, which removes them from (or adds them to)
the trees of the later exits, which are then re-queried in turn. Each event is one policy:
its thresholds and exit counts are recorded (a level at which a lower bound was reached but
no choice changed records nothing). Work per event is the tree queries of the exits touched
and ``O(log G)`` per sample and exit whose membership changes, instead of an ``O(N)`` pass
per exit.

The kernels are written for numba (:mod:`eeopt._accel`) and run as plain Python without it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from joblib import effective_n_jobs

from eeopt._accel import HAVE_NUMBA, jit

#: The rule's choice "none" (alpha = +inf).
NONE = -1
#: Count and errors share one int64: count << 32 | errors (both below 2^31).
ONE = 1 << 32
LOW = ONE - 1
#: Groups per leaf of the trees: a leaf's groups are scanned, the tree is over the leaves.
BLOCK = 16


@jit
def tree_add(cells, tree, n_leaves, group, delta, is_wrong):
    """Add ``delta`` samples (``is_wrong`` of them erring, 0 or 1 each) to a group."""
    change = delta * (ONE + int(is_wrong))
    cells[group] += change
    node = n_leaves + group // BLOCK
    while node >= 1:
        tree[node] += change
        node >>= 1


@jit
def prefix(cells, tree, n_leaves, group):
    """Samples and errors in groups ``0 .. group``, packed."""
    total = 0
    for g in range(group - group % BLOCK, group + 1):
        total += cells[g]
    node = n_leaves + group // BLOCK
    while node > 1:
        if node & 1:
            total += tree[node - 1]
        node >>= 1
    return total


@jit
def still_settles(cells, tree, n_leaves, min_samples, level, group):
    """Whether ``group`` (or ``NONE``) is still a choice the rule could keep: present,
    eligible and within the level (``NONE`` always is)."""
    if group == NONE:
        return True
    if cells[group] >> 32 == 0:
        return False
    packed = prefix(cells, tree, n_leaves, group)
    samples = packed >> 32
    return samples >= min_samples and (packed & LOW) / samples <= level


@jit
def _pruned(packed_node, c0, w0, min_samples, limit, strict):
    """Whether no group of a node can have a rate below ``limit`` (``<= limit`` when not
    ``strict``): its rates are at least ``w0 / (c0 + right answers in the node)``."""
    present = packed_node >> 32
    if present == 0 or c0 + present < min_samples:
        return True
    denominator = c0 + present - (packed_node & LOW)
    bound = w0 / denominator if denominator > 0 else 1.0
    return bound >= limit if strict else bound > limit


@jit
def last_feasible(cells, tree, n_leaves, n_groups, min_samples, level, stack):
    """The last group with samples present, ``C >= min_samples`` and ``W / C <= level``
    (``NONE`` if there is none): a depth-first search, right child first, that skips a node
    when its bound already exceeds the level."""
    stack[0, 0], stack[0, 1], stack[0, 2] = 1, 0, 0
    top = 1
    while top > 0:
        top -= 1
        node, c0, w0 = stack[top, 0], stack[top, 1], stack[top, 2]
        if _pruned(tree[node], c0, w0, min_samples, level, False):
            continue
        if node >= n_leaves:  # scan the leaf's groups, keep the last that qualifies
            found = NONE
            first = (node - n_leaves) * BLOCK
            for g in range(first, min(first + BLOCK, n_groups)):
                cell = cells[g]
                c0 += cell >> 32
                w0 += cell & LOW
                if cell >> 32 > 0 and c0 >= min_samples and w0 / c0 <= level:
                    found = g
            if found != NONE:
                return found
            continue
        left = 2 * node
        stack[top, 0], stack[top, 1], stack[top, 2] = left, c0, w0
        stack[top + 1, 0] = left + 1
        stack[top + 1, 1] = c0 + (tree[left] >> 32)
        stack[top + 1, 2] = w0 + (tree[left] & LOW)
        top += 2
    return NONE


@jit
def min_rate_after(cells, tree, n_leaves, n_groups, min_samples, after, stack):
    """The smallest ``W / C`` over the groups after ``after`` that have samples present and
    ``C >= min_samples`` (``inf`` if none): a depth-first search, left child first, that skips
    a node whose bound cannot improve on the best rate found so far."""
    best = np.inf
    last_leaf = after // BLOCK if after >= 0 else -1  # leaves before it hold no candidate
    stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3], stack[0, 4] = 1, 0, 0, 0, n_leaves
    top = 1
    while top > 0:
        top -= 1
        node, c0, w0 = stack[top, 0], stack[top, 1], stack[top, 2]
        start, size = stack[top, 3], stack[top, 4]
        if start + size - 1 < last_leaf:
            continue
        if _pruned(tree[node], c0, w0, min_samples, best, True):
            continue
        if node >= n_leaves:
            first = start * BLOCK
            for g in range(first, min(first + BLOCK, n_groups)):
                cell = cells[g]
                c0 += cell >> 32
                w0 += cell & LOW
                if g > after and cell >> 32 > 0 and c0 >= min_samples:
                    rate = w0 / c0
                    if rate < best:
                        best = rate
            continue
        left, half = 2 * node, size // 2
        stack[top, 0] = left + 1
        stack[top, 1] = c0 + (tree[left] >> 32)
        stack[top, 2] = w0 + (tree[left] & LOW)
        stack[top, 3], stack[top, 4] = start + half, half
        stack[top + 1, 0], stack[top + 1, 1], stack[top + 1, 2] = left, c0, w0
        stack[top + 1, 3], stack[top + 1, 4] = start, half
        top += 2
    return best


@jit
def process_level(
    level,
    scores,
    wrong,
    order,
    group_of,
    group_start,
    n_groups,
    cells,
    trees,
    n_leaves,
    min_samples,
    exit_of,
    chosen,
    alpha,
    next_level,
    dirty,
    exit_count,
    exit_correct,
    exit_lost,
    stack,
):
    """Bring every early exit's choice to the rule's at ``level``, in exit order; returns how
    many choices changed.

    Invariant between calls: every exit that is not dirty holds the rule's choice for its
    remaining samples at the last level processed, and ``next_level`` is at most the level
    at which that choice next changes (a lower bound: some updates only raise it).
    """
    n_early = chosen.shape[0]
    last_exit = n_early
    changed = 0
    for k in range(n_early):
        if dirty[k] == 0 and next_level[k] > level:
            continue
        dirty[k] = 0
        cells_k, tree_k, groups_k = cells[k], trees[k], n_groups[k]
        old = chosen[k]
        # Usually the choice stands: it still qualifies and nothing after it does.
        if still_settles(cells_k, tree_k, n_leaves, min_samples, level, old):
            after = min_rate_after(cells_k, tree_k, n_leaves, groups_k, min_samples, old, stack)
            if after > level:
                next_level[k] = after
                continue
        new = last_feasible(cells_k, tree_k, n_leaves, groups_k, min_samples, level, stack)
        if new == old:
            next_level[k] = min_rate_after(
                cells_k, tree_k, n_leaves, groups_k, min_samples, new, stack
            )
            continue
        changed += 1
        if new > old:  # a lower threshold: the present samples of groups old+1..new leave here
            for position in range(group_start[k, old + 1], group_start[k, new + 1]):
                sample = order[k, position]
                was = exit_of[sample]
                if was <= k:  # already gone, at an earlier exit
                    continue
                for j in range(k + 1, min(was, last_exit - 1) + 1):
                    group = group_of[sample, j]
                    is_wrong = wrong[sample, j]
                    tree_add(cells[j], trees[j], n_leaves, group, -1, is_wrong)
                    # A right sample leaving after the choice only raises the rates after
                    # it: the choice stands and next_level stays a lower bound.
                    if group <= chosen[j] or is_wrong:
                        dirty[j] = 1
                final_right = 1 - wrong[sample, last_exit]
                exit_count[was] -= 1
                exit_correct[was] -= 1 - wrong[sample, was]
                exit_lost[was] -= wrong[sample, was] * final_right
                exit_count[k] += 1
                exit_correct[k] += 1 - wrong[sample, k]
                exit_lost[k] += wrong[sample, k] * final_right
                exit_of[sample] = k
        else:  # a higher threshold: samples of groups new+1..old that left here stay on
            for position in range(group_start[k, new + 1], group_start[k, old + 1]):
                sample = order[k, position]
                if exit_of[sample] != k:
                    continue
                j = k + 1
                while j < last_exit:
                    group = group_of[sample, j]
                    is_wrong = wrong[sample, j]
                    tree_add(cells[j], trees[j], n_leaves, group, 1, is_wrong)
                    # Likewise a wrong sample arriving after the choice (with min_samples = 1,
                    # so that no group turns eligible).
                    if group <= chosen[j] or not is_wrong or min_samples > 1:
                        dirty[j] = 1
                    if group <= chosen[j]:  # its score reaches alpha[j]: it leaves at j
                        break
                    j += 1
                final_right = 1 - wrong[sample, last_exit]
                exit_count[k] -= 1
                exit_correct[k] -= 1 - wrong[sample, k]
                exit_lost[k] -= wrong[sample, k] * final_right
                exit_count[j] += 1
                exit_correct[j] += 1 - wrong[sample, j]
                exit_lost[j] += wrong[sample, j] * final_right
                exit_of[sample] = j
        chosen[k] = new
        alpha[k] = scores[order[k, group_start[k, new]], k] if new != NONE else np.inf
        next_level[k] = min_rate_after(cells_k, tree_k, n_leaves, groups_k, min_samples, new, stack)
    return changed


@jit
def advance(
    max_level,
    scores,
    wrong,
    order,
    group_of,
    group_start,
    n_groups,
    cells,
    trees,
    n_leaves,
    min_samples,
    exit_of,
    chosen,
    alpha,
    next_level,
    dirty,
    exit_count,
    exit_correct,
    exit_lost,
    stack,
    grid,
    cursor,
    out_level,
    out_alpha,
    out_count,
    out_correct,
    out_lost,
):
    """Record policies until the output is full or the level passes ``max_level``.

    The levels are the events (the next level at which some choice changes), or with a
    non-empty ``grid`` (increasing) the grid's levels only: the state jumps from one to the
    next, moving only the samples whose exit differs between the two policies.

    ``cursor = [records written, 0 before the first level / 1 running / 2 done, 1 once the
    first policy is recorded, grid levels used]``; the state arrays carry everything else, so
    a call resumes where the previous one stopped.
    """
    capacity = out_level.shape[0]
    written = cursor[0]
    while written < capacity:
        if grid.shape[0] > 0:
            if cursor[3] == grid.shape[0] or not grid[cursor[3]] <= max_level:
                cursor[1] = 2
                break
            level = grid[cursor[3]]
            cursor[1] = 1
            cursor[3] += 1
        elif cursor[1] == 0:
            level = 0.0
            cursor[1] = 1
        else:
            level = np.inf
            for k in range(next_level.shape[0]):
                if next_level[k] < level:
                    level = next_level[k]
            if not level <= max_level:
                cursor[1] = 2
                break
        changed = process_level(
            level, scores, wrong, order, group_of, group_start, n_groups, cells, trees,
            n_leaves, min_samples, exit_of, chosen, alpha, next_level, dirty, exit_count,
            exit_correct, exit_lost, stack,
        )  # fmt: skip
        if changed == 0 and written + cursor[2] > 0:
            continue  # a lower bound was reached, but no choice changed: the same policy
        cursor[2] = 1
        out_level[written] = level
        n_correct = 0
        n_lost = 0
        for k in range(exit_count.shape[0]):
            out_count[written, k] = exit_count[k]
            n_correct += exit_correct[k]
            n_lost += exit_lost[k]
        for k in range(alpha.shape[0]):
            out_alpha[written, k] = alpha[k]
        out_correct[written] = n_correct
        out_lost[written] = n_lost
        written += 1
    cursor[0] = written


def _group_exit(k, negated, order, wrong, group_of, group_start, cells) -> int:
    """Exit k's groups of equal score along its sorted ``order``: each sample's group
    (``group_of[:, k]``), where each group starts, and each group's packed count and errors;
    returns the number of groups. ``negated`` holds the column's scores negated, by sample.

    Compiled, one pass in sorted order; without numba, vectorised numpy passes (a Python loop
    over the samples would be ten times slower)."""
    if HAVE_NUMBA:
        return _group_exit_kernel(k, negated, order, wrong, group_of, group_start, cells)
    n_samples = order.shape[0]
    ordered = negated[order]
    new_group = np.empty(n_samples, dtype=bool)
    new_group[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_group[1:])
    start = np.flatnonzero(new_group)
    n_groups = start.shape[0]
    group_of[order, k] = np.cumsum(new_group) - 1
    group_start[:n_groups] = start
    group_start[n_groups:] = n_samples
    errors = np.add.reduceat(wrong[order, k].astype(np.int64), start)
    cells[:n_groups] = (np.diff(np.r_[start, n_samples]) << 32) + errors
    return n_groups


@jit
def _group_exit_kernel(k, negated, order, wrong, group_of, group_start, cells):
    """:func:`_group_exit` in one pass along the sorted order."""
    n_samples = order.shape[0]
    group = -1
    previous = 0.0
    for position in range(n_samples):
        sample = order[position]
        value = negated[sample]
        if position == 0 or value != previous:
            group += 1
            group_start[group] = position
            previous = value
        group_of[sample, k] = group
        cells[group] += ONE + int(wrong[sample, k])
    group_start[group + 1 :] = n_samples
    return group + 1


class PerExitSweep:
    """The sorted exits, the trees and the simulation state for one level sweep.

    Memory: per early exit, the order and group of every sample (int32), where each group
    starts (int32) and one packed int64 count per group, about 20 bytes per sample and exit.

    Parameters
    ----------
    scores : ndarray of shape (n_samples, n_exits), float64
    correct : ndarray of shape (n_samples, n_exits), bool
    min_samples : int
    n_jobs : int, optional
        Threads sorting and grouping the exits (scikit-learn's convention, through
        ``joblib.effective_n_jobs``; ``np.argsort`` and the compiled kernel release the GIL,
        so with numba they run side by side). The state is the same whatever the number.
    """

    def __init__(
        self, scores: np.ndarray, correct: np.ndarray, min_samples: int, n_jobs: int | None = None
    ) -> None:
        n_samples, n_exits = scores.shape
        n_early = n_exits - 1
        self.scores = np.ascontiguousarray(scores, dtype=np.float64)
        self.wrong = np.ascontiguousarray(~correct, dtype=np.int8)
        index = np.int32 if n_samples < 2**31 - 1 else np.int64
        self.order = np.empty((n_early, n_samples), dtype=index)
        self.group_of = np.empty((n_samples, n_early), dtype=index)  # a sample's in one row
        self.group_start = np.empty((n_early, n_samples + 1), dtype=index)
        self.cells = np.zeros((n_early, n_samples + 1), dtype=np.int64)
        self.n_groups = np.zeros(n_early, dtype=np.int64)

        def sort_and_group(k: int) -> None:  # each exit writes its own rows (group_of: column)
            column = np.negative(self.scores[:, k])  # contiguous: argsort rises
            self.order[k] = np.argsort(column)  # decreasing score (ties form groups: any order)
            self.n_groups[k] = _group_exit(
                k, column, self.order[k], self.wrong, self.group_of, self.group_start[k],
                self.cells[k],
            )  # fmt: skip

        _each_exit(sort_and_group, n_early, n_jobs)
        n_blocks = -(-int(self.n_groups.max()) // BLOCK)
        self.n_leaves = 1 << max(int(n_blocks - 1).bit_length(), 0)
        self.trees = np.zeros((n_early, 2 * self.n_leaves), dtype=np.int64)
        for k in range(n_early):
            used = self.cells[k, : self.n_groups[k]]
            blocks = np.add.reduceat(used, np.arange(0, used.shape[0], BLOCK))
            self.trees[k, self.n_leaves : self.n_leaves + blocks.shape[0]] = blocks
            _sum_up(self.trees[k], self.n_leaves)
        # Everyone at the last exit, no threshold yet: a consistent state at any level.
        self.min_samples = int(min_samples)
        self.exit_of = np.full(n_samples, n_early, dtype=np.int16 if n_exits < 2**15 else np.int64)
        self.chosen = np.full(n_early, NONE, dtype=np.int64)
        self.alpha = np.full(n_early, np.inf)
        self.next_level = np.zeros(n_early)
        self.dirty = np.ones(n_early, dtype=np.uint8)
        self.exit_count = np.zeros(n_exits, dtype=np.int64)
        self.exit_count[-1] = n_samples
        self.exit_correct = np.zeros(n_exits, dtype=np.int64)
        self.exit_correct[-1] = n_samples - int(self.wrong[:, -1].sum())
        # Per exit, the samples leaving there wrong whom the last exit gets right (none yet).
        self.exit_lost = np.zeros(n_exits, dtype=np.int64)
        depth = max(self.n_leaves.bit_length(), 1)
        self.stack = np.zeros((2 * depth + 4, 5), dtype=np.int64)
        self.cursor = np.zeros(4, dtype=np.int64)

    @property
    def done(self) -> bool:
        return bool(self.cursor[1] == 2)

    def run(self, max_level: float, capacity: int, grid: np.ndarray | None = None):
        """Record up to ``capacity`` more policies: ``(levels, alphas, counts, n_correct,
        n_lost)``, ``n_lost`` counting the samples wrong at their exit and right at the last.
        With ``grid`` (increasing levels, the same at every call), only the policies at those
        levels, each distinct one once at the lowest of them."""
        n_exits = self.exit_count.shape[0]
        out_level = np.empty(capacity)
        out_alpha = np.empty((capacity, n_exits - 1))
        out_count = np.empty((capacity, n_exits), dtype=np.int32)
        out_correct = np.empty(capacity, dtype=np.int64)
        out_lost = np.empty(capacity, dtype=np.int64)
        self.cursor[0] = 0
        advance(
            float(max_level), self.scores, self.wrong, self.order, self.group_of,
            self.group_start, self.n_groups, self.cells, self.trees, self.n_leaves,
            self.min_samples, self.exit_of, self.chosen, self.alpha, self.next_level,
            self.dirty, self.exit_count, self.exit_correct, self.exit_lost, self.stack,
            np.empty(0) if grid is None else np.ascontiguousarray(grid, dtype=np.float64),
            self.cursor, out_level, out_alpha, out_count, out_correct, out_lost,
        )  # fmt: skip
        written = int(self.cursor[0])
        outputs = out_level, out_alpha, out_count, out_correct, out_lost
        return tuple(output[:written] for output in outputs)


def _each_exit(work, n_early: int, n_jobs: int | None) -> None:
    """``work(k)`` for every early exit k, in ``n_jobs`` threads (scikit-learn's convention;
    each call writes its own rows, and sorts and compiled kernels release the GIL)."""
    workers = min(effective_n_jobs(n_jobs), n_early)
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, range(n_early)))
    else:
        for k in range(n_early):
            work(k)


def _sum_up(tree: np.ndarray, n_leaves: int) -> None:
    """Fill the internal nodes of a bottom-up segment tree from its leaves."""
    width = n_leaves
    while width > 1:
        half = width // 2
        tree[half:width] = tree[width : 2 * width : 2] + tree[width + 1 : 2 * width : 2]
        width = half


# -- the same policies on other samples -----------------------------------------------------------
@jit
def _replay(
    thresholds,
    scores,
    order,
    negated,
    wrong,
    exit_of,
    out_count,
    out_correct,
    out_lost,
    rank,
    first,
    reach,
):
    """Each threshold vector's exit counts, correct count and lost count (wrong at its exit,
    right at the last) on the samples of ``scores``, in turn, moving only the samples whose
    exit changes.

    Invariant: before row j, ``exit_of[i]`` is the first exit at which sample i's score reaches
    the thresholds of the exits already updated and the previous row's elsewhere. Exits are
    updated in order; at exit k a lower threshold lets the samples of its score band (read off
    ``order[k]``, scores sorted decreasingly: ``negated[k]`` rises) that are still in leave at
    k, a higher one sends those that left at k on to the next exit they reach.

    With ``rank`` (a position per row; empty: not tracked), ``first[i]`` becomes the smallest
    rank among the rows at which sample i's exit is wrong: each run of rows at which it stays
    wrong is closed when it turns right (or at the end) and its smallest rank read off a
    stack of the rows' suffix minima (rows and ranks both increasing up the stack). With
    ``reach`` (``(n_samples, n_exits - 1)``; empty: not tracked), likewise ``reach[i, k - 1]``
    becomes the smallest rank among the rows at which sample i leaves at exit k or later, for
    k = 1 .. n_exits - 1 (the runs of rows at or past each exit, closed as it moves earlier).
    """
    n_rows, n_exits = thresholds.shape
    n_samples = scores.shape[0]
    last = n_exits - 1
    track = rank.shape[0] > 0
    since = np.full(n_samples if track else 0, -1, dtype=np.int64)  # a wrong run's first row
    stack_rows = np.empty(n_rows if track else 0, dtype=np.int64)
    stack_ranks = np.empty(n_rows if track else 0, dtype=np.int64)
    height = 0
    track_wrong = track and first.shape[0] > 0
    track_reach = track and reach.shape[0] > 0
    if track_wrong:
        for i in range(n_samples):
            if wrong[i, last]:
                since[i] = 0
    # Per sample and exit k >= 1, the first row of its current run at exit k or later (-1:
    # none); everyone starts at the last exit, in every run.
    reach_since = np.zeros((n_samples, last) if track_reach else (0, 0), dtype=np.int64)
    alpha = np.full(last, np.inf)
    firing = np.zeros(last, dtype=np.int64)  # samples scoring at least alpha[k] at exit k
    exit_count = np.zeros(n_exits, dtype=np.int64)
    exit_count[last] = n_samples
    # int64 from the start: int8 flags added to a Python 0 would stay int8 without numba.
    n_correct, n_lost = np.int64(0), np.int64(0)
    for i in range(n_samples):
        n_correct += 1 - wrong[i, last]
    for j in range(n_rows):
        for k in range(last):
            new = thresholds[j, k]
            if new == alpha[k]:
                continue
            low = np.searchsorted(negated[k], -new, side="right")  # samples scoring >= new
            old_firing = firing[k]
            alpha[k], firing[k] = new, low
            lowered = low > old_firing
            for position in range(min(low, old_firing), max(low, old_firing)):
                sample = order[k, position]
                was = exit_of[sample]
                if lowered:  # a lower threshold: the band leaves here if still in
                    if was <= k:
                        continue
                    to = k
                else:  # a higher one: the band's samples that left here go on
                    if was != k:
                        continue
                    to = k + 1
                    while to < last and not scores[sample, to] >= alpha[to]:
                        to += 1
                exit_count[was] -= 1
                exit_count[to] += 1
                n_correct += wrong[sample, was] - wrong[sample, to]
                n_lost += (wrong[sample, to] - wrong[sample, was]) * (1 - wrong[sample, last])
                exit_of[sample] = to
                if track_reach:
                    if to > was:  # runs at exits was+1 .. to start at this row
                        for k2 in range(was, to):
                            reach_since[sample, k2] = j
                    else:  # runs at exits to+1 .. was end at the previous row
                        for k2 in range(to, was):
                            start = reach_since[sample, k2]
                            if start < j:
                                best = _smallest_rank(stack_rows, stack_ranks, height, start)
                                reach[sample, k2] = min(reach[sample, k2], best)
                            reach_since[sample, k2] = -1
                if track_wrong and wrong[sample, was] != wrong[sample, to]:
                    if wrong[sample, to]:  # a wrong run starts at this row
                        since[sample] = j
                    else:  # one ends at the previous row (none if it started at this one)
                        if since[sample] < j:
                            best = _smallest_rank(stack_rows, stack_ranks, height, since[sample])
                            first[sample] = min(first[sample], best)
                        since[sample] = -1
        for k in range(n_exits):
            out_count[j, k] = exit_count[k]
        out_correct[j] = n_correct
        out_lost[j] = n_lost
        if track:  # row j on the stack of suffix minima
            while height > 0 and stack_ranks[height - 1] >= rank[j]:
                height -= 1
            stack_rows[height], stack_ranks[height] = j, rank[j]
            height += 1
    if track_wrong:
        for i in range(n_samples):
            if since[i] >= 0:
                first[i] = min(first[i], _smallest_rank(stack_rows, stack_ranks, height, since[i]))
    if track_reach:
        for i in range(n_samples):
            for k2 in range(exit_of[i]):
                start = reach_since[i, k2]
                best = _smallest_rank(stack_rows, stack_ranks, height, start)
                reach[i, k2] = min(reach[i, k2], best)


@jit
def _smallest_rank(stack_rows, stack_ranks, height, start):
    """The smallest rank of the rows from ``start`` to the last pushed: that of the lowest
    stack entry at or after ``start`` (the stack holds the suffix minima)."""
    return stack_ranks[np.searchsorted(stack_rows[:height], start)]


def replay(
    thresholds: np.ndarray,
    scores: np.ndarray,
    correct: np.ndarray,
    rank: np.ndarray | None = None,
    reach: bool = False,
    n_jobs: int | None = None,
):
    """Exit counts, correct counts and lost counts of a sequence of per-exit thresholds on
    samples: ``(counts (n_rows, n_exits), n_correct (n_rows,), n_lost (n_rows,))``; with
    ``rank`` (an int64 position per row), also each sample's smallest rank among the rows at
    which its exit is wrong (int64, ``np.iinfo(np.int64).max`` where it never is), and with
    ``reach`` as well, instead, per sample and exit k = 1 .. n_exits - 1 the smallest rank
    among the rows at which it leaves at exit k or later (``(n_samples, n_exits - 1)``).

    Consecutive rows of a level path differ at a few exits, and only the samples in the score
    bands between their old and new thresholds there can change exit, so the work is the
    bands' sizes, not ``O(n_samples * n_exits)`` per row. ``scores[i, k] >= thresholds[j, k]``
    fires, as in :func:`eeopt.engine.first_exit`.

    Parameters
    ----------
    thresholds : ndarray of shape (n_rows, n_exits)
        The last column is ignored (the last exit always fires).
    scores : ndarray of shape (n_samples, n_exits), float64
    correct : ndarray of shape (n_samples, n_exits), bool
    n_jobs : int, optional
        Threads sorting the exits (as :class:`PerExitSweep`'s).
    """
    n_samples, n_exits = scores.shape
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    index = np.int32 if n_samples < 2**31 - 1 else np.int64
    order = np.empty((n_exits - 1, n_samples), dtype=index)
    negated = np.empty((n_exits - 1, n_samples))  # each exit's sorted scores, negated

    def sort(k: int) -> None:
        order[k] = np.argsort(-scores[:, k], kind="stable")
        np.negative(scores[order[k], k], out=negated[k])

    _each_exit(sort, n_exits - 1, n_jobs)
    n_rows = thresholds.shape[0]
    counts = np.empty((n_rows, n_exits), dtype=np.int32 if n_samples < 2**31 else np.int64)
    n_correct = np.empty(n_rows, dtype=np.int64)
    n_lost = np.empty(n_rows, dtype=np.int64)
    exit_of = np.full(n_samples, n_exits - 1, dtype=np.int64)
    ranks = np.zeros(0, np.int64) if rank is None else np.ascontiguousarray(rank, np.int64)
    never = np.iinfo(np.int64).max
    first = np.full(0 if rank is None or reach else n_samples, never)
    reached = np.full((n_samples, n_exits - 1) if rank is not None and reach else (0, 0), never)
    _replay(
        np.ascontiguousarray(thresholds, dtype=np.float64), scores, order, negated,
        np.ascontiguousarray(~correct, dtype=np.int8), exit_of, counts, n_correct, n_lost,
        ranks, first, reached,
    )  # fmt: skip
    if rank is None:
        return counts, n_correct, n_lost
    return counts, n_correct, n_lost, reached if reach else first
