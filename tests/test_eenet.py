import json

import numpy as np
import pytest
from conftest import budget_at, make_multi_exit
from hypothesis import example, given, settings
from hypothesis import strategies as st
from reference import ref_eenet_losses, ref_eenet_targets, ref_utility_scores
from threadpoolctl import threadpool_limits

import eeopt
from eeopt import engine
from eeopt.methods.eenet import (
    Adam,
    EENetPolicy,
    assigner_logits,
    assignment_loss,
    base_features,
    bce_weights,
    budget_counts,
    budget_tilt,
    constrained_assignment_loss,
    eenet_losses,
    exit_targets,
    fit_assigner,
    init_assigner,
    lp_exit_assignment,
    lp_exit_assignment_cvxpy,
    relative_costs,
    scorer_inputs,
    scorer_loss,
    train_adam,
    training_budgets,
)

#: Small training settings: the tests check properties, not how well the model is trained.
FAST = {"max_iter": 15, "n_rounds": 2, "hidden": 4, "verbose": False}
#: The LP has no assigner: hidden= would be an error with distribution="lp".
FAST_LP = {k: v for k, v in FAST.items() if k != "hidden"}


def _data(n=200, n_exits=4, n_classes=5, seed=0, costs=None):
    logits, labels = make_multi_exit(n=n, n_exits=n_exits, n_classes=n_classes, seed=seed)
    return eeopt.ExitData.from_logits(logits, labels, costs)


def _numeric_grad(fun, x, eps=1e-6):
    grad = np.empty_like(x)
    for i in range(x.size):
        step = np.zeros_like(x)
        step[i] = eps
        grad[i] = (fun(x + step) - fun(x - step)) / (2 * eps)
    return grad


# -- targets and losses --------------------------------------------------------------------------
def test_targets_match_the_reference():
    correct = np.array([[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1]], dtype=bool)
    q, r = exit_targets(correct)
    for i in range(correct.shape[0]):
        ref_q, ref_r = ref_eenet_targets(list(correct[i]))
        np.testing.assert_array_equal(q[i], ref_q)
        np.testing.assert_allclose(r[i], ref_r, rtol=0, atol=1e-15)
    np.testing.assert_allclose(r.sum(axis=1), 1.0)


@pytest.mark.parametrize("seed", range(4))
def test_losses_match_a_transcription_of_the_formulas(seed):
    rng = np.random.default_rng(seed)
    n, n_exits = 7, 4
    scorer_logits = rng.normal(scale=3.0, size=(n, n_exits))
    assignment_logits = rng.normal(scale=2.0, size=(n, n_exits))
    correct = rng.random((n, n_exits)) < 0.5
    correct[0] = False  # a sample no exit gets right
    correct[1] = True  # and one every exit gets right
    costs = np.array([1.0, 1.5, 2.5, 4.0])
    budget = 2.0
    got = eenet_losses(scorer_logits, assignment_logits, correct, costs, budget)
    want = ref_eenet_losses(scorer_logits, assignment_logits, correct, costs, budget)
    for key in ("L_g", "L_CE", "L_budget"):
        assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-15), key


def test_losses_stay_finite_when_scores_saturate():
    scorer_logits = np.array([[800.0, -800.0], [-800.0, 800.0]])
    assignment_logits = np.array([[900.0, -900.0], [0.0, 0.0]])
    correct = np.array([[True, False], [False, False]])
    losses = eenet_losses(scorer_logits, assignment_logits, correct, np.array([1.0, 2.0]), 1.5)
    assert all(np.isfinite(x) for x in losses.values())


def test_bce_weights_sum_to_one_per_exit_and_survive_empty_tails():
    rng = np.random.default_rng(0)
    assignment = rng.dirichlet(np.ones(4), size=30)
    weights = bce_weights(assignment)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0)
    np.testing.assert_allclose(weights[:, 0], 1 / 30)
    hard = np.zeros((5, 3))
    hard[:, 0] = 1.0  # nobody reaches exit 1 or 2 (an LP assignment at the lowest budget)
    weights = bce_weights(hard)
    assert np.isfinite(weights).all()
    np.testing.assert_allclose(weights.sum(axis=0), 1.0)


