import contextlib

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from reference import ref_exit, ref_threshold_sweep

import eeopt
import eeopt.targets as targets
from eeopt import engine
from eeopt.targets import threshold_sweep


@contextlib.contextmanager
def kernels_as(flag):
    """Sweep float32 scores with the compiled kernels (run as Python without numba) or with
    the numpy passes (hypothesis tests cannot take monkeypatch)."""
    saved, targets._KERNELS = targets._KERNELS, flag
    try:
        yield
    finally:
        targets._KERNELS = saved


# Few distinct values (ties, -0.0 beside +0.0, negatives) in each dtype the sweep packs or not.
_VALUES = [0.0, -0.0, 0.25, 0.5, 1.0, -1.0]


def _scores(dtype):
    elements = st.integers(-2, 3) if np.issubdtype(dtype, np.integer) else st.sampled_from(_VALUES)
    return st.integers(1, 5).flatmap(
        lambda k: arrays(dtype, st.tuples(st.integers(1, 30), st.just(k)), elements=elements)
    )


@pytest.mark.parametrize("kernels", [False, True])
@given(
    st.sampled_from([np.float32, np.float64, np.int64]).flatmap(_scores),
    st.data(),
)
def test_sweep_matches_the_previous_implementation(kernels, scores, data):
    """The same candidates and correct counts bit for bit as the dense argsort sweep it
    replaced (float32 and small integers take the packed-key sort, float64 the argsort)."""
    with kernels_as(kernels):
        n_samples, n_exits = scores.shape
        correct = data.draw(arrays(np.bool_, scores.shape), label="correct")
        costs = np.cumsum(data.draw(arrays(np.float64, n_exits, elements=st.floats(0.1, 5))))
        sweep = threshold_sweep(scores, correct, costs)
        parameters, mean_costs, n_correct = ref_threshold_sweep(scores, correct, costs)
        np.testing.assert_array_equal(sweep.parameters, parameters)
        np.testing.assert_array_equal(sweep.n_correct, n_correct)
        assert sweep.n_correct.dtype == np.int64
        np.testing.assert_allclose(sweep.mean_costs, mean_costs, rtol=1e-12)


@pytest.mark.parametrize("kernels", [False, True])
@given(
    st.sampled_from([np.float32, np.float64]).flatmap(_scores),
    st.data(),
)
def test_exit_counts_are_those_of_the_exit_rule(kernels, scores, data):
    """exit_counts(i) equals a per-sample loop's exit counts at threshold parameters[i], and
    the engine's mean cost of those counts is the sweep's mean cost up to rounding."""
    with kernels_as(kernels):
        n_samples, n_exits = scores.shape
        correct = data.draw(arrays(np.bool_, scores.shape), label="correct")
        costs = np.cumsum(np.arange(1.0, n_exits + 1))
        sweep = threshold_sweep(scores, correct, costs)
        n = sweep.parameters.shape[0]
        indices = np.array(data.draw(st.lists(st.integers(0, n - 1), max_size=6)), dtype=np.int64)
        counts = sweep.exit_counts(indices)
        assert counts.shape == (indices.shape[0], n_exits) and counts.dtype == np.int64
        for row, i in zip(counts, indices, strict=True):
            thresholds = [float(sweep.parameters[i])] * (n_exits - 1) + [-np.inf]
            exits = [ref_exit(list(scores[j]), thresholds) for j in range(n_samples)]
            np.testing.assert_array_equal(row, np.bincount(exits, minlength=n_exits))
        if indices.size:
            exact = engine.mean_cost_from_counts(counts, costs)
            np.testing.assert_allclose(exact, sweep.mean_costs[indices], rtol=1e-12)


