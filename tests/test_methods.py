"""The method contract, checked once for every registered method.

Each property holds for every method of the registry: a budget is never exceeded and nothing on
the method's candidate path within it is more accurate; an accuracy target holds on the fitting
data; JSON round trips are exact; scores are causal; direct settings need no labels; unknown
options are named; ``fit_params_`` fits the same policy again. Per-method files keep what is
specific to one method (its reference loops, the completeness of its path).
"""

import json

import numpy as np
import pytest
from conftest import budget_at, make_multi_exit
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ref_evaluate

import eeopt
from eeopt.methods import METHODS, method_names

#: Options that keep a method's fit fast on small data.
FAST = {"eenet": {"max_iter": 15, "hidden": 4}}
#: A direct setting that needs no labels, per method (EENet learns from labels: none).
DIRECT = {
    "maxprob": {"threshold": 0.6},
    "entropy": {"threshold": 0.3},
    "margin": {"threshold": [np.inf, 0.3, 0.2]},
    "patience": {"patience": 2},
    "msdnet": {"q": 0.8},
    "beem-c": {"alpha": 1.0},
    "beem-a": {"alpha": [0.5, np.inf, 0.9], "weights": [0.2, 0.5, 0.7, 1.0]},
}
PATH_METHODS = [m for m in method_names() if METHODS[m].candidates is not None]
ACCURACY_METHODS = [m for m in method_names() if "accuracy" in METHODS[m].targets]


def _data(n=120, n_exits=4, seed=0, costs=(1.0, 2.0, 3.5, 4.0)):
    logits, labels = make_multi_exit(n=n, n_exits=n_exits, n_classes=4, seed=seed)
    return eeopt.ExitData.from_logits(logits, labels, costs)


def _fit(data, method, **options):
    return eeopt.fit(
        data, method=method, verbose=False, random_state=0, **FAST.get(method, {}), **options
    )


def test_every_method_is_covered_here():
    assert set(DIRECT) | {"eenet"} == set(method_names())


@pytest.mark.parametrize("method", PATH_METHODS)
def test_path_outcomes_match_the_reference_loop(method):
    data = _data(n=60, seed=3)
    path = eeopt.candidates(data, method=method, verbose=False)
    assert path.parameter in {d.name for d in METHODS[method].direct}
    exact = path.sweep.exact_mean_costs(np.arange(len(path)))
    for i in np.linspace(0, len(path) - 1, min(len(path), 25)).astype(int):
        policy = path.policy(i)
        scores = policy.compute_scores(data)
        ref = ref_evaluate(data.probs, data.labels, data.costs, scores, policy.thresholds_)
        assert ref["accuracy"] == pytest.approx(path.accuracies[i])
        assert ref["mean_cost"] == pytest.approx(path.mean_costs[i])
        assert exact[i] == policy.evaluate(data).mean_cost  # the engine's figure, bit for bit
        again = _fit(data, method, **{path.parameter: path.parameters[i]})
        np.testing.assert_array_equal(again.exit_index(data), policy.exit_index(data))


@settings(max_examples=12)
@given(seed=st.integers(0, 10_000), share=st.floats(0.0, 1.0))
@pytest.mark.parametrize("method", method_names())
def test_budget_is_never_exceeded_and_nothing_on_the_path_within_it_is_more_accurate(
    method, seed, share
):
    rng = np.random.default_rng(seed)
    costs = np.cumsum(rng.uniform(0.1, 1.0, 4))
    data = _data(n=int(rng.integers(10, 60)), seed=seed, costs=costs)
    budget = budget_at(costs, share)
    try:
        policy = _fit(data, method, budget=budget)
    except eeopt.BudgetUnreachableError as exc:
        assert METHODS[method].candidates is not None and exc.cheapest > budget
        path = eeopt.candidates(data, method=method, verbose=False)
        assert path.sweep.exact_mean_costs(np.arange(len(path))).min() > budget
        return
    result = policy.evaluate(data)
    assert result.mean_cost <= budget
    if METHODS[method].candidates is None:
        return
    path = eeopt.candidates(data, method=method, verbose=False)
    within = path.sweep.exact_mean_costs(np.arange(len(path))) <= budget
    best = path.accuracies[within].max()
    assert result.accuracy == best
    exact = path.sweep.exact_mean_costs(np.flatnonzero(within & (path.accuracies == best)))
    assert result.mean_cost == exact.min()