def test_scorer_loss_is_the_exit_share_of_L_g():
    data = _data(n=40, n_exits=3, seed=3)
    rng = np.random.default_rng(1)
    q, _ = exit_targets(data.correct)
    assignment_logits = rng.normal(size=(40, 3))
    assignment = np.exp(assignment_logits) / np.exp(assignment_logits).sum(axis=1, keepdims=True)
    weights = bce_weights(assignment)
    features = base_features(data)
    scores = np.zeros((40, 3))
    total, scorer_logits = 0.0, np.empty((40, 3))
    for k in range(3):
        inputs = scorer_inputs(features[k], scores[:, :k])
        params = rng.normal(scale=0.5, size=inputs.shape[1] + 1)
        total += scorer_loss(params, inputs, q[:, k], weights[:, k], 3, l2=0.0)[0]
        scorer_logits[:, k] = inputs @ params[:-1] + params[-1]
        scores[:, k] = 1 / (1 + np.exp(-scorer_logits[:, k]))
    losses = eenet_losses(scorer_logits, assignment_logits, data.correct, data.costs, 2.0)
    assert total == pytest.approx(losses["L_g"], rel=1e-12)


def test_assignment_loss_is_the_weighted_sum_of_L_CE_and_L_budget():
    data = _data(n=30, n_exits=3, seed=4)
    _, r = exit_targets(data.correct)
    inputs = [np.random.default_rng(k).random((30, 8 + k)) for k in range(3)]
    theta = init_assigner([8, 9, 10], 5, np.random.default_rng(0))
    loss, _ = assignment_loss(theta, inputs, r, data.costs, 1.7, 0.3, 0.7, 0.0, 5)
    logits = assigner_logits(theta, inputs, 5)
    losses = eenet_losses(np.zeros((30, 3)), logits, data.correct, data.costs, 1.7)
    assert loss == pytest.approx(0.3 * losses["L_CE"] + 0.7 * losses["L_budget"], rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_scorer_gradient_matches_finite_differences(seed):
    rng = np.random.default_rng(seed)
    inputs = rng.random((25, 6))
    target = (rng.random(25) < 0.6).astype(float)
    weights = rng.dirichlet(np.ones(25))
    params = rng.normal(size=7)
    loss, grad = scorer_loss(params, inputs, target, weights, 4, l2=0.01)
    numeric = _numeric_grad(lambda p: scorer_loss(p, inputs, target, weights, 4, 0.01)[0], params)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("budget", [1.3, 3.2])  # below and above the expected cost
def test_assignment_gradient_matches_finite_differences(budget):
    rng = np.random.default_rng(5)
    n, n_exits, hidden = 20, 3, 4
    inputs = [rng.random((n, 5 + k)) for k in range(n_exits)]
    _, r = exit_targets(rng.random((n, n_exits)) < 0.5)
    costs = np.array([1.0, 2.0, 3.5])
    theta = init_assigner([5, 6, 7], hidden, rng)
    theta += rng.normal(scale=0.3, size=theta.size)

    def fun(t):
        return assignment_loss(t, inputs, r, costs, budget, 0.5, 2.0, 0.01, hidden)

    numeric = _numeric_grad(lambda t: fun(t)[0], theta)
    np.testing.assert_allclose(fun(theta)[1], numeric, rtol=1e-5, atol=1e-8)


# -- the h step at its budget --------------------------------------------------------------------
def _softmax_rows(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(2, 6),
    st.floats(0.01, 0.99),
    st.sampled_from([0.1, 3.0, 20.0]),
)
@example(2, 2, 0.015625, 20.0)  # every assignment saturated: a flat slope, no Newton step
def test_budget_tilt_meets_the_target_cost(seed, n_exits, share, scale):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=scale, size=(30, n_exits))
    steps = rng.choice([0.0, 0.5, 2.0], size=n_exits - 1)
    steps[-1] = 1.0  # at least one positive step
    rel = relative_costs(np.cumsum(np.r_[1.0, steps]))
    lam = budget_tilt(logits, rel, share, start=rng.normal())
    expected = (_softmax_rows(logits - lam * rel) @ rel).mean()
    assert expected == pytest.approx(share, abs=1e-10)


def _h_problem(seed=5, n=20, n_exits=3, hidden=4):
    rng = np.random.default_rng(seed)
    inputs = [rng.random((n, 5 + k)) for k in range(n_exits)]
    _, r = exit_targets(rng.random((n, n_exits)) < 0.5)
    theta = init_assigner([5 + k for k in range(n_exits)], hidden, rng)
    theta += rng.normal(scale=0.3, size=theta.size)
    return inputs, r, theta


@pytest.mark.parametrize("target_cost", [0.2, 0.55, 0.9])
def test_constrained_gradient_matches_finite_differences(target_cost):
    inputs, r, theta = _h_problem()
    rel = relative_costs(np.array([1.0, 2.0, 3.5]))

    def fun(t):
        return constrained_assignment_loss(t, inputs, r, rel, target_cost, 0.01, 4, 1.0, {})

    numeric = _numeric_grad(lambda t: fun(t)[0], theta)
    np.testing.assert_allclose(fun(theta)[1], numeric, rtol=1e-5, atol=1e-8)


