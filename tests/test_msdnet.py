import numpy as np
import pytest
from conftest import budget_at, make_multi_exit
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from reference import ref_geometric_fractions, ref_quantile_thresholds, ref_solve_q

import eeopt
from eeopt.methods.msdnet import _solve, geometric_fractions, solve_q


def test_geometric_fractions_match_the_formula():
    np.testing.assert_allclose(geometric_fractions(0.5, 4), ref_geometric_fractions(0.5, 4))
    np.testing.assert_allclose(geometric_fractions(3.0, 3), ref_geometric_fractions(3.0, 3))
    np.testing.assert_array_equal(geometric_fractions(0.0, 3), [1, 0, 0])
    np.testing.assert_array_equal(geometric_fractions(np.inf, 3), [0, 0, 1])


def test_direct_q_uses_quantile_thresholds_of_the_geometric_distribution():
    logits, labels = make_multi_exit(n=400, n_exits=4, seed=1)
    data = eeopt.ExitData.from_logits(logits, labels)
    policy = eeopt.fit(data, method="msdnet", q=0.8)
    expected = ref_quantile_thresholds(data.maxprob, ref_geometric_fractions(0.8, 4))
    np.testing.assert_array_equal(policy.thresholds_, expected)


@given(st.integers(0, 1000), st.floats(0, 1))
def test_budget_is_met_with_the_largest_feasible_q(seed, share):
    logits, labels = make_multi_exit(n=200, n_exits=5, seed=seed)
    costs = np.array([1.0, 2.0, 3.5, 5.0, 8.0])
    budget = budget_at(costs, share)
    data = eeopt.ExitData.from_logits(logits, labels, costs)
    policy = eeopt.fit(data, method="msdnet", budget=budget)
    result = policy.evaluate(data)
    assert result.mean_cost <= budget
    q = policy.fit_info_["q"]
    if q not in (0.0, "inf"):
        # Not a coarse grid point: the cost is within one sample's cost step of the budget
        # (scores are continuous here, so no ties move several samples at once).
        assert result.mean_cost >= budget - (costs[-1] - costs[0]) / data.n_samples - 1e-12


def test_msdnet_without_labels_still_fits_a_budget():
    logits, _ = make_multi_exit(n=100)
    policy = eeopt.fit(logits, method="msdnet", budget=2.0)
    assert policy.evaluate(logits).mean_cost <= 2.0
    assert policy.evaluate(logits).accuracy is None


def test_msdnet_takes_another_score():
    logits, labels = make_multi_exit(n=300)
    a = eeopt.fit(logits, labels, method="msdnet", budget=2.0, score="entropy")
    assert a.score_name == "entropy"
    assert a.evaluate(logits, labels).mean_cost <= 2.0


def test_budget_at_the_ends():
    logits, labels = make_multi_exit(n=100)
    low = eeopt.fit(logits, labels, method="msdnet", budget=1.0).evaluate(logits, labels)
    high = eeopt.fit(logits, labels, method="msdnet", budget=4.0).evaluate(logits, labels)
    assert low.mean_cost == pytest.approx(1.0)
    assert high.mean_cost == pytest.approx(4.0)


@settings(max_examples=60)
@given(
    st.integers(2, 5).flatmap(
        lambda k: arrays(
            np.float64,
            st.tuples(st.integers(1, 40), st.just(k)),
            elements=st.sampled_from([0.0, 0.1, 0.5, 0.5000001, 0.9, 1.0]),
        )
    ),
    st.floats(0, 1),
    st.booleans(),
)
def test_solver_gives_the_q_of_a_bisection_that_realises_every_step(scores, share, equal_costs):
    """The counts-first solver returns the previous solver's q bit for bit (ties included:
    few distinct scores), and the thresholds of that q."""
    n_exits = scores.shape[1]
    costs = np.arange(1.0, n_exits + 1) ** 1.5
    if equal_costs:  # equal neighbouring costs: moving samples between them costs nothing
        costs[1] = costs[0]
    budget = budget_at(costs, share)
    q = solve_q(scores, costs, budget)
    assert q == ref_solve_q(scores, costs, budget)
    q2, thresholds = _solve(scores, costs, budget)
    assert q2 == q
    expected = ref_quantile_thresholds(scores, geometric_fractions(q, n_exits))
    np.testing.assert_array_equal(thresholds, expected)


def test_solver_matches_on_a_larger_tied_set():
    rng = np.random.default_rng(7)
    scores = rng.choice(np.linspace(0, 1, 40), size=(3000, 6)).astype(np.float32)
    costs = np.cumsum(rng.uniform(0.5, 2.0, 6))
    for share in (0.05, 0.3, 0.77):
        budget = budget_at(costs, share)
        assert solve_q(scores, costs, budget) == ref_solve_q(scores, costs, budget)