@pytest.mark.parametrize("kernels", [False, True])
@given(
    st.sampled_from([np.float32, np.float64, np.int64]).flatmap(_scores),
    st.data(),
)
def test_n_lost_counts_the_positive_part_of_the_gap(kernels, scores, data):
    """n_lost()[i] is the number of samples whose exit under threshold parameters[i] errs
    while the last exit is right (a per-sample loop), for every candidate, in both sorts."""
    with kernels_as(kernels):
        n_samples, n_exits = scores.shape
        correct = data.draw(arrays(np.bool_, scores.shape), label="correct")
        sweep = threshold_sweep(scores, correct, np.arange(1.0, n_exits + 1))
        assert sweep.counts_lost
        expected = []
        for threshold in sweep.parameters:
            thresholds = [float(threshold)] * (n_exits - 1) + [-np.inf]
            exits = [ref_exit(list(scores[j]), thresholds) for j in range(n_samples)]
            expected.append(sum(not correct[j, e] and correct[j, -1] for j, e in enumerate(exits)))
        lost = sweep.n_lost()
        assert lost.dtype == np.int64
        np.testing.assert_array_equal(lost, expected)
        np.testing.assert_array_equal(sweep.head(2).n_lost(), expected[:2])


@given(
    st.sampled_from([np.float32, np.float64]).flatmap(_scores),
    st.data(),
)
def test_cheapest_is_the_exact_minimum(scores, data):
    """cheapest(indices) keeps exactly the given candidates whose per-sample-loop mean cost
    is smallest, in the order given (repeated indices tie)."""
    n_samples, n_exits = scores.shape
    correct = data.draw(arrays(np.bool_, scores.shape), label="correct")
    costs = np.cumsum(data.draw(st.sampled_from([[0.1] * n_exits, [0.3] + [0.1] * (n_exits - 1)])))
    sweep = threshold_sweep(scores, correct, costs)
    n = sweep.parameters.shape[0]
    indices = np.array(data.draw(st.lists(st.integers(0, n - 1), max_size=8)), dtype=np.int64)
    loop = []
    for i in indices:
        thresholds = [float(sweep.parameters[i])] * (n_exits - 1) + [-np.inf]
        exits = [ref_exit(list(scores[j]), thresholds) for j in range(n_samples)]
        counts = np.bincount(exits, minlength=n_exits)
        loop.append(engine.mean_cost_from_counts(counts[None], costs)[0])
    expected = indices[np.asarray(loop) == min(loop)] if loop else indices
    np.testing.assert_array_equal(sweep.cheapest(indices), expected)


@pytest.mark.parametrize("kernels", [False, True])
@given(
    st.sampled_from([np.float32, np.float64, np.int64]).flatmap(_scores),
    st.data(),
)
def test_sweep_of_some_rows_in_place(kernels, scores, data):
    """``rows=`` sweeps those samples where they lie (a certified split, no copies): the
    per-sample reference's candidates on ``scores[rows]``, and the copy's sweep move for move
    (exit counts and lost counts of every candidate), also across chunks and for arrays in
    Fortran order."""
    n_samples, n_exits = scores.shape
    rows = np.flatnonzero(data.draw(arrays(np.bool_, n_samples), label="on"))
    assume(rows.size > 0)  # a split leaves samples on both sides
    correct = data.draw(arrays(np.bool_, scores.shape), label="correct")
    costs = np.cumsum(data.draw(arrays(np.float64, n_exits, elements=st.floats(0.1, 5))))
    chunk = data.draw(st.sampled_from([targets._CHUNK_ELEMENTS, 2 * n_exits]), label="chunk")
    if data.draw(st.booleans(), label="Fortran order"):  # read through C-ordered copies
        scores, correct = np.asfortranarray(scores), np.asfortranarray(correct)
    saved = targets._CHUNK_ELEMENTS
    try:
        targets._CHUNK_ELEMENTS = chunk
        with kernels_as(kernels):
            sweep = threshold_sweep(scores, correct, costs, rows=rows)
            copy = threshold_sweep(scores[rows], correct[rows], costs)
    finally:
        targets._CHUNK_ELEMENTS = saved
    parameters, mean_costs, n_correct = ref_threshold_sweep(scores[rows], correct[rows], costs)
    assert sweep.n_samples == rows.shape[0]
    np.testing.assert_array_equal(sweep.parameters, parameters)
    np.testing.assert_array_equal(sweep.n_correct, n_correct)
    np.testing.assert_allclose(sweep.mean_costs, mean_costs, rtol=1e-12)
    everything = np.arange(len(sweep))
    np.testing.assert_array_equal(sweep.exit_counts(everything), copy.exit_counts(everything))
    np.testing.assert_array_equal(sweep.n_lost(), copy.n_lost())