def test_constrained_loss_is_L_CE_at_exactly_the_budget():
    inputs, r, theta = _h_problem(seed=2)
    costs = np.array([1.0, 2.0, 3.5])
    budget = 1.6
    rel = relative_costs(costs)
    state = {}
    loss, _ = constrained_assignment_loss(
        theta, inputs, r, rel, (budget - 1.0) / 2.5, 0.0, 4, 1.0, state
    )
    tilted = assigner_logits(theta, inputs, 4) - state["tilt"] * rel
    correct = r > 0  # these targets come from correctness
    losses = eenet_losses(np.zeros_like(r), tilted, correct, costs, budget)
    assert loss == pytest.approx(losses["L_CE"], rel=1e-12)
    assert losses["L_budget"] < 1e-12


@pytest.mark.parametrize("budget", [1.4, 3.2])  # below and above the targets' cost
def test_the_h_step_lies_on_the_budget_while_the_penalty_is_exact(budget):
    inputs, r, theta = _h_problem(seed=3, n=60)
    costs = np.array([1.0, 2.0, 3.5])
    target_cost = (r @ costs).mean()
    assert 1.4 < target_cost < 3.2
    common = (inputs, r, costs, budget, 1e-4, 4, 200, 1e-3)
    with threadpool_limits(limits=1, user_api="blas"):  # as in eeopt.fit: L-BFGS-B is slow else
        exact = fit_assigner(theta, *common, penalty=1e3)  # alpha_cost / alpha_ce
    assert exact.solution == "constrained"
    assert (exact.assignment @ costs).mean() == pytest.approx(budget, rel=1e-10)
    # The multiplier is the slope of the L_CE it saves per unit of relative cost: a penalty
    # below it (in the same units) no longer holds the cost at the budget, which then moves
    # towards the targets' cost.
    assert np.sign(exact.multiplier) == np.sign(budget - target_cost)
    slope = abs(exact.multiplier) * budget / (costs[-1] - costs[0])
    with threadpool_limits(limits=1, user_api="blas"):
        loose = fit_assigner(theta, *common, penalty=0.5 * slope)
    assert loose.solution == "penalised"
    loose_cost = (loose.assignment @ costs).mean()
    assert min(budget, target_cost) < loose_cost < max(budget, target_cost)
    # And the paper's penalised loss is lower there than at the constrained point.
    paper = [
        assignment_loss(t, inputs, r, costs, budget, 1.0, 0.5 * slope, 1e-4, 4)[0]
        for t in (exact.theta, loose.theta)
    ]
    assert paper[1] < paper[0]


def test_training_budgets_run_from_the_budget_to_the_targets_cost():
    costs = np.array([1.0, 2.0, 4.0])
    auto = training_budgets(1.5, costs, "auto", 3.0)
    assert auto[0] == 1.5 and auto[-1] == 3.0
    assert np.all(np.diff(auto) > 0)
    assert training_budgets(1.5, costs, 1e-2, 3.0) == [1.5]
    # Kept inside the cost range, where the tilt is finite.
    assert training_budgets(1.0, costs, 1e-2, 3.0)[0] > 1.0
    assert max(training_budgets(4.0, costs, "auto", 3.0)) < 4.0
    assert training_budgets(2.0, np.full(3, 2.0), "auto", 2.0) == [2.0]


# -- features and scores -------------------------------------------------------------------------
def test_features_use_the_exit_data_scores():
    data = _data(n=50, seed=2)
    for k, f in enumerate(base_features(data)):
        np.testing.assert_array_equal(f[:, : data.n_classes], data.probs[:, k])
        np.testing.assert_array_equal(f[:, data.n_classes], data.maxprob[:, k])
        np.testing.assert_array_equal(f[:, data.n_classes + 1], data.entropy[:, k])
        np.testing.assert_array_equal(f[:, data.n_classes + 2], data.vote[:, k])


def test_policy_scores_match_the_per_sample_reference():
    data = _data(n=60, n_exits=3, n_classes=4, seed=8)
    rng = np.random.default_rng(0)
    coefs = [rng.normal(size=4 + 3 + k) for k in range(3)]
    intercepts = rng.normal(size=3)
    policy = EENetPolicy(
        "eenet", [0.5, 0.5, -np.inf], data.costs, 4, coefs=coefs, intercepts=intercepts
    )
    want = ref_utility_scores(np.asarray(data.probs), coefs, intercepts)
    np.testing.assert_allclose(policy.compute_scores(data), want, rtol=1e-12)


