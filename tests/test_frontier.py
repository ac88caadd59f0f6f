import itertools

import numpy as np
import pytest
from conftest import make_multi_exit
from hypothesis import given
from hypothesis import strategies as st

import eeopt
from eeopt.frontier import non_dominated

SWEPT = ("maxprob", "entropy", "margin", "patience")


def _data(n=300, seed=0, n_exits=4):
    logits, labels = make_multi_exit(n=n, n_exits=n_exits, seed=seed)
    return eeopt.ExitData.from_logits(logits, labels, costs=np.cumsum(np.arange(1, n_exits + 1)))


def _is_non_dominated(costs, accuracies):
    for (c1, a1), (c2, a2) in itertools.permutations(zip(costs, accuracies, strict=True), 2):
        if c2 <= c1 and a2 >= a1 and (c2, a2) != (c1, a1):
            return False
    return True


@pytest.mark.parametrize("method", SWEPT)
def test_front_points_are_non_dominated_and_reproduced_by_fit(method):
    data = _data()
    front = eeopt.pareto_front(data, method=method)
    assert len(front) >= 1
    assert _is_non_dominated(front.mean_costs, front.accuracies)
    assert np.all(np.diff(front.mean_costs) > 0) and np.all(np.diff(front.accuracies) > 0)
    direct = "patience" if method == "patience" else "threshold"
    for cost, accuracy, parameter in zip(
        front.mean_costs, front.accuracies, front.parameters, strict=True
    ):
        value = int(parameter) if method == "patience" else parameter
        result = eeopt.fit(data, method=method, **{direct: value}).evaluate(data)
        assert result.mean_cost == pytest.approx(cost)
        assert result.accuracy == pytest.approx(accuracy)


def test_front_contains_every_fitted_budget_point():
    data = _data(seed=3)
    front = eeopt.pareto_front(data, method="maxprob")
    for budget in np.linspace(data.costs[0], data.costs[-1], 7):
        result = eeopt.fit(data, method="maxprob", budget=budget).evaluate(data)
        assert front.accuracy_at(budget) == pytest.approx(result.accuracy)


def test_budget_swept_front_for_msdnet():
    data = _data(seed=4)
    front = eeopt.pareto_front(data, method="msdnet", budgets=[1, 3, 5, 10], verbose=False)
    assert front.parameter_name == "budget"
    assert _is_non_dominated(front.mean_costs, front.accuracies)
    for cost, budget in zip(front.mean_costs, front.parameters, strict=True):
        assert cost <= budget
        assert eeopt.fit(data, method="msdnet", budget=budget).evaluate(data).mean_cost == cost


def test_oracle_matches_its_definition():
    data = _data(seed=5)
    oracle = eeopt.oracle_front(data)
    any_correct = data.correct.any(axis=1).mean()
    assert oracle.accuracies[-1] == pytest.approx(any_correct)
    # The oracle point itself: every sample at its earliest correct exit (else the first:
    # a sample no exit gets right costs least at exit 0 on the front).
    first = np.where(data.correct.any(axis=1), data.correct.argmax(axis=1), 0)
    assert oracle.mean_costs[-1] == pytest.approx(data.costs[first].mean())


def test_oracle_front_by_brute_force_on_a_tiny_set():
    data = _data(n=6, seed=9, n_exits=3)
    oracle = eeopt.oracle_front(data)
    best = {}
    for assignment in itertools.product(range(3), repeat=6):
        idx = np.array(assignment)
        cost = data.costs[idx].mean()
        accuracy = data.correct[np.arange(6), idx].mean()
        best[cost] = max(best.get(cost, 0), accuracy)
    for cost, accuracy in best.items():
        assert oracle.accuracy_at(cost + 1e-12) >= accuracy - 1e-12
    for cost, accuracy in zip(oracle.mean_costs, oracle.accuracies, strict=True):
        assert any(abs(c - cost) < 1e-9 and a >= accuracy - 1e-12 for c, a in best.items())


@given(st.integers(0, 10_000))
def test_oracle_is_above_every_method_front_at_every_cost(seed):
    data = _data(n=60, seed=seed, n_exits=4)
    oracle = eeopt.oracle_front(data)
    for method in SWEPT:
        front = eeopt.pareto_front(data, method=method)
        for cost, accuracy in zip(front.mean_costs, front.accuracies, strict=True):
            assert oracle.accuracy_at(cost + 1e-12) >= accuracy - 1e-12


def test_non_dominated_keeps_the_upper_left_staircase():
    costs = np.array([3.0, 1.0, 2.0, 2.0, 4.0])
    accuracies = np.array([0.9, 0.5, 0.7, 0.6, 0.8])
    np.testing.assert_array_equal(non_dominated(costs, accuracies), [1, 2, 0])


def test_front_rejects_targets_and_unknown_methods():
    data = _data()
    with pytest.raises(ValueError, match="budget"):
        eeopt.pareto_front(data, method="maxprob", budget=3)
    with pytest.raises(ValueError, match="method"):
        eeopt.pareto_front(data, method="nope")
    with pytest.raises(ValueError, match="budgets"):
        eeopt.pareto_front(data, method="msdnet", budgets=[100.0], verbose=False)
    with pytest.raises(ValueError, match="max_points"):
        eeopt.heldout_front(data, data, method="maxprob", max_points=0)
    with pytest.raises(ValueError, match="labels are required for a held-out front"):
        eeopt.heldout_front(data, data.replace(labels=None), method="maxprob")


@pytest.mark.parametrize("method", ["beem-a", "msdnet"])
def test_long_sweeps_draw_a_progress_bar_unless_verbose_is_false(method, capsys):
    logits, labels = make_multi_exit(n=300, n_exits=4, seed=3)
    loud = eeopt.pareto_front(logits, labels, method=method, n_budgets=3)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("BEEM level sweep" in err or "front msdnet" in err)
    quiet = eeopt.pareto_front(logits, labels, method=method, n_budgets=3, verbose=False)
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(loud.mean_costs, quiet.mean_costs)


def test_front_costs_is_the_deprecated_name_of_mean_costs():
    data = _data()
    front = eeopt.pareto_front(data, method="maxprob")
    with pytest.warns(DeprecationWarning, match="mean_costs"):
        np.testing.assert_array_equal(front.costs, front.mean_costs)


def test_the_oracle_is_the_same_with_recall_by_brute_force():
    # Every sample chooses where to stop (k, paying costs[k]) and which passed exit answers
    # (j <= k); the best accuracy within each budget over all such choices is the oracle front.
    rng = np.random.default_rng(4)
    costs = np.array([1.0, 2.5, 4.0])
    for _ in range(5):
        correct = rng.random((5, 3)) < 0.45
        labels = np.zeros(5, dtype=int)
        probs = np.full((5, 3, 2), 0.1)
        probs[:, :, 0] = np.where(correct, 0.9, 0.1)
        probs[:, :, 1] = 1 - probs[:, :, 0]
        front = eeopt.oracle_front(probs, labels, costs)
        choices = [(k, j) for k in range(3) for j in range(k + 1)]
        best: dict[float, int] = {}
        for plan in itertools.product(choices, repeat=5):
            cost = sum(costs[k] for k, _ in plan)
            right = sum(bool(correct[n, j]) for n, (_, j) in enumerate(plan))
            best[cost] = max(best.get(cost, 0), right)
        for budget, accuracy in zip(front.mean_costs, front.accuracies, strict=True):
            reachable = max(r for c, r in best.items() if c <= 5 * budget + 1e-9)
            assert reachable / 5 == pytest.approx(accuracy)