def test_sweep_is_independent_of_the_chunk_size(monkeypatch):
    """Records are found chunk by chunk; the result does not depend on the chunking."""
    import eeopt.targets as targets

    rng = np.random.default_rng(3)
    scores = rng.random((5000, 6)).astype(np.float32)
    correct = rng.random((5000, 6)) < 0.5
    costs = np.arange(1.0, 7.0)
    whole = threshold_sweep(scores, correct, costs)
    monkeypatch.setattr(targets, "_CHUNK_ELEMENTS", 60)
    monkeypatch.setattr(targets, "_BLOCK_MOVES", 97)
    pieces = threshold_sweep(scores, correct, costs)
    np.testing.assert_array_equal(whole.parameters, pieces.parameters)
    np.testing.assert_array_equal(whole.n_correct, pieces.n_correct)
    np.testing.assert_array_equal(whole.mean_costs, pieces.mean_costs)
    reversed_order = pieces.exit_counts([-1, 5, 0])[::-1]
    np.testing.assert_array_equal(whole.exit_counts([0, 5, -1]), reversed_order)
    np.testing.assert_array_equal(pieces.n_lost(), whole.n_lost())
    np.testing.assert_array_equal(pieces.n_lost(50), whole.n_lost()[:50])


@pytest.mark.parametrize("pair_bins, kernels", [(0, False), (1 << 30, False), (0, True)])
def test_exit_counts_of_every_candidate_both_ways(monkeypatch, pair_bins, kernels):
    """Counts are rebuilt from the moves by (segment, move code) for small blocks and by
    (segment, exit) for large ones; both give the per-sample loop's counts for every
    candidate, in any order and with repeats, across several blocks."""
    import eeopt.targets as targets

    rng = np.random.default_rng(5)
    n_samples, n_exits = 200, 5
    scores = rng.random((n_samples, n_exits)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.3] = 0.5  # ties: several moves per candidate
    correct = rng.random((n_samples, n_exits)) < 0.5
    sweep = threshold_sweep(scores, correct, np.arange(1.0, n_exits + 1))
    monkeypatch.setattr(targets, "_PAIR_BINS", pair_bins)
    monkeypatch.setattr(targets, "_COUNT_BLOCK", 37)
    monkeypatch.setattr(targets, "_BLOCK_MOVES", 7)  # one candidate's moves in pieces
    monkeypatch.setattr(targets, "_KERNELS", kernels)  # or in one compiled pass
    indices = rng.permutation(np.r_[np.arange(len(sweep)), np.arange(0, len(sweep), 3)])
    for row, i in zip(sweep.exit_counts(indices), indices, strict=True):
        thresholds = [float(sweep.parameters[i])] * (n_exits - 1) + [-np.inf]
        exits = [ref_exit(list(scores[j]), thresholds) for j in range(n_samples)]
        expected = np.bincount(exits, minlength=n_exits)
        np.testing.assert_array_equal(row, expected)
        np.testing.assert_array_equal(sweep.exit_counts([i])[0], expected)


def test_sweep_with_more_exits_than_a_16_bit_move_code():
    """Above 256 exits a move code (new * n_exits + old) needs 32 bits; the counts and mean
    costs still equal a per-sample loop's."""
    rng = np.random.default_rng(0)
    n_samples, n_exits = 40, 300
    scores = np.sort(rng.random((n_samples, n_exits)), axis=1).astype(np.float32)
    correct = rng.random((n_samples, n_exits)) < 0.5
    costs = np.arange(1.0, n_exits + 1)
    sweep = threshold_sweep(scores, correct, costs)
    indices = np.arange(0, len(sweep), 7)
    for row, i in zip(sweep.exit_counts(indices), indices, strict=True):
        thresholds = [float(sweep.parameters[i])] * (n_exits - 1) + [-np.inf]
        exits = [ref_exit(list(scores[j]), thresholds) for j in range(n_samples)]
        np.testing.assert_array_equal(row, np.bincount(exits, minlength=n_exits))
        assert sweep.mean_costs[i] == pytest.approx(costs[exits].mean(), rel=1e-12)