@pytest.mark.parametrize("method", ACCURACY_METHODS)
@pytest.mark.parametrize("tolerance", [0.0, 0.05])
def test_accuracy_target_holds_and_is_the_cheapest_on_the_path(method, tolerance):
    data = _data(n=150, seed=11)
    policy = _fit(data, method, target="accuracy", tolerance=tolerance)
    result = policy.evaluate(data)
    floor = np.count_nonzero(data.correct[:, -1]) - tolerance * data.n_samples
    assert result.accuracy * data.n_samples >= floor - 1e-9
    path = eeopt.candidates(data, method=method, verbose=False)
    holds = path.accuracies * data.n_samples >= floor - 1e-9
    if method.startswith("beem"):  # spec section 7: BEEM searches the error levels p' <= p
        holds &= path.parameters <= 1 - data.exit_accuracy[-1]
    assert result.mean_cost == path.sweep.exact_mean_costs(np.flatnonzero(holds)).min()


@pytest.mark.parametrize("method", method_names())
def test_json_round_trip_is_exact(method, tmp_path):
    data = _data(n=150, seed=12)
    policy = _fit(data, method, budget=3.0)
    path = tmp_path / f"{method}.json"
    policy.save(path)
    back = eeopt.load_policy(path)
    assert type(back) is type(policy) and back.method == method
    assert json.dumps(back.to_dict()) == json.dumps(policy.to_dict())
    np.testing.assert_array_equal(back.thresholds_, policy.thresholds_)
    np.testing.assert_array_equal(back.compute_scores(data), policy.compute_scores(data))
    np.testing.assert_array_equal(back.exit_index(data), policy.exit_index(data))
    assert back.fit_params_ == policy.fit_params_
    json.loads(path.read_text())  # strict JSON: no NaN/Infinity tokens


@pytest.mark.parametrize("method", method_names())
def test_scores_are_causal(method):
    """The score at exit k uses exits 0..k only: what early-exit inference can see."""
    data = _data(n=200, seed=6)
    policy = _fit(data, method, budget=3.0)
    full = policy.compute_scores(data)
    for k in range(data.n_exits):
        prefix = policy.prefix_scores(np.ascontiguousarray(data.probs[:, : k + 1]))
        np.testing.assert_allclose(prefix, full[:, : k + 1], err_msg=method)


@pytest.mark.parametrize("method", sorted(DIRECT))
def test_direct_setting_needs_no_labels(method):
    data = _data(n=80, seed=4)
    unlabeled = eeopt.ExitData(data.probs, costs=data.costs)
    policy = _fit(unlabeled, method, **DIRECT[method])
    labeled = _fit(data, method, **DIRECT[method])
    np.testing.assert_array_equal(policy.exit_index(data), labeled.exit_index(data))
    assert policy.fit_info_["target"] == "direct" and "fit_accuracy" not in policy.fit_info_
    assert labeled.fit_info_["fit_accuracy"] == labeled.evaluate(data).accuracy


@pytest.mark.parametrize("method", method_names())
def test_unknown_option_is_named(method):
    data = _data(n=30)
    with pytest.raises(ValueError, match="unknown option.*frobnicate"):
        _fit(data, method, budget=3.0, frobnicate=1)


def test_none_is_not_a_silent_default_where_the_option_has_a_value():
    with pytest.raises(TypeError, match="per_exit must be True or False"):
        _fit(_data(n=30), "maxprob", budget=3.0, per_exit=None)