# -- the LP --------------------------------------------------------------------------------------
@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 5), st.floats(0.0, 1.0))
def test_lp_fast_path_matches_cvxpy(seed, n_exits, share):
    rng = np.random.default_rng(seed)
    n = 40
    scores = rng.random((n, n_exits))
    costs = np.cumsum(rng.uniform(0.1, 1.0, n_exits))
    budget = budget_at(costs, share)
    x, value = lp_exit_assignment(scores, costs, budget)
    x_ref, value_ref = lp_exit_assignment_cvxpy(scores, costs, budget)
    assert value == pytest.approx(value_ref, rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(x.sum(axis=1), 1.0)
    assert (x >= 0).all()
    assert (x @ costs).mean() <= budget + 1e-12
    assert np.count_nonzero((x > 0) & (x < 1)) <= 2  # one fractional sample at most
    # Continuous random scores make the optimum unique: same exit distribution.
    np.testing.assert_allclose(x.mean(axis=0), x_ref.mean(axis=0), atol=1e-5)


def test_lp_fast_path_handles_ties_and_equal_costs():
    rng = np.random.default_rng(3)
    scores = rng.choice([0.2, 0.5, 0.9], size=(30, 4))
    costs = np.array([1.0, 1.0, 2.0, 2.0])
    for budget in (1.0, 1.2, 1.5, 2.0):
        x, value = lp_exit_assignment(scores, costs, budget)
        _, value_ref = lp_exit_assignment_cvxpy(scores, costs, budget)
        assert value == pytest.approx(value_ref, rel=1e-6)
        assert (x @ costs).mean() <= budget + 1e-12


def test_lp_takes_the_best_exits_when_the_budget_allows():
    scores = np.array([[0.9, 0.1, 0.2], [0.1, 0.2, 0.8]])
    x, value = lp_exit_assignment(scores, np.array([1.0, 2.0, 3.0]), 3.0)
    np.testing.assert_array_equal(x, [[1, 0, 0], [0, 0, 1]])
    assert value == pytest.approx(1.7)


# -- calibration ---------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=6),
    st.lists(st.sampled_from([0.0, 0.3, 1.0, 2.5]), min_size=6, max_size=6),
    st.floats(0.0, 1.0),
    st.integers(1, 300),
)
# Found by CI: equal-cost first exits used to stop the fine-tuning (spare budget 0.45 > 0.3).
@example(raw=[0, 0, 0, 0], steps=[0.0, 0.3, 0.3, 0.0, 0.0, 0.0], share=0.75, n_samples=1)
def test_calibrated_counts_meet_the_budget_within_one_step(raw, steps, share, n_samples):
    raw = np.array(raw, dtype=float)
    if raw.sum() == 0:
        raw[0] = 1
    fractions = raw / raw.sum()
    n_exits = fractions.size
    costs = 1.0 + np.cumsum(np.r_[0.0, steps[: n_exits - 1]])
    budget = budget_at(costs, share)
    counts, _ = budget_counts(fractions, costs, budget, n_samples)
    assert counts.sum() == n_samples and (counts >= 0).all()
    cost = engine.mean_cost_from_counts(counts, costs)
    assert cost <= budget
    # No single sample can move to the next dearer exit without breaking the budget.
    for k in range(n_exits - 1):
        dearer = np.flatnonzero(costs > costs[k])
        if counts[k] and dearer.size:
            moved = counts.copy()
            moved[k] -= 1
            moved[dearer[0]] += 1
            assert engine.mean_cost_from_counts(moved, costs) > budget
    if n_exits > 1:
        assert budget - cost < np.diff(costs).max() / n_samples + 1e-12


def test_calibration_keeps_a_distribution_that_fits_the_budget_exactly():
    fractions = np.array([0.5, 0.25, 0.25])
    costs = np.array([1.0, 2.0, 4.0])
    counts, tilt = budget_counts(fractions, costs, 2.0, 100)
    np.testing.assert_array_equal(counts, [50, 25, 25])
    assert abs(tilt) < 1e-6


def test_calibration_tilts_towards_cheap_exits_when_over_budget():
    fractions = np.array([0.2, 0.3, 0.5])
    costs = np.array([1.0, 2.0, 4.0])
    counts, tilt = budget_counts(fractions, costs, 2.0, 1000)
    assert tilt > 0
    assert engine.mean_cost_from_counts(counts, costs) <= 2.0
    # Mass moves to cheaper exits; their order by size is kept where the tilt allows.
    assert counts[0] > 200 and counts[2] < 500


