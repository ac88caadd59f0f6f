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


def test_evaluate_uses_the_data_own_costs_unless_told_otherwise():
    val, test = eeopt.datasets.load_both("digits")
    policy = eeopt.fit(val, method="maxprob", budget=float(val.costs[2]))
    seconds = np.asarray(test.metadata["costs_seconds"])
    exits = policy.exit_index(test)
    in_seconds = policy.evaluate(test.with_costs(seconds))
    assert in_seconds.mean_cost == pytest.approx(seconds[exits].mean())
    np.testing.assert_array_equal(in_seconds.costs, seconds)
    assert policy.evaluate(test).mean_cost == pytest.approx(test.costs[exits].mean())
    told = policy.evaluate(test, costs=seconds)  # an explicit choice wins over the data's
    np.testing.assert_array_equal(told.costs, seconds)
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


def _policy_dict(method="beem-a"):
    logits, labels = make_multi_exit(n=200, n_exits=4, seed=3)
    return eeopt.fit(logits, labels, method=method, budget=2.5, verbose=False).to_dict()


@pytest.mark.parametrize(
    "method, edit, match",
    [
        ("maxprob", lambda d: d.update(thresholds=[float("nan"), 0.5, 0.5, "-inf"]), "NaN"),
        ("maxprob", lambda d: d.update(thresholds=["Infinity", 0.5, 0.5, "-inf"]), "thresholds"),
        ("maxprob", lambda d: d.update(thresholds=[0.5, 0.5, "-inf"]), "expected 4"),
        ("maxprob", lambda d: d.update(thresholds=[0.5, 0.5, 0.5, 0.1]), "end with '-inf'"),
        ("maxprob", lambda d: d.update(costs=[1.0, 3.0, 2.0, 4.0]), "non-decreasing"),
        ("maxprob", lambda d: d.update(costs=[1.0, 2.0, 3.0, "inf"]), "finite numbers"),
        ("maxprob", lambda d: d.update(format_version=99), "format_version"),
        ("maxprob", lambda d: d.pop("costs"), "'costs' is missing"),
        ("maxprob", lambda d: d.update(n_classes=True), "n_classes"),
        ("maxprob", lambda d: d.update(method=3), "'method' must be a string"),
        ("maxprob", lambda d: d.update(params={"score": "confidence"}), "params.score"),
        ("maxprob", lambda d: d.update(fit_info=[1]), "'fit_info' must be an object"),
        ("beem-a", lambda d: d["params"].update(weights=[1.0, 2.0]), "params.weights"),
        ("beem-a", lambda d: d["params"].update(weights=[1.0, -2.0, 1, 1]), "non-negative"),
        ("beem-a", lambda d: d["params"].update(reset="sometimes"), "params.reset"),
        ("beem-a", lambda d: d["params"].pop("weights"), "'weights' is missing"),
        ("maxprob", lambda d: d.update(policy_class="Nope"), "policy_class"),
    ],
)
def test_corrupted_policy_files_name_the_field(tmp_path, method, edit, match):
    d = _policy_dict(method)
    edit(d)
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(d))  # json writes NaN as a bare NaN token, as a hand edit might
    with pytest.raises(ValueError, match=match):
        eeopt.load_policy(path)


def test_corrupted_eenet_coefficients_are_refused():
    from eeopt.policy import policy_from_dict

    logits, labels = make_multi_exit(n=120, n_exits=3, seed=1)
    d = eeopt.fit(
        logits, labels, method="eenet", budget=2.0, max_iter=5, verbose=False, random_state=0
    ).to_dict()
    d["params"]["coefs"][1] = d["params"]["coefs"][1][:-1]
    with pytest.raises(ValueError, match=r"params.coefs\[1\]"):
        policy_from_dict(d)
    d["params"]["coefs"] = d["params"]["coefs"][:2]
    with pytest.raises(ValueError, match="params.coefs"):
        policy_from_dict(d)