@pytest.mark.parametrize("method", method_names())
def test_fit_params_fit_the_same_policy_again(method):
    data = _data(n=150, seed=9)
    policy = _fit(data, method, budget=3.0)
    params = dict(policy.fit_params_)
    assert params["method"] == method and params["budget"] == 3.0
    again = eeopt.fit(data, verbose=False, **params)
    assert json.dumps(again.to_dict()) == json.dumps(policy.to_dict())


@pytest.mark.parametrize("method", sorted(set(method_names()) - {"eenet"}))
def test_default_target_fit_params_fit_the_same_policy_again(method):
    data = _data(n=150, seed=10)
    options = {"q": 0.7} if method == "msdnet" else {}
    policy = _fit(data, method, **options)
    again = eeopt.fit(data, verbose=False, **policy.fit_params_)
    np.testing.assert_array_equal(again.thresholds_, policy.thresholds_)


def test_method_given_where_the_labels_go_is_taken_as_the_method():
    data = _data(n=100)
    np.testing.assert_array_equal(
        eeopt.fit(data, "maxprob").thresholds_, eeopt.fit(data, method="maxprob").thresholds_
    )
    with pytest.raises(ValueError, match='method="maxprob"'):
        eeopt.fit(data)


@pytest.mark.parametrize("method", method_names())
def test_exits_in_blocks_of_rows_equal_exits_at_once(method, monkeypatch):
    import eeopt.policy

    data = _data(n=200, seed=14)
    policy = _fit(data, method, budget=3.0)
    at_once = policy.evaluate(data)
    monkeypatch.setattr(eeopt.policy, "ROWS_PER_BLOCK", 7)
    in_blocks = policy.evaluate(data)
    np.testing.assert_array_equal(in_blocks.exit_index, at_once.exit_index)
    np.testing.assert_array_equal(in_blocks.predictions, at_once.predictions)


@pytest.mark.parametrize(
    "method, per_exit",
    [(m, False) for m in PATH_METHODS]
    + [(m, True) for m in PATH_METHODS if "per_exit" in METHODS[m].options],
)
@pytest.mark.parametrize("options", [{"budget": 3.2}, {"target": "accuracy", "tolerance": 0.02}])
def test_fit_info_is_the_fitted_policys_outcome_bit_for_bit(method, per_exit, options):
    """A path fit records the chosen candidate's outcome from the path's exact counts instead
    of evaluating the policy again: the same figures as a per-sample loop, bit for bit."""
    data = _data(n=150, seed=9)
    extra = {"per_exit": True} if per_exit else {}
    policy = _fit(data, method, **options, **extra)
    exits = policy.exit_index(data)  # the exit rule (tested against loops elsewhere)
    correct = sum(
        int(np.argmax(data.probs[n, exits[n]])) == int(data.labels[n])
        for n in range(data.n_samples)
    )
    info = policy.fit_info_
    counts = np.bincount(exits, minlength=data.n_exits)
    assert info["fit_accuracy"] == correct / data.n_samples
    assert info["fit_exit_fractions"] == (counts / data.n_samples).tolist()
    assert info["fit_mean_cost"] == policy.evaluate(data).mean_cost
    assert info["fit_mean_cost"] == pytest.approx(data.costs[exits].mean(), rel=1e-12)


def test_path_settings_are_named_by_integer_indices():
    """A path's setting is an integer index (negative from the end); a float or an index off
    the path is an error naming it, never a silently truncated setting."""
    data = _data(n=60, seed=2)
    path = eeopt.candidates(data, method="maxprob")
    last_counts, last_correct = path.outcome(len(path) - 1)
    counts, correct = path.outcome(-1)
    np.testing.assert_array_equal(counts, last_counts)
    assert correct == last_correct
    np.testing.assert_array_equal(
        path.policy(np.int64(-1)).thresholds_, path.policy(len(path) - 1).thresholds_
    )
    for bad, error in [(2.7, TypeError), (True, TypeError), (len(path), ValueError)]:
        with pytest.raises(error, match="index"):
            path.policy(bad)
        with pytest.raises(error, match="index"):
            path.outcome(bad)