# -- fitting -------------------------------------------------------------------------------------
@settings(max_examples=12, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(2, 5),
    st.floats(0.0, 1.0),
    st.sampled_from(["learned", "lp"]),
)
def test_budget_is_met_on_the_fitting_data(seed, n_exits, share, distribution):
    rng = np.random.default_rng(seed)
    costs = np.cumsum(rng.uniform(0.2, 2.0, n_exits))
    budget = budget_at(costs, share)
    data = _data(n=int(rng.integers(20, 150)), n_exits=n_exits, n_classes=3, seed=seed, costs=costs)
    policy = eeopt.fit(
        data,
        method="eenet",
        budget=budget,
        distribution=distribution,
        random_state=seed,
        **(FAST_LP if distribution == "lp" else FAST),
    )
    result = policy.evaluate(data)
    assert result.mean_cost <= budget
    # Continuous scores (no ties): the spare budget is below one sample's cost step.
    assert budget - result.mean_cost < np.diff(costs).max() / data.n_samples + 1e-12


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_budget_at_the_ends_of_the_range(share):
    data = _data(n=100, seed=1, costs=[1.0, 2.0, 3.0, 4.0])
    budget = 1.0 + 3.0 * share
    policy = eeopt.fit(data, method="eenet", budget=budget, random_state=0, **FAST)
    result = policy.evaluate(data)
    assert result.mean_cost == budget
    assert result.exit_fractions[0 if share == 0 else -1] == 1.0


def test_same_random_state_gives_the_same_policy():
    data = _data(n=150, seed=5)
    a = eeopt.fit(data, method="eenet", budget=2.2, random_state=7, **FAST)
    b = eeopt.fit(data, method="eenet", budget=2.2, random_state=7, **FAST)
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())


def test_lp_distribution_with_either_solver_gives_the_same_policy():
    data = _data(n=120, seed=9)
    exact = eeopt.fit(
        data, method="eenet", budget=2.4, distribution="lp", random_state=0, **FAST_LP
    )
    via_cvxpy = eeopt.fit(
        data,
        method="eenet",
        budget=2.4,
        distribution="lp",
        solver="cvxpy",
        random_state=0,
        **FAST_LP,
    )
    np.testing.assert_allclose(
        exact.fit_info_["fractions"], via_cvxpy.fit_info_["fractions"], atol=1e-6
    )
    assert exact.evaluate(data).mean_cost <= 2.4


def _degenerate_cases():
    rng = np.random.default_rng(0)
    n, n_exits, n_classes = 40, 3, 4
    labels = rng.integers(0, n_classes, n)
    one_hot = np.zeros((n, n_exits, n_classes))
    one_hot[np.arange(n), :, labels] = 1.0  # probabilities with exact zeros; every exit right
    none_right = np.zeros((n, n_exits, n_classes))
    none_right[np.arange(n), :, (labels + 1) % n_classes] = 1.0
    one_class = np.full((n, n_exits, n_classes), -50.0)
    one_class[:, :, 2] = 50.0  # a single class always predicted; exp underflows to 0
    underflow = rng.normal(scale=2000.0, size=(n, n_exits, n_classes))
    return {
        "all-zero logits": (np.zeros((n, n_exits, n_classes)), labels),
        "all exits correct": (one_hot, labels),
        "no exit correct": (none_right, labels),
        "one class always": (one_class, labels),
        "underflowing probabilities": (underflow, labels),
    }


@pytest.mark.parametrize("case", list(_degenerate_cases()))
@pytest.mark.parametrize("distribution", ["learned", "lp"])
def test_no_nan_on_degenerate_inputs(case, distribution, tmp_path):
    logits, labels = _degenerate_cases()[case]
    costs = [1.0, 2.0, 3.0]
    for budget in (1.0, 1.6, 3.0):
        with np.errstate(divide="raise", invalid="raise"):
            policy = eeopt.fit(
                logits,
                labels,
                costs,
                method="eenet",
                budget=budget,
                distribution=distribution,
                random_state=0,
                **(FAST_LP if distribution == "lp" else FAST),
            )
        assert not np.isnan(policy.thresholds_).any()
        assert all(np.isfinite(c).all() for c in policy.coefs_)
        scores = policy.compute_scores(eeopt.ExitData(logits, labels, costs))
        assert np.isfinite(scores).all()
        result = policy.evaluate(logits, labels)
        assert result.mean_cost <= budget
        policy.save(tmp_path / "p.json")  # NaN anywhere would refuse to save


def test_wrong_answers_are_never_free():
    # The published code counts a sample that no threshold lets out as wrong at zero cost;
    # here every sample leaves at some exit and pays for it.
    data = _data(n=100, seed=11)
    policy = eeopt.fit(data, method="eenet", budget=2.0, random_state=0, **FAST)
    result = policy.evaluate(data)
    exits = policy.exit_index(data)
    assert ((exits >= 0) & (exits < data.n_exits)).all()
    assert result.mean_cost == pytest.approx(data.costs[exits].mean())


