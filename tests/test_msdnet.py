import numpy as np
import pytest
from conftest import make_multi_exit
from hypothesis import given
from hypothesis import strategies as st
from reference import ref_geometric_fractions, refthresholds_from_counts

import eeopt
from eeopt.methods.msdnet import geometric_fractions


def test_geometric_fractions_match_the_formula():
    np.testing.assert_allclose(geometric_fractions(0.5, 4), ref_geometric_fractions(0.5, 4))
    np.testing.assert_allclose(geometric_fractions(3.0, 3), ref_geometric_fractions(3.0, 3))
    np.testing.assert_array_equal(geometric_fractions(0.0, 3), [1, 0, 0])
    np.testing.assert_array_equal(geometric_fractions(np.inf, 3), [0, 0, 1])


def test_direct_q_usesthresholds_from_counts_of_the_geometric_distribution():
    logits, labels = make_multi_exit(n=400, n_exits=4, seed=1)
    data = eeopt.ExitData.from_logits(logits, labels)
    policy = eeopt.fit(data, method="msdnet", q=0.8)
    expected = refthresholds_from_counts(data.maxprob, ref_geometric_fractions(0.8, 4))
    np.testing.assert_array_equal(policy.thresholds_, expected)


@given(st.integers(0, 1000), st.floats(0, 1))
def test_budget_is_met_with_the_largest_feasible_q(seed, share):
    logits, labels = make_multi_exit(n=200, n_exits=5, seed=seed)
    costs = np.array([1.0, 2.0, 3.5, 5.0, 8.0])
    budget = costs[0] + share * (costs[-1] - costs[0])
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