def test_exit_counts_rejects_bad_indices():
    scores = np.array([[0.5, 1.0]], np.float32)
    sweep = threshold_sweep(scores, np.ones((1, 2), bool), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="indices"):
        sweep.exit_counts([5])
    with pytest.raises(TypeError, match="indices"):
        sweep.exit_counts([0.5])


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_kernels_sweep_bit_for_bit_as_the_numpy_passes(dtype):
    """The compiled kernels (here as Python unless numba is installed) give the numpy passes'
    candidates, costs (the same additions in the same order), counts and lost counts bit for
    bit, with ties, -0.0 beside +0.0, infinities and negatives, across several chunks."""
    rng = np.random.default_rng(11)
    n_samples, n_exits = 700, 6
    values = np.array([0.0, -0.0, 0.25, 0.5, 1.0, -1.0, np.inf, -np.inf])
    if dtype == np.int32:
        values = np.arange(-3, 5)
    scores = rng.choice(values, size=(n_samples, n_exits)).astype(dtype)
    scores[: n_samples // 2] = rng.random((n_samples // 2, n_exits)).astype(dtype)
    correct = rng.random((n_samples, n_exits)) < 0.6
    costs = np.cumsum(rng.random(n_exits) + 0.1)
    sweeps = []
    for flag in (False, True):
        with kernels_as(flag):
            targets._CHUNK_ELEMENTS, saved = 600, targets._CHUNK_ELEMENTS  # several chunks
            try:
                sweep = threshold_sweep(scores, correct, costs)
                everything = np.arange(len(sweep))
                sweeps.append((sweep, sweep.exit_counts(everything), sweep.n_lost()))
                np.testing.assert_array_equal(sweep.n_lost(40), sweeps[-1][2][:40])
            finally:
                targets._CHUNK_ELEMENTS = saved
    (numpy, numpy_counts, numpy_lost), (kernel, kernel_counts, kernel_lost) = sweeps
    for name in ("parameters", "mean_costs", "n_correct"):
        np.testing.assert_array_equal(getattr(kernel, name), getattr(numpy, name), err_msg=name)
    np.testing.assert_array_equal(kernel.moves.ends, numpy.moves.ends)
    np.testing.assert_array_equal(kernel_counts, numpy_counts)
    np.testing.assert_array_equal(kernel_lost, numpy_lost)


@pytest.mark.parametrize("kernels", [False, True])
@given(
    st.lists(st.integers(0, 7), max_size=60),
    st.lists(st.integers(0, 60), max_size=12),
    st.integers(1, 9),
    st.booleans(),
)
def test_running_sums_read_at_the_stops(kernels, values, stops, block, floats):
    """_cumulative(values, stops, lookup, initial)[r] is initial plus lookup[values[i]] over
    i < stops[r] (a loop), for stops at 0, repeated stops and any block size, reading no
    further than the last stop."""
    values = np.array(values, dtype=np.uint8)
    stops = np.sort(np.minimum(np.array(stops, dtype=np.int64), values.shape[0]))
    lookup = np.array([0.5, -1.25, 3.0, 0.1, 2.0, -0.3, 7.0, 0.0]) if floats else _TABLE
    initial = np.float64(2.5) if floats else np.int64(-4)
    expected = []
    for stop in stops:
        total = initial
        for value in values[:stop]:
            total = total + lookup[value]  # in sequence, as the sweep adds
        expected.append(total)
    saved = targets._BLOCK_MOVES
    targets._BLOCK_MOVES = block
    try:
        with kernels_as(kernels):
            got = targets._cumulative(values, stops, lookup, initial)
    finally:
        targets._BLOCK_MOVES = saved
    assert got.dtype == type(initial)
    np.testing.assert_array_equal(got, np.array(expected, dtype=type(initial)))


_TABLE = np.array([3, -1, 0, 2, -5, 1, 4, -2], dtype=np.int64)


def test_mean_costs_near_a_level_are_exact_there():
    """Running-sum costs elsewhere, the engine's exact figure within rounding of the level:
    each candidate compares with the level as its evaluation does."""
    val = eeopt.datasets.load("mnist1d", "val")
    costs = np.cumsum(np.random.default_rng(0).uniform(0.1, 1.3, val.n_exits))
    sweep = eeopt.candidates(val.replace(costs=costs), "maxprob").sweep
    indices = np.arange(len(sweep))
    exact = sweep.exact_mean_costs(indices)
    assert np.any(sweep.mean_costs != exact)  # running sums round differently here
    for i in (1, len(sweep) // 3, len(sweep) - 1):
        got = sweep.mean_costs_near(indices, float(exact[i]))
        close = np.abs(sweep.mean_costs - exact[i]) <= 1e-9 * max(abs(exact[i]), 1.0)
        np.testing.assert_array_equal(got[close], exact[close])
        np.testing.assert_array_equal(got[~close], sweep.mean_costs[~close])
        assert np.array_equal(got <= exact[i], exact <= exact[i])


@pytest.mark.parametrize("kernels", [False, True], ids=["numpy", "kernels"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_first_lost_values_follow_each_sample_down_the_thresholds(kernels, dtype):
    """A per-sample loop over falling thresholds: the highest threshold at which the exit
    the sample takes is lost (+inf at the last exit, -inf never)."""
    rng = np.random.default_rng(4)
    scores = rng.choice([-0.0, 0.0, 0.2, 0.5, 0.7, 1.0], size=(300, 5)).astype(dtype)
    lost = rng.random((300, 5)) < 0.3
    with kernels_as(kernels):
        got = targets.first_lost_values(scores, lost)
    for n in range(300):
        expected = np.inf if lost[n, -1] else -np.inf
        if not lost[n, -1]:
            for tau in sorted(set(scores[n, :-1].tolist()), reverse=True):
                exit_ = ref_exit(scores[n].tolist(), [tau] * 4 + [-np.inf])
                if lost[n, exit_]:
                    expected = tau
                    break
        assert got[n] == expected, n
    with kernels_as(kernels):  # one exit: lost there or never
        one = targets.first_lost_values(scores[:, :1], lost[:, :1])
    np.testing.assert_array_equal(one, np.where(lost[:, 0], np.inf, -np.inf))


@pytest.mark.parametrize("kernels", [False, True], ids=["numpy", "kernels"])
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 25), st.integers(1, 5)),
        elements=st.sampled_from(_VALUES + [0.7]),
    ),
    st.data(),
)
def test_first_lost_values_among_given_thresholds(kernels, scores, data):
    """Among given thresholds (those tested, not the samples' own records): a per-sample loop
    down those thresholds, the first at which the exit it takes is lost (-inf: none), with
    thresholds between, at and beyond the scores, repeated, infinite."""
    n_samples, n_exits = scores.shape
    lost = data.draw(arrays(np.bool_, scores.shape), label="lost")
    pool = [np.inf, 1.0, 0.8, 0.7, 0.6, 0.5, 0.3, 0.25, 0.0, -0.0, -0.5, -1.0, -np.inf]
    among = np.array(data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=8)))
    among = np.sort(among)[::-1].copy()
    with kernels_as(kernels):
        got = targets.first_lost_values(scores, lost, among=among)
    for n in range(n_samples):
        expected = -np.inf
        for tau in among:
            if lost[n, ref_exit(scores[n].tolist(), [tau] * (n_exits - 1) + [-np.inf])]:
                expected = tau
                break
        assert got[n] == expected, (n, scores[n], lost[n], among)
    with kernels_as(kernels):
        assert np.all(targets.first_lost_values(scores, lost, among=among[:0]) == -np.inf)
        # Some rows, read where they lie (a split's test part), across blocks.
        rows = np.flatnonzero(data.draw(arrays(np.bool_, n_samples), label="rows"))
        saved, targets._CHUNK_ELEMENTS = targets._CHUNK_ELEMENTS, 2 * n_exits
        try:
            some = targets.first_lost_values(scores, lost, among=among, rows=rows)
        finally:
            targets._CHUNK_ELEMENTS = saved
    np.testing.assert_array_equal(some, got[rows])


