import json

import numpy as np
import pytest
from conftest import make_multi_exit
from hypothesis import given
from hypothesis import strategies as st

import eeopt


@given(st.lists(st.one_of(st.floats(allow_nan=False), st.just(np.inf)), min_size=1, max_size=5))
def test_thresholds_round_trip_bit_for_bit(values):
    from eeopt.policy import ScorePolicy, policy_from_dict

    thresholds = np.array([*values, -np.inf])
    costs = np.arange(1.0, thresholds.size + 1)
    policy = ScorePolicy("maxprob", thresholds, costs, 3, score="maxprob")
    back = policy_from_dict(json.loads(json.dumps(policy.to_dict())))
    np.testing.assert_array_equal(back.thresholds_, thresholds)


def test_predict_is_the_argmax_at_the_exit():
    logits, labels = make_multi_exit(n=100)
    policy = eeopt.fit(logits, labels, method="maxprob", threshold=0.6)
    exits = policy.exit_index(logits)
    np.testing.assert_array_equal(
        policy.predict(logits), logits[np.arange(100), exits].argmax(axis=1)
    )


def test_evaluate_with_other_costs():
    logits, labels = make_multi_exit(n=100)
    policy = eeopt.fit(logits, labels, method="maxprob", threshold=0.6)
    exits = policy.exit_index(logits)
    other = np.array([2.0, 3.0, 5.0, 9.0])
    assert policy.evaluate(logits, labels, costs=other).mean_cost == other[exits].mean()


def test_fit_info_records_the_target_and_fit_metrics():
    logits, labels = make_multi_exit(n=100)
    policy = eeopt.fit(logits, labels, method="maxprob", budget=2.0)
    info = policy.fit_info_
    assert info["target"] == "budget" and info["budget"] == 2.0
    assert info["fit_mean_cost"] <= 2.0 and 0 <= info["fit_accuracy"] <= 1


def test_evaluate_uses_the_data_own_costs_and_refuses_a_conflict():
    val, test = eeopt.datasets.load_both("digits")
    policy = eeopt.fit(val, method="maxprob", budget=float(val.costs[2]))
    seconds = np.asarray(test.metadata["costs_seconds"])
    exits = policy.exit_index(test)
    in_seconds = policy.evaluate(test.with_costs(seconds))
    assert in_seconds.mean_cost == pytest.approx(seconds[exits].mean())
    np.testing.assert_array_equal(in_seconds.costs, seconds)
    assert policy.evaluate(test).mean_cost == pytest.approx(test.costs[exits].mean())
    with pytest.raises(ValueError, match="differ from the data's own costs"):
        policy.evaluate(test, costs=seconds)
    # Arrays (or an ExitData without costs) carry no costs: the policy's are used.
    bare = policy.evaluate(test.probs, test.labels)
    np.testing.assert_array_equal(bare.costs, policy.costs_)
    assert policy.evaluate(test.probs, test.labels, costs=seconds).mean_cost == pytest.approx(
        seconds[exits].mean()
    )


def test_score_is_the_accuracy_as_in_scikit_learn():
    logits, labels = make_multi_exit(n=200)
    policy = eeopt.fit(logits, labels, method="maxprob", threshold=0.6)
    expected = np.mean(policy.predict(logits) == labels)
    assert policy.score(logits, labels) == expected
    assert policy.score_name == "maxprob"
    with pytest.raises(ValueError, match="labels"):
        policy.score(logits)
