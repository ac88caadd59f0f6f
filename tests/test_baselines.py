import numpy as np
import pytest
from conftest import make_multi_exit
from reference import ref_evaluate, ref_scores

import eeopt

THRESHOLD_METHODS = ("maxprob", "entropy", "margin")


def _brute_force(data, name, candidates):
    """(threshold, accuracy, mean cost) for every candidate, by the per-sample loop."""
    scores = data.score(name)
    out = []
    for tau in candidates:
        thresholds = [tau] * (data.n_exits - 1) + [-np.inf]
        ref = ref_evaluate(data.probs, data.labels, data.costs, scores, thresholds)
        out.append((tau, ref["accuracy"], ref["mean_cost"]))
    return out


def _all_candidates(scores):
    return [np.inf] + sorted(set(scores[:, :-1].ravel().tolist()), reverse=True)


@pytest.mark.parametrize("method", THRESHOLD_METHODS)
def test_direct_threshold_matches_the_reference_loop(method):
    logits, labels = make_multi_exit(n=200, n_exits=4, seed=2)
    data = eeopt.ExitData.from_logits(logits, labels, costs=[1, 2, 4, 8])
    policy = eeopt.fit(data, method=method, threshold=0.4)
    exits = policy.exit_index(data)
    scores = data.score(method)
    for i in range(data.n_samples):
        expected = next((k for k in range(3) if scores[i, k] >= 0.4), 3)
        assert exits[i] == expected


def test_per_exit_thresholds_are_applied_per_exit():
    logits, labels = make_multi_exit(n=200, n_exits=3, seed=5)
    data = eeopt.ExitData.from_logits(logits, labels)
    policy = eeopt.fit(data, method="maxprob", threshold=[np.inf, 0.5])
    exits = policy.exit_index(data)
    assert not np.any(exits == 0)
    np.testing.assert_array_equal(exits == 1, data.maxprob[:, 1] >= 0.5)


@pytest.mark.parametrize("method", THRESHOLD_METHODS)
@pytest.mark.parametrize("budget", [1.0, 1.7, 2.5, 3.2, 4.0])
def test_budget_fit_is_the_most_accurate_threshold_within_budget(method, budget):
    logits, labels = make_multi_exit(n=120, n_exits=4, seed=7)
    data = eeopt.ExitData.from_logits(logits, labels)
    policy = eeopt.fit(data, method=method, budget=budget)
    result = policy.evaluate(data)
    assert result.mean_cost <= budget
    candidates = _all_candidates(data.score(method))
    feasible = [
        (a, c) for _, a, c in _brute_force(data, method, candidates) if c <= budget * (1 + 1e-12)
    ]
    best_accuracy = max(a for a, _ in feasible)
    assert result.accuracy == pytest.approx(best_accuracy)
    # Among equally accurate settings it takes the cheapest.
    assert result.mean_cost == pytest.approx(min(c for a, c in feasible if a == best_accuracy))


@pytest.mark.parametrize("tolerance", [0.0, 0.02, 0.1])
def test_accuracy_target_is_the_cheapest_threshold_that_holds(tolerance):
    logits, labels = make_multi_exit(n=150, n_exits=4, seed=11)
    data = eeopt.ExitData.from_logits(logits, labels)
    policy = eeopt.fit(data, method="maxprob", tolerance=tolerance)
    result = policy.evaluate(data)
    floor = data.exit_accuracy[-1] - tolerance
    assert result.accuracy >= floor - 1e-12
    feasible = [
        c
        for _, a, c in _brute_force(data, "maxprob", _all_candidates(data.maxprob))
        if a >= floor - 1e-12
    ]
    assert result.mean_cost == pytest.approx(min(feasible))


def test_budget_equal_to_an_exit_cost_is_reachable_exactly():
    # Costs whose running sums round: 0.1 + 0.2 != 0.3 in floating point.
    logits, labels = make_multi_exit(n=300, n_exits=3, seed=1)
    data = eeopt.ExitData.from_logits(logits, labels, costs=[0.1, 0.2, 0.3])
    policy = eeopt.fit(data, method="maxprob", budget=0.1)
    assert policy.evaluate(data).mean_cost <= 0.1
    np.testing.assert_array_equal(policy.exit_index(data), 0)


def _ref_patience_exit(preds, t):
    for k in range(len(preds) - 1):
        if ref_scores(None, "patience", preds, k) >= t:
            return k
    return len(preds) - 1


@pytest.mark.parametrize("t", [1, 2, 3])
def test_patience_matches_pabee_loop(t):
    logits, labels = make_multi_exit(n=200, n_exits=5, seed=3)
    data = eeopt.ExitData.from_logits(logits, labels)
    exits = eeopt.fit(data, method="patience", patience=t).exit_index(data)
    for i in range(data.n_samples):
        assert exits[i] == _ref_patience_exit(data.predictions[i].tolist(), t)


def test_patience_budget_fit_is_best_integer_patience():
    logits, labels = make_multi_exit(n=300, n_exits=6, seed=8)
    data = eeopt.ExitData.from_logits(logits, labels)
    budget = 4.2
    policy = eeopt.fit(data, method="patience", budget=budget)
    result = policy.evaluate(data)
    assert result.mean_cost <= budget
    options = []
    for t in range(1, 6):
        r = eeopt.fit(data, method="patience", patience=t).evaluate(data)
        if r.mean_cost <= budget:
            options.append(r.accuracy)
    assert result.accuracy == pytest.approx(max(options))
    assert policy.fit_info_["patience"] >= 1


def test_patience_budget_below_reach_is_an_error():
    logits, labels = make_multi_exit(n=50, n_exits=4)
    with pytest.raises(ValueError, match="budget"):
        eeopt.fit(logits, labels, method="patience", budget=1.0)


def test_fit_is_deterministic():
    logits, labels = make_multi_exit(n=200)
    a = eeopt.fit(logits, labels, method="maxprob", budget=2.5).to_dict()
    b = eeopt.fit(logits, labels, method="maxprob", budget=2.5).to_dict()
    assert a == b