@pytest.mark.parametrize("kernels", [False, True], ids=["numpy", "kernels"])
def test_first_lost_values_among_thresholds_by_hand(kernels):
    """A record's exit takes the thresholds above the record before it: at 0.5 the first
    sample leaves at exit 0 (0.5 >= 0.5), not at its lost record 0.7 (-inf); at 0.6 it
    leaves at 0.7's exit (lost: 0.6). The second is lost at the last exit, which takes the
    thresholds above 0.9 only."""
    scores = np.array([[0.5, 0.7, 0.2], [0.9, 0.1, 0.3]], dtype=np.float32)
    lost = np.array([[False, True, False], [False, False, True]])
    cases = [
        ([0.5], [-np.inf, -np.inf]),
        ([0.6, 0.5], [0.6, -np.inf]),
        ([1.0, 0.95], [-np.inf, 1.0]),
    ]
    cases.append(([np.inf, 0.5], [-np.inf, np.inf]))
    for among, expected in cases:
        with kernels_as(kernels):
            got = targets.first_lost_values(scores, lost, among=np.array(among))
        np.testing.assert_array_equal(got, expected, err_msg=str(among))


def _non_dominated_by_sorting(costs, accuracies):
    order = np.lexsort((-accuracies, costs))
    best = np.maximum.accumulate(accuracies[order])
    return order[accuracies[order] > np.r_[-np.inf, best[:-1]]]


