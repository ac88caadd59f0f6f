import numpy as np
from conftest import tied_scores
from hypothesis import given
from hypothesis import strategies as st
from reference import ref_quantile_assignment, ref_quantile_thresholds

import eeopt
from eeopt import engine
from eeopt.quantile import exit_counts, quantile_assignment, thresholds_from_counts


def _fractions(draw, n_exits):
    raw = np.array(draw(st.lists(st.integers(0, 5), min_size=n_exits, max_size=n_exits)), float)
    if raw.sum() == 0:
        raw[-1] = 1
    return raw / raw.sum()


@given(
    tied_scores([0.0, 0.1, 0.2, 0.5, 0.9, 1.0]),
    st.data(),
)
def test_quantile_thresholds_match_the_reference_with_ties(scores, data):
    fractions = _fractions(data.draw, scores.shape[1])
    got = eeopt.quantile_thresholds(scores, fractions)
    np.testing.assert_array_equal(got, ref_quantile_thresholds(scores, fractions))


def test_each_exit_gets_its_share_without_ties():
    rng = np.random.default_rng(0)
    scores = rng.random((1000, 4))
    fractions = np.array([0.1, 0.2, 0.3, 0.4])
    exits = engine.first_exit(scores, eeopt.quantile_thresholds(scores, fractions))
    np.testing.assert_array_equal(np.bincount(exits, minlength=4), [100, 200, 300, 400])


def test_zero_fraction_disables_the_exit():
    scores = np.random.default_rng(1).random((20, 3))
    thresholds = eeopt.quantile_thresholds(scores, [0.0, 0.5, 0.5])
    assert thresholds[0] == np.inf and thresholds[-1] == -np.inf


def test_counts_floor_and_give_the_rest_to_the_last_exit():
    np.testing.assert_array_equal(exit_counts(np.array([0.3, 0.3, 0.4]), 10), [3, 3, 4])
    np.testing.assert_array_equal(exit_counts(np.array([0.33, 0.33, 0.34]), 10), [3, 3, 4])


@given(
    tied_scores([0.0, 0.25, 0.5, 1.0]),
    st.data(),
)
def test_exit_rule_reproduces_the_per_sample_assignment_with_ties(scores, data):
    """first_exit with the quantile thresholds sends every sample where section 6 assigns it."""
    fractions = _fractions(data.draw, scores.shape[1])
    counts = exit_counts(fractions, scores.shape[0])
    exits = engine.first_exit(scores, eeopt.quantile_thresholds(scores, fractions))
    np.testing.assert_array_equal(exits, ref_quantile_assignment(scores, list(counts)))


@given(
    tied_scores([0.0, 0.5, 1.0]),
    st.data(),
)
def test_ties_only_move_samples_to_earlier_exits(scores, data):
    """Realised cumulative counts dominate the requested ones, so the realised mean cost is at
    most the cost of the counts (what EENet's and MSDNet's budget guarantees rest on)."""
    n_samples, n_exits = scores.shape
    counts = exit_counts(_fractions(data.draw, n_exits), n_samples)
    exits = engine.first_exit(scores, thresholds_from_counts(scores, counts))
    realised = np.bincount(exits, minlength=n_exits)
    assert (np.cumsum(realised) >= np.cumsum(counts)).all()
    costs = np.cumsum(np.arange(1.0, n_exits + 1))
    assert engine.mean_cost(exits, costs) <= engine.mean_cost_from_counts(counts, costs) + 1e-12


def test_no_early_exit_when_every_early_count_is_zero():
    scores = np.random.default_rng(2).random((10, 4))
    thresholds = thresholds_from_counts(scores, np.array([0, 0, 0, 10]))
    np.testing.assert_array_equal(thresholds, [np.inf, np.inf, np.inf, -np.inf])
    assert (engine.first_exit(scores, thresholds) == 3).all()


def test_a_count_larger_than_the_pool_takes_everyone_left():
    scores = np.array([[0.9, 0.1, 0.0], [0.8, 0.7, 0.0], [0.1, 0.2, 0.0]])
    thresholds = thresholds_from_counts(scores, np.array([2, 3, 0]))
    np.testing.assert_array_equal(engine.first_exit(scores, thresholds), [0, 0, 1])
    assert thresholds[1] == 0.2


@given(
    tied_scores([0.0, 0.25, 0.5, 1.0]),
    st.data(),
)
def test_assignment_reports_the_counts_the_exit_rule_realises(scores, data):
    """quantile_assignment's realised counts are those of first_exit with its thresholds."""
    counts = exit_counts(_fractions(data.draw, scores.shape[1]), scores.shape[0])
    thresholds, realised = quantile_assignment(scores, counts)
    # the exit rule with these thresholds realises exactly the reported counts
    exits_by_rule = engine.first_exit(scores, thresholds)
    np.testing.assert_array_equal(np.bincount(exits_by_rule, minlength=scores.shape[1]), realised)
    by_exit = quantile_assignment(np.ascontiguousarray(scores.T), counts, by_exit=True)
    np.testing.assert_array_equal(by_exit[0], thresholds)
    np.testing.assert_array_equal(by_exit[1], realised)
    exits = ref_quantile_assignment(scores, list(counts))
    np.testing.assert_array_equal(realised, np.bincount(exits, minlength=scores.shape[1]))


@given(
    tied_scores([-0.0, 0.0, 0.25, 0.5, 1.0]),
    st.data(),
)
def test_assignment_fills_each_samples_exit_and_the_largest_score_that_stays(scores, data):
    """exit_of is the per-sample assignment of the reference; stay_max the largest score at
    exit k among the samples that reach it and stay (a per-sample loop)."""
    n, n_exits = scores.shape
    drawn = st.lists(st.integers(0, n + 1), min_size=n_exits, max_size=n_exits)
    counts = np.array(data.draw(drawn))
    exit_of, stay_max = np.full(n, 99, dtype=np.int8), np.full(n_exits, 7.0)
    quantile_assignment(scores, counts, exit_of=exit_of, stay_max=stay_max)
    expected = np.array(ref_quantile_assignment(scores, list(counts)))
    np.testing.assert_array_equal(exit_of, expected)
    for k in range(n_exits - 1):
        staying = [scores[i, k] for i in range(n) if expected[i] > k]
        assert stay_max[k] == (max(staying) if staying else -np.inf)
