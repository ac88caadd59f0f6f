import numpy as np
import pytest
from conftest import make_multi_exit
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from reference import ref_evaluate, ref_exit

import eeopt
from eeopt import engine

scores_arrays = st.integers(1, 6).flatmap(
    lambda k: arrays(
        np.float64, st.tuples(st.integers(1, 30), st.just(k)), elements=st.floats(0, 1, width=32)
    )
)


@given(scores_arrays, st.data())
def test_first_exit_matches_the_per_sample_rule(scores, data):
    n_exits = scores.shape[1]
    thresholds = np.array(
        data.draw(
            st.lists(
                st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, np.inf]),
                min_size=n_exits,
                max_size=n_exits,
            )
        )
    )
    got = engine.first_exit(scores, thresholds)
    expected = [ref_exit(list(row), list(thresholds)) for row in scores]
    np.testing.assert_array_equal(got, expected)


@given(scores_arrays, st.floats(0, 1))
def test_fractions_sum_to_one_and_cost_is_in_range(scores, tau):
    n_exits = scores.shape[1]
    costs = np.cumsum(np.arange(1, n_exits + 1, dtype=float))
    exits = engine.first_exit(scores, np.full(n_exits, tau))
    result = engine.evaluate_exits(
        exits, np.zeros_like(exits)[:, None].repeat(n_exits, 1), None, costs
    )
    assert result.exit_fractions.sum() == pytest.approx(1.0)
    assert costs[0] <= result.mean_cost <= costs[-1]
    assert result.mean_cost == pytest.approx(costs[exits].mean())


@given(scores_arrays, st.floats(0, 1), st.floats(0, 1))
def test_raising_a_global_threshold_never_lowers_the_mean_cost(scores, a, b):
    low, high = sorted((a, b))
    n_exits = scores.shape[1]
    costs = np.arange(1, n_exits + 1, dtype=float)
    cost_low = engine.mean_cost(engine.first_exit(scores, np.full(n_exits, low)), costs)
    cost_high = engine.mean_cost(engine.first_exit(scores, np.full(n_exits, high)), costs)
    assert cost_high >= cost_low


def test_evaluate_matches_a_per_sample_loop():
    logits, labels = make_multi_exit(n=300, n_exits=5, n_classes=6, seed=4)
    costs = [1.0, 1.5, 2.5, 4.0, 6.0]
    data = eeopt.ExitData.from_logits(logits, labels, costs)
    for threshold in (0.3, 0.6, 0.9):
        policy = eeopt.fit(data, method="maxprob", threshold=threshold)
        result = policy.evaluate(data)
        ref = ref_evaluate(data.probs, labels, costs, data.maxprob, policy.thresholds_)
        assert result.accuracy == pytest.approx(ref["accuracy"])
        assert result.mean_cost == pytest.approx(ref["mean_cost"])
        np.testing.assert_allclose(result.exit_fractions, ref["exit_fractions"])
        assert result.speedup == pytest.approx(costs[-1] / ref["mean_cost"])


def test_result_to_dict_and_repr():
    logits, labels = make_multi_exit(n=50)
    result = eeopt.fit(logits, labels, method="maxprob", threshold=0.5).evaluate(logits, labels)
    d = result.to_dict()
    assert set(d) >= {"accuracy", "mean_cost", "speedup", "exit_fractions"}
    assert "exit_index" not in d and len(result.to_dict(True)["exit_index"]) == 50
    assert "speedup" in repr(result)


def test_single_exit_model_always_exits_at_zero():
    exits = engine.first_exit(np.zeros((4, 1)), np.array([-np.inf]))
    np.testing.assert_array_equal(exits, 0)


@given(
    st.lists(st.integers(0, 10**6), min_size=2, max_size=8),
    st.lists(st.floats(1e-9, 1e12), min_size=8, max_size=8),
    st.booleans(),
)
def test_mean_cost_is_the_exact_mean_rounded_once(counts, raw_costs, equal):
    from fractions import Fraction

    from eeopt.engine import mean_cost_from_counts

    counts = np.array(counts)
    if counts.sum() == 0:
        counts[0] = 1
    costs = np.sort(np.array(raw_costs[: counts.shape[0]]))
    if equal:
        costs[:] = costs[0]
    exact = sum(Fraction(int(c)) * Fraction(float(x)) for c, x in zip(counts, costs, strict=True))
    assert float(mean_cost_from_counts(counts, costs)) == float(exact / int(counts.sum()))
    # The same row among many gives the same float.
    rows = np.stack([counts, counts[::-1], counts])
    assert mean_cost_from_counts(rows, costs)[2] == mean_cost_from_counts(counts, costs)