@given(
    st.integers(0, 10_000),
    st.integers(0, 60),
    st.booleans(),
    st.sampled_from([3, 1000]),
    st.sampled_from(["accuracies", "costs", "neither"]),
    st.sampled_from([1, 4, 1 << 16]),
)
def test_non_dominated_along_a_monotone_coordinate_is_the_sorted_answer(
    seed, n, rising, levels, monotone, block
):
    """One coordinate strictly monotone along the index (a path's costs; the accuracies in
    Pareto testing's risk order): the running-extreme answer, block by block, is the sorted
    one, order included; ties in the other coordinate too."""
    rng = np.random.default_rng(seed)
    other = rng.integers(0, levels, n).astype(float)
    strict = np.sort(rng.choice(10 * n + 1, n, replace=False).astype(float))
    if not rising:
        strict = strict[::-1].copy()
    costs, accuracies = (other, strict) if monotone == "accuracies" else (strict, other)
    if monotone == "neither":
        costs = other
    saved, targets._FRONT_BLOCK = targets._FRONT_BLOCK, block
    try:
        got = targets.non_dominated(costs, accuracies)
    finally:
        targets._FRONT_BLOCK = saved
    np.testing.assert_array_equal(got, _non_dominated_by_sorting(costs, accuracies))


@given(
    st.lists(st.sampled_from([np.inf, 1.0, 0.5, 0.0, -0.0, -1.0, -np.inf]), max_size=40),
    st.lists(st.sampled_from([np.inf, 2.0, 1.0, 0.75, 0.5, 0.0, -0.0, -3.0, -np.inf]), max_size=9),
)
def test_deciding_alike_is_the_last_candidate_at_least_as_high(values, queries):
    """A threshold decides as the last candidate at least as high (-1: none is), found by a
    binary search over the decreasing thresholds: a loop over the candidates agrees, with
    ties, signed zeros and infinities."""
    parameters = np.sort(np.array(values, dtype=np.float64))[::-1].copy()
    sweep = targets.Sweep(
        parameters, np.zeros(parameters.shape), np.zeros(parameters.shape, np.int64), 1
    )
    expected = [max([i for i, p in enumerate(parameters) if p >= q], default=-1) for q in queries]
    found = sweep.deciding_alike(queries)
    assert found.dtype == np.int64
    np.testing.assert_array_equal(found, np.array(expected, dtype=np.int64))