def test_single_exit_model():
    logits, labels = make_multi_exit(n=30, n_exits=1, n_classes=3)
    policy = eeopt.fit(logits, labels, [2.0], method="eenet", budget=2.0, **FAST)
    np.testing.assert_array_equal(policy.exit_index(logits), 0)


def test_progress_bar_only_when_verbose(capsys):
    data = _data(n=60, seed=1)
    eeopt.fit(data, method="eenet", budget=2.0, random_state=0, max_iter=3, n_rounds=1)
    assert "eenet" in capsys.readouterr().err
    eeopt.fit(
        data, method="eenet", budget=2.0, random_state=0, max_iter=3, n_rounds=1, verbose=False
    )
    assert capsys.readouterr().err == ""


# -- the authors' recipe (Adam) ------------------------------------------------------------------
ADAM = {"optimizer": "adam", "max_iter": 30, "hidden": 4, "verbose": False}


def test_adam_steps_follow_torch_formula():
    params = np.array([1.0, -2.0])
    opt = Adam(params, lr=0.1)
    m = v = np.zeros(2)
    want = np.array([1.0, -2.0])
    for t in range(1, 4):
        grad = 2 * params + 0.01 * params  # a quadratic with weight decay 0.01 folded in
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        want = want - 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        opt.step(grad)
        np.testing.assert_allclose(params, want, rtol=1e-12)


def test_adam_epoch_losses_are_the_transcribed_formulas():
    data = _data(n=40, n_exits=3, seed=12)
    features = base_features(data)
    dims = [f.shape[1] + k for k, f in enumerate(features)]
    theta = init_assigner(dims, 4, np.random.default_rng(0))
    # One minibatch holding every sample and one epoch: the recorded losses are those of the
    # starting point (a zero scorer, so every utility score is 1/2).
    fit = train_adam(
        features, data.correct, data.costs, 2.5, theta, np.random.default_rng(1),
        hidden=4, alpha_ce=1e-3, alpha_cost=1e-2, l2=1e-2, learning_rate=1e-3,
        batch_size=64, max_epochs=1, period=10, n_iter_no_change=5,
    )  # fmt: skip
    inputs = [scorer_inputs(features[k], np.full((40, k), 0.5)) for k in range(3)]
    want = ref_eenet_losses(
        np.zeros((40, 3)), assigner_logits(theta, inputs, 4), data.correct, data.costs, 2.5
    )
    for key in ("L_g", "L_CE", "L_budget"):
        assert fit.epochs[key][0] == pytest.approx(want[key], rel=1e-12), key
    total = want["L_g"] + 1e-3 * want["L_CE"] + 1e-2 * want["L_budget"]
    assert fit.epochs["total"][0] == pytest.approx(total, rel=1e-12)


def test_adam_losses_decrease():
    data = _data(n=200, n_exits=3, seed=13)
    policy = eeopt.fit(
        data, method="eenet", budget=2.0, random_state=0, learning_rate=3e-3, period=5,
        batch_size=64, **ADAM,
    )  # fmt: skip
    record = policy.fit_info_["history"][0]
    epochs = record["epochs"]
    phase = np.array(epochs["phase"])
    assert list(phase[:10]) == ["g"] * 5 + ["h"] * 5  # alternation every `period` epochs
    L_g = np.array(epochs["L_g"])
    h_loss = 1e-3 * np.array(epochs["L_CE"]) + 1e-2 * np.array(epochs["L_budget"])
    # The first block lowers L_g, the second the h loss (epoch means of their minibatches).
    assert np.all(np.diff(L_g[:5]) < 0), L_g[:5]
    assert h_loss[9] < h_loss[5], h_loss[5:10]
    assert epochs["total"][record["best_epoch"]] < epochs["total"][0]


def test_adam_is_deterministic_under_random_state():
    data = _data(n=150, seed=14)
    a, b, c = (
        eeopt.fit(data, method="eenet", budget=2.2, random_state=seed, **ADAM) for seed in (3, 3, 4)
    )
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    assert json.dumps(a.to_dict()) != json.dumps(c.to_dict())  # minibatches and init differ


