import json

import numpy as np
from conftest import make_multi_exit
from hypothesis import given
from hypothesis import strategies as st

import eeopt

METHOD_ARGS = [
    ("maxprob", {"budget": 0.25}),
    ("entropy", {}),
    ("margin", {"threshold": [np.inf, 0.3, 0.2]}),
    ("patience", {"patience": 2}),
    ("msdnet", {"budget": 0.2}),
]


def test_json_round_trip_is_exact_for_every_method(tmp_path):
    logits, labels = make_multi_exit(n=300, n_exits=4, seed=2)
    for method, options in METHOD_ARGS:
        policy = eeopt.fit(logits, labels, costs=[0.1, 0.2, 0.3, 0.7], method=method, **options)
        path = tmp_path / f"{method}.json"
        policy.save(path)
        back = eeopt.load_policy(path)
        assert type(back) is type(policy) and back.method == method
        np.testing.assert_array_equal(back.thresholds_, policy.thresholds_)
        np.testing.assert_array_equal(back.costs_, policy.costs_)
        np.testing.assert_array_equal(back.exit_index(logits), policy.exit_index(logits))
        assert back.to_dict() == policy.to_dict()
        json.loads(path.read_text())  # strict JSON: no NaN/Infinity tokens


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


def _policies(logits, labels):
    import eeopt.methods as methods

    out = []
    budget = 3.5  # reachable by every method, patience included
    for name in methods.method_names():
        options = {"budget": budget}
        out.append(eeopt.fit(logits, labels, method=name, **options))
    return out


def test_scores_are_causal_for_every_method():
    """The score at exit k uses exits 0..k only: what early-exit inference can see."""
    logits, labels = make_multi_exit(n=300, n_exits=4, seed=6)
    data = eeopt.ExitData.from_logits(logits, labels)
    for policy in _policies(logits, labels):
        full = policy.compute_scores(data)
        for k in range(data.n_exits):
            prefix = policy.prefix_scores(np.ascontiguousarray(data.probs[:, : k + 1]))
            np.testing.assert_allclose(prefix, full[:, : k + 1], err_msg=policy.method)
