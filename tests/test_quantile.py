import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from reference import ref_quantile_thresholds

import eeopt
from eeopt import engine
from eeopt.quantile import exit_counts


def _fractions(draw, n_exits):
    raw = np.array(draw(st.lists(st.integers(0, 5), min_size=n_exits, max_size=n_exits)), float)
    if raw.sum() == 0:
        raw[-1] = 1
    return raw / raw.sum()


@given(
    st.integers(2, 5).flatmap(
        lambda k: arrays(np.float64, st.tuples(st.integers(1, 40), st.just(k)),
                         elements=st.sampled_from([0.0, 0.1, 0.2, 0.5, 0.9, 1.0]))
    ),
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