def test_adam_stops_early_and_keeps_the_best_epoch():
    data = _data(n=100, seed=15)
    policy = eeopt.fit(
        data, method="eenet", budget=2.0, random_state=0, learning_rate=0.5,
        n_iter_no_change=3, **{**ADAM, "max_iter": 200},
    )  # fmt: skip
    record = policy.fit_info_["history"][0]
    totals = record["epochs"]["total"]
    assert len(totals) < 200  # a step this large stops improving quickly
    assert len(totals) == record["best_epoch"] + 3 + 1
    assert totals[record["best_epoch"]] == min(totals)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_restarts_keep_the_most_accurate_on_the_fitting_data(optimizer):
    data = _data(n=150, seed=16)
    options = ADAM if optimizer == "adam" else FAST
    policy = eeopt.fit(data, method="eenet", budget=2.0, random_state=0, n_restarts=3, **options)
    history = policy.fit_info_["history"]
    assert sorted({h["restart"] for h in history}) == [0, 1, 2]
    best = max(h["fit_accuracy"] for h in history)
    assert history[policy.fit_info_["selected"]]["fit_accuracy"] == best
    assert policy.evaluate(data).accuracy == best
    assert policy.evaluate(data).mean_cost <= 2.0


def test_training_on_a_subsample_still_meets_the_budget_on_every_sample():
    data = _data(n=300, seed=17)
    a = eeopt.fit(data, method="eenet", budget=2.1, random_state=0, max_samples=80, **FAST)
    b = eeopt.fit(data, method="eenet", budget=2.1, random_state=0, max_samples=80, **FAST)
    assert a.fit_info_["n_train_samples"] == 80
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    result = a.evaluate(data)
    assert result.mean_cost <= 2.1
    assert 2.1 - result.mean_cost < np.diff(data.costs).max() / data.n_samples + 1e-12
    full = eeopt.fit(data, method="eenet", budget=2.1, random_state=0, max_samples=None, **FAST)
    assert full.fit_info_["n_train_samples"] == 300


def test_max_samples_none_trains_on_every_sample_auto_on_the_default(monkeypatch):
    """None means every sample even where the optimiser's default subsample is smaller."""
    from eeopt.methods import eenet

    lbfgs = {**eenet.OPTIMIZER_DEFAULTS["lbfgs"], "max_samples": 100}
    monkeypatch.setitem(eenet.OPTIMIZER_DEFAULTS, "lbfgs", lbfgs)
    data = _data(n=300, seed=17)
    for max_samples, expected in ((None, 300), ("auto", 100)):
        policy = eeopt.fit(
            data, method="eenet", budget=2.1, random_state=0, max_samples=max_samples, **FAST
        )
        assert policy.fit_info_["n_train_samples"] == expected


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({}, ValueError, "needs budget"),
        ({"budget": 2.0, "target": "accuracy"}, ValueError, "budget only"),
        ({"budget": 2.0, "tolerance": 0.01}, ValueError, "budget only"),
        ({"budget": 0.5}, ValueError, "budget"),
        ({"budget": 2.0, "distribution": "geometric"}, ValueError, "distribution"),
        ({"budget": 2.0, "solver": "exact"}, ValueError, "solver applies"),
        ({"budget": 2.0, "distribution": "lp", "solver": "gurobi"}, ValueError, "solver"),
        ({"budget": 2.0, "hidden": 0}, ValueError, "hidden"),
        ({"budget": 2.0, "hidden": 2.5}, TypeError, "hidden"),
        ({"budget": 2.0, "max_iter": 0}, ValueError, "max_iter"),
        ({"budget": 2.0, "n_rounds": -1}, ValueError, "n_rounds"),
        ({"budget": 2.0, "alpha_ce": -1.0}, ValueError, "alpha_ce"),
        ({"budget": 2.0, "alpha_cost": float("nan")}, ValueError, "alpha_cost"),
        ({"budget": 2.0, "l2": float("inf")}, ValueError, "l2"),
        ({"budget": 2.0, "distribution": "lp", "hidden": 8}, ValueError, "hidden applies"),
        ({"budget": 2.0, "distribution": "lp", "alpha_ce": 0.1}, ValueError, "alpha_ce applies"),
        ({"budget": 2.0, "optimizer": "adam", "n_rounds": 3}, ValueError, "n_rounds counts"),
        ({"budget": 2.0, "alpha_ce": float("inf")}, ValueError, "alpha_ce"),
        ({"budget": 2.0, "l2": "big"}, TypeError, "l2"),
        ({"budget": 2.0, "verbose": "yes"}, TypeError, "verbose"),
        ({"budget": 2.0, "random_state": 1.5}, TypeError, "random_state"),
        ({"budget": 2.0, "epochs": 10}, ValueError, "epochs"),
        ({"budget": 2.0, "optimizer": "sgd"}, ValueError, "optimizer"),
        ({"budget": 2.0, "learning_rate": 1e-3}, ValueError, "optimizer='adam' only"),
        ({"budget": 2.0, "period": 5}, ValueError, "optimizer='adam' only"),
        ({"budget": 2.0, "optimizer": "adam", "alpha_cost": "auto"}, ValueError, "alpha_cost"),
        ({"budget": 2.0, "alpha_cost": "big"}, ValueError, "alpha_cost"),
        ({"budget": 2.0, "optimizer": "adam", "learning_rate": 0.0}, ValueError, "learning_rate"),
        ({"budget": 2.0, "optimizer": "adam", "batch_size": 0}, ValueError, "batch_size"),
        ({"budget": 2.0, "n_restarts": 0}, ValueError, "n_restarts"),
        ({"budget": 2.0, "max_samples": 0}, ValueError, "max_samples"),
        ({"budget": 2.0, "max_samples": "all"}, ValueError, "max_samples"),
        ({"budget": 2.0, "distribution": "lp", "optimizer": "adam"}, ValueError, "optimizer"),
        ({"budget": 2.0, "distribution": "lp", "n_restarts": 2}, ValueError, "n_restarts"),
    ],
)
def test_bad_options_are_refused(options, error, match):
    data = _data(n=30)
    with pytest.raises(error, match=match):
        eeopt.fit(data, method="eenet", **options)


