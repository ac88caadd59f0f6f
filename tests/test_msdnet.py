import numpy as np
import pytest
from conftest import budget_at, make_multi_exit, tied_scores
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ref_geometric_fractions, ref_quantile_thresholds, ref_solve_q

import eeopt
from eeopt import engine
from eeopt.methods import msdnet
from eeopt.methods.msdnet import _solve, geometric_fractions, solve_q
from eeopt.quantile import exit_counts, quantile_assignment


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
    tied_scores([0.0, 0.1, 0.5, 0.5000001, 0.9, 1.0]),
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


# -- the solver's shortcuts: the tie bound and the bracket --------------------------------------
@pytest.fixture(params=[False, True], ids=["numpy", "kernels"])
def kernels(request, monkeypatch):
    """Run the bracket's and the tie bound's statistics as numpy or as the (compiled with
    numba, else plain-Python) kernels."""
    monkeypatch.setattr(msdnet, "_KERNELS", request.param)
    return request.param


def _tied_scores(rng, n, n_exits, levels=12):
    scores = rng.choice(np.linspace(0, 1, levels), size=(n, n_exits)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.05] = -0.0  # equal to 0.0, other bits
    return scores


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 6), st.integers(1, 300), st.data())
def test_bracket_realises_counts_between_its_bounds_as_the_data_does(seed, n_exits, n, data):
    """_Bracket.realise gives quantile_assignment's thresholds and counts bit for bit, or
    None: between its bounds, and outside them, where only its checks stand between it and
    a wrong answer."""
    rng = np.random.default_rng(seed)
    scores = _tied_scores(rng, n, n_exits, levels=data.draw(st.sampled_from([3, 12, 1000])))
    by_exit = np.ascontiguousarray(scores.T)
    fractions = rng.dirichlet(np.ones(n_exits))
    centre = exit_counts(fractions, n)
    spread = data.draw(st.integers(0, max(1, n // 10)))
    low = np.maximum(centre - spread, 0)
    high = centre + spread
    bracket = msdnet._Bracket(by_exit, low, high)
    # Between the bounds, and (the checks alone then keep it exact) anywhere near them.
    wide = max(2, 3 * spread)
    for lower, upper in [(low, high)] * 8 + [(np.maximum(low - wide, 0), high + wide)] * 8:
        counts = rng.integers(lower, upper + 1)
        counts[-1] = n - counts[:-1].sum()
        result = bracket.realise(counts)
        expected = quantile_assignment(by_exit, counts, by_exit=True)
        if result is not None:
            np.testing.assert_array_equal(result[0], expected[0])
            np.testing.assert_array_equal(result[1], expected[1])


def test_bracket_answers_within_its_bounds_on_realistic_scores():
    """Not a vacuous check: on distinct scores a bracket answers every count vector between
    its bounds, and it refuses one outside them."""
    rng = np.random.default_rng(3)
    by_exit = np.ascontiguousarray(rng.random((5000, 6)).astype(np.float32).T)
    centre = exit_counts(geometric_fractions(0.9, 6), 5000)
    low, high = centre - 40, centre + 40
    bracket = msdnet._Bracket(by_exit, low, high)
    assert bracket.open_first.size < 5000 // 4
    for _ in range(50):
        counts = rng.integers(low, high + 1)
        counts[-1] = 5000 - counts[:-1].sum()
        result = bracket.realise(counts)
        assert result is not None
        expected = quantile_assignment(by_exit, counts, by_exit=True)
        np.testing.assert_array_equal(result[0], expected[0])
        np.testing.assert_array_equal(result[1], expected[1])
    outside = high.copy()
    outside[0] += 1
    assert not bracket.holds(outside)


def test_lowest_decided_matches_a_loop(kernels):
    rng = np.random.default_rng(5)
    by_exit = rng.random((7, 3000))
    exits = rng.integers(0, 7, 3000).astype(np.int8)
    exits[exits == 4] = 3  # an exit nobody leaves at
    decided = rng.random(3000) < 0.7
    expected = np.full(7, np.inf)
    for i in range(3000):
        if decided[i]:
            expected[exits[i]] = min(expected[exits[i]], by_exit[exits[i], i])
    np.testing.assert_array_equal(msdnet._lowest_decided(by_exit, exits, decided), expected)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([2, 5, 40]), st.data())
def test_tie_saving_bounds_what_ties_save(seed, levels, data):
    """For any requested counts, the realised mean cost is at least the requested one minus
    the tie bound; the bound is no smaller than the true largest tie group's."""
    rng = np.random.default_rng(seed)
    n, n_exits = 400, 5
    by_exit = np.ascontiguousarray(_tied_scores(rng, n, n_exits, levels).T)
    costs = np.cumsum(rng.uniform(0.0, 2.0, n_exits)) + 1.0
    saving = msdnet._tie_saving(by_exit, costs)
    repeats = [np.unique(by_exit[k] + np.float32(0), return_counts=True)[1].max() for k in range(4)]
    exact = float(np.sum((np.array(repeats) - 1) * (costs[-1] - costs[:-1]))) / n
    assert saving >= exact - 1e-12
    for _ in range(10):
        counts = exit_counts(rng.dirichlet(np.ones(n_exits)), n)
        realised = quantile_assignment(by_exit, counts, by_exit=True)[1]
        cost = engine.mean_cost_from_counts(realised, costs)
        assert cost >= engine.mean_cost_from_counts(counts, costs) - saving - 1e-9


def test_largest_bucket_is_the_same_compiled_or_not(monkeypatch):
    rng = np.random.default_rng(2)
    values = rng.choice(np.linspace(0, 1, 300), 20_000).astype(np.float32)
    values[:50] = -0.0
    values[50:90] = 0.0  # 90 equal zeros, 40 of them with the sign bit
    found = []
    for flag in (False, True):
        monkeypatch.setattr(msdnet, "_KERNELS", flag)
        table = np.empty(1 << 10, np.uint16)
        found.append(msdnet._largest_bucket(msdnet._hash_bits(values), table))
    assert found[0] == found[1] >= 90


@settings(max_examples=30, deadline=None)
@given(
    tied_scores([0.0, 0.1, 0.5, 0.5000001, 0.9, 1.0], np.float32, max_rows=60),
    st.floats(0, 1),
)
def test_solver_with_every_shortcut_on_gives_the_bisections_q(scores, share):
    """With the tie bound used at any size and a bracket built at the first chance, the
    solver still returns the q (and thresholds) of a bisection that realises every step."""
    costs = np.arange(1.0, scores.shape[1] + 1) ** 1.5
    budget = budget_at(costs, share)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(msdnet, "_TIE_BOUND_MIN_SAMPLES", 0)
        patch.setattr(msdnet, "_BRACKET_SHARE", 1.0)
        q, thresholds = _solve(scores, costs, budget)
    assert q == ref_solve_q(scores, costs, budget)
    expected = ref_quantile_thresholds(scores, geometric_fractions(q, scores.shape[1]))
    np.testing.assert_array_equal(thresholds, expected)