def test_labels_are_required():
    logits, _ = make_multi_exit(n=30)
    with pytest.raises(ValueError, match="labels"):
        eeopt.fit(logits, method="eenet", budget=2.0)


# -- stability on a shipped dataset --------------------------------------------------------------
def _mnist1d_fit_split():
    datasets = pytest.importorskip("eeopt.datasets")
    return datasets.load("mnist1d", "val", n_samples=1000)


def _fit_summary(data, budget, seed):
    policy = eeopt.fit(data, method="eenet", budget=budget, random_state=seed, verbose=False)
    result = policy.evaluate(data)
    return result.accuracy, result.exit_fractions, policy


def test_fit_changes_smoothly_with_the_budget():
    # Issue 15: budgets 0.002% apart gave fitting accuracies 0.937 to 0.975 and unrelated exit
    # distributions (L-BFGS stopping on the budget loss's kink).
    data = _mnist1d_fit_split()
    costs = data.costs
    base = costs[0] + 0.15 * (costs[-1] - costs[0])
    fits = [_fit_summary(data, base * (1 + rel), 0) for rel in np.linspace(-1e-3, 1e-3, 11)]
    accuracies = np.array([f[0] for f in fits])
    fractions = np.array([f[1] for f in fits])
    assert accuracies.max() - accuracies.min() <= 0.01, accuracies
    assert np.abs(fractions - fractions[5]).max() <= 0.02, fractions
    # The paper's default weight is an exact penalty here: the first training budget (B itself)
    # is its optimum, and the larger ones are its optima at smaller alpha_cost.
    history = fits[5][2].fit_info_["history"]
    assert history[0]["training_budget"] == pytest.approx(base)
    assert all(h["alpha_cost"] < 1e-2 for h in history)


def test_fit_does_not_depend_on_the_seed():
    data = _mnist1d_fit_split()
    costs = data.costs
    budget = costs[0] + 0.3 * (costs[-1] - costs[0])
    fits = [_fit_summary(data, budget, seed) for seed in range(5)]
    accuracies = np.array([f[0] for f in fits])
    fractions = np.array([f[1] for f in fits])
    assert accuracies.max() - accuracies.min() <= 0.01, accuracies
    assert np.abs(fractions - fractions[0]).max() <= 0.02, fractions


# -- held-out data of a real multi-exit model ----------------------------------------------------
def test_eenet_is_at_least_as_accurate_as_msdnet_on_held_out_data(record_property):
    datasets = pytest.importorskip(
        "eeopt.datasets", reason="eeopt.datasets (shipped real data) is not merged yet"
    )
    val = datasets.load("mnist1d", "val")
    test = datasets.load("mnist1d", "test")
    costs = val.costs
    budgets = np.linspace(costs[0], costs[-1], 7)[1:-1]
    rows, wins = [], 0
    for budget in budgets:
        eenet = eeopt.fit(val, method="eenet", budget=budget, random_state=0, verbose=False)
        msdnet = eeopt.fit(val, method="msdnet", budget=budget)
        a, b = eenet.evaluate(test).accuracy, msdnet.evaluate(test).accuracy
        wins += a >= b
        rows.append(f"budget {budget:.4g}: eenet {a:.4f} msdnet {b:.4f}")
    report = "\n".join(rows)
    print("\nEENet vs MSDNet on mnist1d test (fitted on val):\n" + report)
    record_property("eenet_vs_msdnet", report)
    assert wins == budgets.size, report  # ties at the top budgets: both reach the final exit
