import math

import numpy as np
import pytest
from conftest import budget_at, make_multi_exit
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from reference import (
    ref_all_levels,
    ref_beem_scores,
    ref_evaluate,
    ref_exit,
    ref_exit_error_thresholds,
    ref_per_exit_level_sweep,
)

import eeopt
from eeopt.methods._beem_sweep import PerExitSweep
from eeopt.methods.beem import (
    beem_scores,
    exit_error_thresholds,
    level_sweep,
)


def make_tied_data(n=24, n_exits=4, n_classes=3, seed=0, costs=None):
    """Probabilities with few distinct max values (many ties) and exits improving with depth."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n)
    p_correct = np.linspace(0.4, 0.85, n_exits)
    probs = np.empty((n, n_exits, n_classes))
    for k in range(n_exits):
        right = rng.random(n) < p_correct[k]
        other = (labels + rng.integers(1, n_classes, size=n)) % n_classes
        pred = np.where(right, labels, other)
        top = rng.choice([0.5, 0.6, 0.8, 1.0], size=n)
        probs[:, k, :] = ((1 - top) / (n_classes - 1))[:, None]
        probs[np.arange(n), k, pred] = top
    return eeopt.ExitData(probs, labels, costs, input="probs")


def _ref_scores(data, weights, reset):
    return np.array(
        [
            ref_beem_scores(data.predictions[i], data.maxprob[i], weights, reset)
            for i in range(data.n_samples)
        ]
    )


# -- the score --------------------------------------------------------------------------------
@settings(max_examples=30)
@given(
    arrays(np.int64, st.tuples(st.integers(1, 12), st.integers(1, 6)), elements=st.integers(0, 2)),
    st.sampled_from(["paper", "zero"]),
    st.data(),
)
def test_scores_match_the_per_sample_reference(predictions, reset, draw):
    shape = predictions.shape
    confidence = draw.draw(
        arrays(np.float32, shape, elements=st.floats(0, 1, width=32)), label="confidence"
    )
    weights = draw.draw(arrays(np.float64, shape[1], elements=st.floats(1e-3, 10)), label="weights")
    got = beem_scores(predictions, confidence, weights, reset)
    expected = [
        ref_beem_scores(predictions[i], confidence[i], weights, reset) for i in range(shape[0])
    ]
    # Same additions in the same order: identical floats, not merely close.
    np.testing.assert_array_equal(got, np.array(expected).reshape(shape))


@pytest.mark.parametrize("block", [1, 12, 1 << 15])
@pytest.mark.parametrize("reset", ["paper", "zero"])
def test_scores_do_not_depend_on_the_row_blocks(monkeypatch, block, reset):
    """Scores are accumulated in blocks of rows; any block size gives the per-sample loop's
    floats, including a last block that is not full."""
    import eeopt.methods.beem as beem

    rng = np.random.default_rng(2)
    predictions = rng.integers(0, 2, (53, 5))
    confidence = rng.random((53, 5)).astype(np.float32)
    weights = rng.random(5) + 0.1
    monkeypatch.setattr(beem, "_SCORE_BLOCK", block)
    expected = [
        ref_beem_scores(p, c, weights, reset) for p, c in zip(predictions, confidence, strict=True)
    ]
    np.testing.assert_array_equal(beem_scores(predictions, confidence, weights, reset), expected)


def test_zero_reset_drops_the_disagreeing_vote():
    preds = np.array([[1, 1, 2, 2]])
    conf = np.array([[0.5, 0.5, 0.5, 0.5]])
    weights = [1.0, 2.0, 3.0, 4.0]
    np.testing.assert_array_equal(beem_scores(preds, conf, weights), [[0.5, 1.5, 1.5, 3.5]])
    np.testing.assert_array_equal(
        beem_scores(preds, conf, weights, reset="zero"), [[0.0, 1.0, 0.0, 2.0]]
    )


@pytest.mark.parametrize("reset", ["paper", "zero"])
def test_policy_exits_match_the_reference_loop(reset):
    data = make_tied_data(n=60, n_exits=5, seed=3)
    alpha = [0.6, 1.0, np.inf, 1.2]
    policy = eeopt.fit(data, method="beem-c", alpha=alpha, reset=reset)
    weights = data.costs / data.costs[-1]
    scores = _ref_scores(data, weights, reset)
    exits = policy.exit_index(data)
    for i in range(data.n_samples):
        assert exits[i] == ref_exit(list(scores[i]), alpha + [-math.inf])
    np.testing.assert_array_equal(
        policy.predict(data), data.predictions[np.arange(data.n_samples), exits]
    )


def test_weights_of_each_variant():
    data = make_tied_data(n=80, n_exits=4, seed=2, costs=[1.0, 3.0, 4.0, 8.0])
    c = eeopt.fit(data, method="beem-c", alpha=1.0)
    a = eeopt.fit(data, method="beem-a", alpha=1.0)
    u = eeopt.fit(data, method="beem-a", alpha=1.0, weights=[4, 3, 2, 1])
    np.testing.assert_array_equal(c.weights_, [1 / 8, 3 / 8, 4 / 8, 1.0])
    np.testing.assert_array_equal(a.weights_, data.correct.mean(axis=0))
    np.testing.assert_array_equal(u.weights_, [4.0, 3.0, 2.0, 1.0])
    np.testing.assert_array_equal(c.compute_scores(data), _ref_scores(data, c.weights_, "paper"))


# -- the error-rate rule against brute force ---------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("min_samples", [1, 3])
@pytest.mark.parametrize("mode", ["per-exit", "global"])
def test_thresholds_match_brute_force(seed, min_samples, mode):
    data = make_tied_data(n=30, n_exits=4, seed=seed)
    scores = beem_scores(data.predictions, data.maxprob, data.exit_accuracy)
    correct = data.correct
    p = 1 - data.exit_accuracy[-1]
    for level in (0.0, p, p + 0.05, 0.5, 1.0):
        got = exit_error_thresholds(
            scores, correct, level, min_samples=min_samples, thresholds=mode
        )
        expected = ref_exit_error_thresholds(scores, correct, level, min_samples, mode)
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("mode", ["per-exit", "global"])
def test_exit_error_target_keeps_each_exit_within_p(mode):
    logits, labels = make_multi_exit(n=2000, n_exits=5, n_classes=10, seed=4)
    data = eeopt.ExitData.from_logits(logits, labels)
    p = 1 - data.exit_accuracy[-1]
    for tolerance in (0.0, 0.03):
        policy = eeopt.fit(data, method="beem-a", per_exit=mode == "per-exit", tolerance=tolerance)
        exits = policy.exit_index(data)
        leaving = exits < data.n_exits - 1
        assert leaving.any()
        wrong = ~data.correct[np.arange(data.n_samples), exits]
        if mode == "per-exit":
            for k in range(data.n_exits - 1):
                if np.any(exits == k):
                    assert wrong[exits == k].mean() <= p + tolerance
        else:
            assert wrong[leaving].mean() <= p + tolerance
        assert policy.fit_info_["target"] == "exit-error"
        assert policy.fit_info_["final_error"] == pytest.approx(p)


def test_min_samples_disables_small_exits():
    data = make_tied_data(n=40, n_exits=4, seed=1)
    policy = eeopt.fit(data, method="beem-a", min_samples=41)
    assert np.all(np.isinf(policy.thresholds_[:-1]))
    np.testing.assert_array_equal(policy.exit_index(data), data.n_exits - 1)


# -- properties of the exit rule -----------------------------------------------------------------
@settings(max_examples=30)
@given(st.integers(0, 10_000), st.integers(2, 6), st.sampled_from(["paper", "zero"]))
def test_infinite_alpha_everywhere_is_the_final_exit(seed, n_exits, reset):
    logits, labels = make_multi_exit(n=50, n_exits=n_exits, n_classes=4, seed=seed)
    data = eeopt.ExitData.from_logits(logits, labels)
    policy = eeopt.fit(data, method="beem-a", alpha=np.inf, reset=reset)
    result = policy.evaluate(data)
    np.testing.assert_array_equal(result.exit_index, n_exits - 1)
    np.testing.assert_array_equal(result.predictions, data.predictions[:, -1])
    assert result.accuracy == data.exit_accuracy[-1]
    assert result.mean_cost == data.costs[-1]


@settings(max_examples=40)
@given(
    st.integers(0, 10_000),
    arrays(np.float64, 4, elements=st.floats(0, 3)),
    st.integers(0, 3),
    st.floats(0, 3),
)
def test_raising_one_alpha_never_lowers_the_mean_cost(seed, alpha, which, increase):
    logits, labels = make_multi_exit(n=60, n_exits=5, n_classes=3, seed=seed)
    data = eeopt.ExitData.from_logits(logits, labels, costs=[1, 2, 3, 5, 8])
    higher = alpha.copy()
    higher[which] += increase
    before = eeopt.fit(data, method="beem-c", alpha=alpha).evaluate(data).mean_cost
    after = eeopt.fit(data, method="beem-c", alpha=higher).evaluate(data).mean_cost
    assert after >= before


# -- the level sweep and the targets --------------------------------------------------------------
def _brute_force_levels(data, weights, mode, max_level=1.0):
    """(level, accuracy, mean cost) of the rule at every possible error rate e / m."""
    scores = _ref_scores(data, weights, "paper")
    correct = data.correct.tolist()
    out = []
    for level in ref_all_levels(data.n_samples):
        if level > max_level:
            break
        thresholds = ref_exit_error_thresholds(scores, correct, level, 1, mode)
        ref = ref_evaluate(data.probs, data.labels, data.costs, scores, thresholds)
        out.append((level, ref["accuracy"], ref["mean_cost"]))
    return out


@pytest.mark.parametrize("mode", ["per-exit", "global"])
def test_level_sweep_lists_each_policy_once_with_its_outcome(mode):
    data = make_tied_data(n=40, n_exits=4, seed=5)
    scores = beem_scores(data.predictions, data.maxprob, data.exit_accuracy)
    sweep = level_sweep(scores, data.correct, data.costs, thresholds=mode)
    assert sweep.parameters[0] == 0.0
    assert np.all(np.diff(sweep.parameters) > 0)
    seen = set()
    for level, thresholds, cost, n_correct in zip(
        sweep.parameters, sweep.thresholds, sweep.mean_costs, sweep.n_correct, strict=True
    ):
        np.testing.assert_array_equal(
            thresholds, exit_error_thresholds(scores, data.correct, level, thresholds=mode)
        )
        exits = eeopt.engine.first_exit(scores, thresholds)
        exact = eeopt.engine.mean_cost(exits, data.costs)
        if mode == "per-exit":  # from exit counts, as the engine: bit for bit
            assert cost == exact
        else:  # running sums, as eeopt.targets.threshold_sweep: to rounding
            assert cost == pytest.approx(exact, rel=1e-12)
        right = data.correct[np.arange(data.n_samples), exits]
        assert n_correct == np.count_nonzero(right)
        # The accuracy gap's positive part: wrong at its exit, right at the last.
        assert sweep.n_lost()[len(seen)] == np.count_nonzero(~right & data.correct[:, -1])
        key = tuple(exits.tolist())
        assert key not in seen  # every step changes a decision
        seen.add(key)
    # ... and no policy of the family is missing.
    for level in ref_all_levels(data.n_samples):
        t = exit_error_thresholds(scores, data.correct, level, thresholds=mode)
        assert tuple(eeopt.engine.first_exit(scores, t).tolist()) in seen


def _predictions_and_weights(max_samples):
    """Predictions of up to ``max_samples`` samples at 2 to 5 exits (3 classes: many
    agreements) and weights with ties."""
    return st.integers(2, 5).flatmap(
        lambda k: st.tuples(
            arrays(
                np.int64,
                st.tuples(st.integers(1, max_samples), st.just(k)),
                elements=st.integers(0, 2),
            ),
            arrays(np.float64, k, elements=st.sampled_from([0.25, 0.5, 1.0])),
        )
    )


def _draw_rule_inputs(data, predictions, weights):
    """Tied confidences, correctness and costs for those predictions: (scores, correct, costs)."""
    shape = predictions.shape
    confidence = data.draw(
        arrays(np.float64, shape, elements=st.sampled_from([0.5, 0.6, 0.8, 1.0])), label="conf"
    )
    correct = data.draw(arrays(np.bool_, shape), label="correct")
    costs = np.cumsum(data.draw(arrays(np.float64, shape[1], elements=st.floats(0.1, 3))))
    return beem_scores(predictions, confidence, weights), correct, costs


@settings(max_examples=60)
@given(
    _predictions_and_weights(30),
    st.integers(1, 4),
    st.sampled_from([1.0, 0.5, 0.2, 0.0]),
    st.booleans(),
    st.data(),
)
def test_per_exit_sweep_gives_the_previous_sweeps_policies_bit_for_bit(
    arrays_, min_samples, max_level, in_pieces, data
):
    """Levels, thresholds, exit counts, correct counts and mean costs equal those of the
    step-by-step sweep it replaced (tests/reference.py), on tied scores, with min_samples > 1
    and max_level < 1; also when the kernel is stopped and resumed every 7 policies. (The
    kernel is compiled where numba is installed, plain Python elsewhere: CI runs the latter.)"""
    scores, correct, costs = _draw_rule_inputs(data, *arrays_)
    shape = scores.shape
    if in_pieces:
        state = PerExitSweep(scores, correct, min_samples)
        parts = []
        while not state.done:
            parts.append(state.run(max_level, 7))
        pieces = (np.concatenate(p) for p in zip(*parts, strict=True))
        levels, alphas, counts, n_correct, n_lost = pieces
        thresholds = np.c_[alphas, np.full(levels.shape[0], -np.inf)]
        mean_costs = eeopt.engine.mean_cost_from_counts(counts, costs)
    else:
        sweep = level_sweep(scores, correct, costs, min_samples=min_samples, max_level=max_level)
        levels, thresholds, n_correct = sweep.parameters, sweep.thresholds, sweep.n_correct
        counts, mean_costs = sweep.exit_counts(np.arange(levels.shape[0])), sweep.mean_costs
        n_lost = sweep.n_lost()
    # Wrong at its exit and right at the last, per policy, from its thresholds.
    rows = np.arange(shape[0])
    expected_lost = [
        np.count_nonzero(~correct[rows, eeopt.engine.first_exit(scores, t)] & correct[:, -1])
        for t in thresholds
    ]
    np.testing.assert_array_equal(n_lost, expected_lost)
    ref_levels, ref_thresholds, ref_counts, ref_correct = ref_per_exit_level_sweep(
        scores, correct, costs, min_samples, max_level
    )
    np.testing.assert_array_equal(levels, ref_levels)
    np.testing.assert_array_equal(thresholds, ref_thresholds)
    np.testing.assert_array_equal(counts, ref_counts)
    np.testing.assert_array_equal(n_correct, ref_correct)
    np.testing.assert_array_equal(mean_costs, eeopt.engine.mean_cost_from_counts(ref_counts, costs))


def _ref_policies_at(scores, correct, costs, levels, min_samples, mode):
    """The rule by brute force at each level in turn, a policy kept only where it differs
    from the previous level's: (levels, thresholds, exit counts, correct, lost)."""
    rows = np.arange(len(scores))
    kept = []
    for level in levels:
        t = ref_exit_error_thresholds(scores.tolist(), correct.tolist(), level, min_samples, mode)
        if kept and kept[-1][1] == t:
            continue
        exits = np.array([ref_exit(list(s), t) for s in scores])
        right = correct[rows, exits]
        counts = np.bincount(exits, minlength=scores.shape[1])
        lost = np.count_nonzero(~right & correct[:, -1])
        kept.append((level, t, counts, np.count_nonzero(right), lost))
    return [np.array(column) for column in zip(*kept, strict=True)]


@settings(max_examples=60)
@given(
    _predictions_and_weights(25),
    st.integers(1, 3),
    st.sampled_from([1.0, 0.5, 0.3]),
    st.one_of(
        st.integers(2, 30),
        st.lists(st.sampled_from([0.0, 0.1, 0.2, 0.25, 1 / 3, 0.5, 0.6, 1.0]), min_size=1),
    ),
    st.sampled_from(["per-exit", "global", "pieces"]),
    st.data(),
)
def test_levels_give_the_rule_at_each_level_bit_for_bit(
    arrays_, min_samples, max_level, levels, mode, data
):
    """levels=: the brute-force rule at each given level (an int: evenly spaced on [0,
    max_level]), each distinct policy once at its lowest level, with its exit counts, correct
    and lost counts; also when the kernel is stopped and resumed every 3 policies."""
    scores, correct, costs = _draw_rule_inputs(data, *arrays_)
    if isinstance(levels, int):
        grid = [max_level * i / (levels - 1) for i in range(levels)]
    else:
        grid = sorted(x for x in set(levels) if x <= max_level)
    if not grid:
        with pytest.raises(ValueError, match="levels= holds no error level"):
            level_sweep(scores, correct, costs, max_level=max_level, levels=levels)
        return
    rule = "global" if mode == "global" else "per-exit"
    ref = _ref_policies_at(scores, correct, costs, grid, min_samples, rule)
    if mode == "pieces":
        state = PerExitSweep(scores, correct, min_samples)
        parts = []
        while not state.done:
            parts.append(state.run(max_level, 3, np.array(grid)))
        got_levels, alphas, counts, n_correct, n_lost = (
            np.concatenate(p) for p in zip(*parts, strict=True)
        )
        thresholds = np.c_[alphas, np.full(got_levels.shape[0], -np.inf)]
    else:
        sweep = level_sweep(
            scores, correct, costs, min_samples=min_samples, thresholds=rule,
            max_level=max_level, levels=levels,
        )  # fmt: skip
        got_levels, thresholds, n_correct = sweep.parameters, sweep.thresholds, sweep.n_correct
        counts, n_lost = sweep.exit_counts(np.arange(len(sweep))), sweep.n_lost()
        np.testing.assert_array_equal(
            sweep.mean_costs, eeopt.engine.mean_cost_from_counts(ref[2], costs)
        )
    np.testing.assert_allclose(got_levels, ref[0], rtol=1e-15)  # i / (n - 1) of max_level
    np.testing.assert_array_equal(thresholds, ref[1])
    np.testing.assert_array_equal(counts, ref[2])
    np.testing.assert_array_equal(n_correct, ref[3])
    np.testing.assert_array_equal(n_lost, ref[4])


@pytest.mark.parametrize("mode", ["per-exit", "global"])
def test_levels_targets_and_front_choose_among_the_policies_at_those_levels(mode):
    """With levels=, the accuracy target is the cheapest of the rule's policies at those levels
    (up to p) that keeps the accuracy, a budget the most accurate within it, and the front the
    non-dominated ones: each policy here from exit_error_thresholds and policy.evaluate."""
    logits, labels = make_multi_exit(n=800, n_exits=5, n_classes=6, seed=21)
    data = eeopt.ExitData.from_logits(logits, labels, costs=[0.2, 0.3, 0.5, 0.8, 1.0])
    per_exit = mode == "per-exit"
    scores = beem_scores(data.predictions, data.maxprob, data.exit_accuracy)
    p = np.count_nonzero(~data.correct[:, -1]) / data.n_samples

    def outcomes(levels):
        out = []
        for level in levels:
            t = exit_error_thresholds(scores, data.correct, level, thresholds=mode)
            result = eeopt.fit(data, method="beem-a", alpha=t, per_exit=True).evaluate(data)
            out.append((level, result.accuracy, result.mean_cost))
        return out

    accuracy_levels = p * np.arange(12) / 11  # levels=12: evenly spaced, i / 11 of p
    policy = eeopt.fit(data, method="beem-a", target="accuracy", levels=12, per_exit=per_exit)
    result = policy.evaluate(data)
    holding = [(c, -a) for _, a, c in outcomes(accuracy_levels) if a >= data.exit_accuracy[-1]]
    assert (result.mean_cost, -result.accuracy) == pytest.approx(min(holding))
    assert policy.fit_info_["level"] in accuracy_levels
    # A budget: the most accurate policy within it, among the 9 given levels.
    levels = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8, 1.0]
    every = outcomes(levels)
    budget = float(np.median([c for _, _, c in every]))
    result = eeopt.fit(data, method="beem-a", budget=budget, levels=levels, per_exit=per_exit)
    result = result.evaluate(data)
    within = [(a, -c) for _, a, c in every if c <= budget]
    assert (result.accuracy, -result.mean_cost) == pytest.approx(max(within))
    front = eeopt.pareto_front(data, method="beem-a", levels=levels, per_exit=per_exit)
    expected = [
        (level, a, c)
        for level, a, c in every
        if not any(a2 >= a and c2 <= c and (a2, c2) != (a, c) for _, a2, c2 in every)
    ]
    points = sorted(zip(front.parameters, front.accuracies, front.mean_costs, strict=True))
    seen = {}
    for level, a, c in expected:  # one point per outcome, at its lowest level
        seen.setdefault((a, round(c, 12)), level)
    assert [x[0] for x in points] == sorted(seen.values())


def test_levels_option_conflicts_and_bad_values_name_the_fix():
    logits, labels = make_multi_exit(n=200, n_exits=4, seed=3)
    data = eeopt.ExitData.from_logits(logits, labels)
    for options in ({}, {"alpha": 1.0}, {"level": 0.1}, {"target": "exit-error"}):
        with pytest.raises(ValueError, match="remove levels="):
            eeopt.fit(data, method="beem-a", levels=8, **options)
    for value, error in [
        (1, ValueError),
        (0, ValueError),
        (True, TypeError),
        (1.5, TypeError),
        ("many", TypeError),
        ([], TypeError),
        ([[0.1, 0.2]], TypeError),
        ([0.1, np.nan], ValueError),
        ([-0.1, 0.2], ValueError),
        ([0.2, 1.5], ValueError),
    ]:
        with pytest.raises(error, match="levels"):
            eeopt.fit(data, method="beem-a", budget=float(data.costs[1]), levels=value)
    p = 1 - data.exit_accuracy[-1]
    with pytest.raises(ValueError, match="levels= holds no error level"):
        eeopt.fit(data, method="beem-a", target="accuracy", levels=[min(p + 0.01, 1.0)])


def test_the_reference_sweep_no_longer_repeats_a_level():
    """The step-by-step sweep used to stop early when two exits changed at one level and
    record an intermediate state; fixed in the reference, and the event sweep agrees."""
    rng = np.random.default_rng(0)
    n = 400
    predictions = rng.integers(0, 3, size=(n, 6))
    confidence = rng.choice([0.4, 0.6, 0.8, 1.0], size=(n, 6))
    correct = rng.random((n, 6)) < np.linspace(0.3, 0.8, 6)
    scores = beem_scores(predictions, confidence, np.ones(6))
    costs = np.arange(1.0, 7.0)
    levels, thresholds, _, _ = ref_per_exit_level_sweep(scores, correct, costs)
    assert np.all(np.diff(levels) > 0)
    for level, row in zip(levels[::25], thresholds[::25], strict=True):
        np.testing.assert_array_equal(row, exit_error_thresholds(scores, correct, level))
    np.testing.assert_array_equal(level_sweep(scores, correct, costs).thresholds, thresholds)


@settings(max_examples=15)
@given(st.integers(0, 10_000), st.floats(0, 1), st.sampled_from(["per-exit", "global"]))
def test_budget_is_never_exceeded_and_no_level_within_it_is_more_accurate(seed, share, mode):
    rng = np.random.default_rng(seed)
    costs = np.cumsum(rng.uniform(0.1, 1.0, 4))
    data = make_tied_data(n=int(rng.integers(6, 20)), n_exits=4, seed=seed, costs=costs)
    budget = budget_at(costs, share)
    policy = eeopt.fit(data, method="beem-a", budget=budget, per_exit=mode == "per-exit")
    result = policy.evaluate(data)
    assert result.mean_cost <= budget
    feasible = [
        (a, c)
        for _, a, c in _brute_force_levels(data, data.exit_accuracy, mode)
        if c <= budget * (1 + 1e-12)  # the loop sums costs one by one: allow its rounding
    ]
    best = max(a for a, _ in feasible)
    assert result.accuracy >= best - 1e-12
    assert result.mean_cost <= min(c for a, c in feasible if a >= best - 1e-12) + 1e-12


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("tolerance", [0.0, 0.05])
def test_accuracy_target_is_the_cheapest_level_up_to_p_that_holds(seed, tolerance):
    data = make_tied_data(n=18, n_exits=4, seed=seed)
    policy = eeopt.fit(data, method="beem-c", target="accuracy", tolerance=tolerance)
    result = policy.evaluate(data)
    floor = data.exit_accuracy[-1] - tolerance
    assert result.accuracy >= floor - 1e-12
    p = 1 - data.exit_accuracy[-1]
    assert policy.fit_info_["level"] <= p
    weights = data.costs / data.costs[-1]
    costs = [
        c for _, a, c in _brute_force_levels(data, weights, "per-exit", p) if a >= floor - 1e-12
    ]
    assert result.mean_cost == pytest.approx(min(costs))


def test_budget_target_on_larger_data_is_exact():
    logits, labels = make_multi_exit(n=1500, n_exits=5, n_classes=10, seed=6)
    data = eeopt.ExitData.from_logits(logits, labels, costs=[0.1, 0.2, 0.3, 0.7, 1.1])
    for budget in (0.1, 0.25, 0.5, 1.1):
        policy = eeopt.fit(data, method="beem-a", budget=budget)
        result = policy.evaluate(data)
        assert result.mean_cost <= budget
        assert result.accuracy == policy.fit_info_["fit_accuracy"]


def test_targets_need_labels_but_beem_c_alpha_does_not():
    logits, _ = make_multi_exit(n=50, n_exits=3)
    with pytest.raises(ValueError, match="labels"):
        eeopt.fit(logits, method="beem-c")
    with pytest.raises(ValueError, match="labels"):
        eeopt.fit(logits, method="beem-a", budget=2.0)
    with pytest.raises(ValueError, match="labels"):
        eeopt.fit(logits, method="beem-a", alpha=1.0)  # BEEM-A's weights are accuracies
    policy = eeopt.fit(logits, method="beem-c", alpha=0.8)
    assert policy.exit_index(logits).shape == (50,)
    policy = eeopt.fit(logits, method="beem-a", alpha=0.8, weights=[1, 1, 1])
    assert policy.fit_info_["target"] == "direct"


@pytest.mark.parametrize(
    "options, error, name",
    [
        ({"reset": "none"}, ValueError, "reset"),
        ({"thresholds": "per-layer"}, ValueError, "thresholds"),
        ({"weights": [1, 2]}, ValueError, "weights"),
        ({"weights": [1, -1, 1, 1]}, ValueError, "weights"),
        ({"weights": [0, 0, 0, 0]}, ValueError, "weights"),
        ({"weights": [1, np.nan, 1, 1]}, ValueError, "weights"),
        ({"weights": "cost"}, TypeError, "weights"),
        ({"min_samples": 0}, ValueError, "min_samples"),
        ({"min_samples": 1.5}, TypeError, "min_samples"),
        ({"tolerance": 1.5}, ValueError, "tolerance"),
        ({"tolerance": -0.1}, ValueError, "tolerance"),
        ({"alpha": np.nan}, ValueError, "alpha"),
        ({"alpha": [1.0, 2.0]}, ValueError, "alpha"),
        ({"alpha": [1.0, 2.0, 3.0], "per_exit": False}, ValueError, "per_exit"),
        ({"target": "budget"}, ValueError, "target"),
        ({"budget": 0.5}, ValueError, "budget"),
        ({"budget": 2.0, "alpha": 1.0}, ValueError, "alpha"),
        ({"budget": 2.0, "tolerance": 0.1}, ValueError, "tolerance"),
        ({"patience": 2}, ValueError, "patience"),
    ],
)
def test_bad_input_names_the_argument(options, error, name):
    logits, labels = make_multi_exit(n=50, n_exits=4)
    with pytest.raises(error, match=name):
        eeopt.fit(logits, labels, method="beem-a", **options)


def test_thresholds_option_is_the_deprecated_name_of_per_exit():
    logits, labels = make_multi_exit(n=200, n_exits=4)
    with pytest.warns(DeprecationWarning, match="per_exit=False"):
        old = eeopt.fit(logits, labels, method="beem-a", thresholds="global")
    new = eeopt.fit(logits, labels, method="beem-a", per_exit=False)
    np.testing.assert_array_equal(old.thresholds_, new.thresholds_)
    assert np.unique(new.thresholds_[:-1]).size == 1
    with pytest.raises(ValueError, match="not both"):
        eeopt.fit(logits, labels, method="beem-a", thresholds="global", per_exit=True)


def test_bad_score_input_names_the_argument():
    with pytest.raises(ValueError, match="reset"):
        beem_scores([[0, 1]], [[0.5, 0.5]], [1, 1], reset="half")
    with pytest.raises(ValueError, match="same shape"):
        beem_scores([[0, 1]], [[0.5, 0.5, 0.5]], [1, 1, 1])
    with pytest.raises(TypeError, match="predictions"):
        beem_scores([[0.0, 1.0]], [[0.5, 0.5]], [1, 1])
    with pytest.raises(ValueError, match="confidence"):
        beem_scores([[0, 1]], [[0.5, np.nan]], [1, 1])
    with pytest.raises(ValueError, match="weights"):
        beem_scores([[0, 1]], [[0.5, 0.5]], [1, -1])
    with pytest.raises(ValueError, match="weights"):
        beem_scores([[0, 1]], [[0.5, 0.5]], [0, 0])
    # A zero weight (an exit BEEM-A finds never right) is allowed: it adds nothing.
    assert beem_scores([[0, 0]], [[0.5, 0.5]], [0, 1]).tolist() == [[0.0, 0.5]]
    with pytest.raises(ValueError, match="level"):
        exit_error_thresholds([[0.5, 0.5]], [[True, False]], -0.1)
    with pytest.raises(ValueError, match="correct"):
        exit_error_thresholds([[0.5, 0.5]], [[1, 0]], 0.1)


def test_level_option_and_the_front_reproduce_sweep_points():
    logits, labels = make_multi_exit(n=600, n_exits=4, n_classes=5, seed=13)
    data = eeopt.ExitData.from_logits(logits, labels)
    front = eeopt.pareto_front(data, method="beem-a", verbose=False)
    assert front.parameter_name == "level" and len(front) > 3
    for level, cost, accuracy in zip(
        front.parameters, front.mean_costs, front.accuracies, strict=True
    ):
        result = eeopt.fit(data, method="beem-a", level=float(level)).evaluate(data)
        assert result.mean_cost == pytest.approx(cost) and result.accuracy == accuracy
    with pytest.raises(ValueError, match="level"):
        eeopt.fit(data, method="beem-a", level=0.1, budget=2.0)
    with pytest.raises(ValueError, match="level"):
        eeopt.fit(data, method="beem-a", level=1.5)


def test_prefix_scores_use_the_prefix_of_the_weights():
    logits, labels = make_multi_exit(n=100, n_exits=4, seed=2)
    data = eeopt.ExitData.from_logits(logits, labels)
    policy = eeopt.fit(data, method="beem-a", reset="zero")
    full = policy.compute_scores(data)
    for k in range(4):
        prefix = policy.prefix_scores(np.ascontiguousarray(data.probs[:, : k + 1]))
        np.testing.assert_array_equal(prefix, full[:, : k + 1])


@settings(max_examples=60)
@given(
    st.integers(2, 5).flatmap(
        lambda k: st.tuples(
            arrays(
                np.float64,
                st.tuples(st.integers(1, 25), st.just(k)),
                elements=st.sampled_from([0.2, 0.5, 0.8, 1.0]),
            ),
            arrays(
                np.float64,
                st.tuples(st.integers(1, 25), st.just(k)),
                elements=st.sampled_from([0.2, 0.5, 0.8, 1.0]),
            ),
        )
    ),
    st.sampled_from(["per-exit", "global"]),
    st.data(),
)
def test_a_level_path_on_other_samples_is_each_policys_evaluation(pair, mode, data):
    """LevelSweep.on replays the path's policies on other samples: every policy's exit counts,
    correct and lost counts and mean cost equal its own evaluation there (first_exit of its
    thresholds), on tied scores, with thresholds that rise and fall between policies, -inf and
    +inf among them."""
    fit_scores, other_scores = pair
    fit_correct = data.draw(arrays(np.bool_, fit_scores.shape), label="fit_correct")
    correct = data.draw(arrays(np.bool_, other_scores.shape), label="correct")
    n_exits = fit_scores.shape[1]
    costs = np.cumsum(data.draw(arrays(np.float64, n_exits, elements=st.floats(0.1, 3))))
    sweep = level_sweep(fit_scores, fit_correct, costs, thresholds=mode)
    on = sweep.on(other_scores, correct, costs)
    rows = np.arange(other_scores.shape[0])
    for j, thresholds in enumerate(sweep.thresholds):
        exits = eeopt.engine.first_exit(other_scores, thresholds)
        right = correct[rows, exits]
        np.testing.assert_array_equal(on.exit_counts([j])[0], np.bincount(exits, minlength=n_exits))
        assert on.n_correct[j] == np.count_nonzero(right)
        assert on.n_lost()[j] == np.count_nonzero(~right & correct[:, -1])
        assert on.mean_costs[j] == eeopt.engine.mean_cost(exits, costs)
    np.testing.assert_array_equal(on.parameters, sweep.parameters)
    assert on.n_samples == other_scores.shape[0]
    # Each sample's first position in an order (some policies left out) at which its exit is
    # wrong: a loop over the policies' evaluations.
    rank = data.draw(st.permutations(range(len(sweep))), label="order")
    rank = np.array(rank) + np.where(np.arange(len(sweep)) % 3 == 2, 10**9, 0)  # untested
    first = sweep.on(other_scores, correct, costs, rank=rank).first_wrong
    expected = np.full(other_scores.shape[0], np.iinfo(np.int64).max)
    for j, thresholds in enumerate(sweep.thresholds):
        wrong = ~correct[rows, eeopt.engine.first_exit(other_scores, thresholds)]
        expected[wrong] = np.minimum(expected[wrong], rank[j])
    np.testing.assert_array_equal(first, expected)
    # ... and, for a cost, its first position at which it leaves at exit k or later.
    reached = sweep.on(other_scores, correct, costs, rank=rank, reach=True)
    assert reached.first_wrong is None
    expected = np.full((other_scores.shape[0], n_exits - 1), np.iinfo(np.int64).max)
    for j, thresholds in enumerate(sweep.thresholds):
        exits = eeopt.engine.first_exit(other_scores, thresholds)
        at_or_past = exits[:, None] >= np.arange(1, n_exits)[None, :]
        expected[at_or_past] = np.minimum(expected[at_or_past], rank[j])
    np.testing.assert_array_equal(reached.first_reach, expected)
    np.testing.assert_array_equal(reached.exit_counts(np.arange(len(sweep))), on.moves.table)


def test_replay_moves_samples_both_ways_and_through_infinite_thresholds():
    """Hand-made thresholds: lowered, raised past a later exit's, -inf and +inf."""
    from eeopt.methods._beem_sweep import replay

    scores = np.array([[0.9, 0.1, 0.0], [0.5, 0.6, 0.0], [0.2, 0.7, 0.0], [0.5, 0.2, 0.0]])
    correct = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=bool)
    thresholds = np.array(
        [
            [np.inf, np.inf, -np.inf],  # everyone at the last exit
            [0.5, np.inf, -np.inf],  # samples 0, 1, 3 at exit 0
            [0.5, 0.6, -np.inf],  # sample 2 at exit 1
            [0.95, 0.6, -np.inf],  # exit 0 raised: 1 on to exit 1 (0.6), 0 and 3 to the last
            [-np.inf, 0.6, -np.inf],  # everyone at exit 0
            [np.inf, -np.inf, -np.inf],  # everyone at exit 1
        ]
    )
    counts, n_correct, n_lost = replay(thresholds, scores, correct)
    expected = [[0, 0, 4], [3, 0, 1], [3, 1, 0], [0, 2, 2], [4, 0, 0], [0, 4, 0]]
    np.testing.assert_array_equal(counts, expected)
    # right: exit 0 -> samples 0, 2; exit 1 -> 1, 2; last -> 0, 1, 3
    np.testing.assert_array_equal(n_correct, [3, 1, 2, 4, 2, 2])
    # lost (wrong at its exit, right at the last): exit 0 loses 1 and 3, exit 1 loses 0 and 3
    np.testing.assert_array_equal(n_lost, [0, 2, 2, 0, 2, 2])


def test_a_level_path_on_other_samples_rejects_mismatched_inputs():
    """Scores with another number of exits, and ranks that are not one integer per policy,
    are named in a ValueError before any replay."""
    rng = np.random.default_rng(2)
    scores, correct = rng.random((60, 4)), rng.random((60, 4)) < 0.6
    sweep = level_sweep(scores, correct, np.arange(1.0, 5.0))
    with pytest.raises(ValueError, match="scores must have 4 exits"):
        sweep.on(scores[:, :3], correct[:, :3], np.arange(1.0, 4.0))
    with pytest.raises(ValueError, match="rank must hold one integer per policy"):
        sweep.on(scores, correct, np.arange(1.0, 5.0), rank=np.arange(len(sweep) + 1))
    with pytest.raises(ValueError, match="rank must hold one integer per policy"):
        sweep.on(scores, correct, np.arange(1.0, 5.0), rank=np.zeros(len(sweep)))
    with pytest.raises(ValueError, match="pass rank= too"):
        sweep.on(scores, correct, np.arange(1.0, 5.0), reach=True)


def test_a_certified_target_with_levels_tests_the_policies_at_those_levels():
    """A certified BEEM target with levels= tests the rule's policies at those levels only,
    built on one part of the data: each tested policy is the rule at its level there."""
    logits, labels = make_multi_exit(n=2000, n_exits=4, n_classes=5, seed=4)
    data = eeopt.ExitData.from_logits(logits, labels)
    policy = eeopt.fit(
        data, method="beem-a", tolerance=0.2, delta=0.1, levels=16, random_state=0, verbose=False
    )
    record = policy.guarantee_
    grid = np.arange(16) / 15  # levels=16
    tested = np.array(record["tested_parameters"])
    assert record["n_tested"] == tested.size > 1
    np.testing.assert_array_equal(tested, grid[np.searchsorted(grid, tested)])
    assert policy.fit_info_["level"] in tested[: record["n_certified"]]
    assert record["upper_bounds"][record["n_certified"] - 1] <= 0.2


@pytest.mark.parametrize("levels", [None, 40])
def test_the_sweep_ends_on_a_chunk_that_records_nothing(monkeypatch, capsys, levels):
    """When the policies fill the sweep's first chunk exactly, the next call records none:
    the sweep ends there (with its progress bar) and lists the same policies."""
    from eeopt.methods import beem

    rng = np.random.default_rng(3)
    scores, correct = rng.random((300, 4)), rng.random((300, 4)) < 0.7
    costs = np.arange(1.0, 5.0)
    expected = level_sweep(scores, correct, costs, levels=levels)
    monkeypatch.setattr(beem, "_FIRST_CHUNK", len(expected))
    got = level_sweep(scores, correct, costs, levels=levels, verbose=True)
    np.testing.assert_array_equal(got.thresholds, expected.thresholds)
    np.testing.assert_array_equal(got.parameters, expected.parameters)
    assert "BEEM level sweep" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["per-exit", "global"])
def test_threads_build_the_same_sweep(mode):
    """n_jobs= sorts and groups the exits in threads: the same policies, counts and outcomes
    bit for bit (here 3 threads over 5 early exits, and every core); fits record it."""
    rng = np.random.default_rng(8)
    scores = np.round(rng.random((2000, 6)), 3)  # ties
    correct = rng.random((2000, 6)) < np.linspace(0.4, 0.8, 6)
    costs = np.arange(1.0, 7.0)
    one = level_sweep(scores, correct, costs, thresholds=mode)
    for n_jobs in (3, -1):
        many = level_sweep(scores, correct, costs, thresholds=mode, n_jobs=n_jobs)
        np.testing.assert_array_equal(many.parameters, one.parameters)
        np.testing.assert_array_equal(many.thresholds, one.thresholds)
        np.testing.assert_array_equal(many.moves.table, one.moves.table)
        np.testing.assert_array_equal(many.n_correct, one.n_correct)
    # ... and its replay on other samples, with each one's first positions in an order.
    other_scores, other_correct = scores[::-1].copy(), correct[::2].repeat(2, axis=0)
    rank = np.arange(len(one))[::-1].copy()
    alone = one.on(other_scores, other_correct, costs, rank=rank, reach=True)
    threaded = one.on(other_scores, other_correct, costs, rank=rank, reach=True, n_jobs=2)
    np.testing.assert_array_equal(threaded.moves.table, alone.moves.table)
    np.testing.assert_array_equal(threaded.first_reach, alone.first_reach)
    logits, labels = make_multi_exit(n=600, n_exits=4, seed=9)
    data = eeopt.ExitData.from_logits(logits, labels)
    policy = eeopt.fit(data, method="beem-a", target="accuracy", n_jobs=2)
    reference = eeopt.fit(data, method="beem-a", target="accuracy")
    np.testing.assert_array_equal(policy.thresholds_, reference.thresholds_)
    assert policy.fit_params_["n_jobs"] == 2
    certified = [
        eeopt.fit(
            data, method="beem-a", budget=2.5, guarantee="expectation", random_state=0, **jobs
        )
        for jobs in ({}, {"n_jobs": 2})
    ]
    assert certified[0].guarantee_ == certified[1].guarantee_
    np.testing.assert_array_equal(certified[0].thresholds_, certified[1].thresholds_)
    for value, error in [(0, ValueError), (1.5, TypeError), ("all", TypeError)]:
        with pytest.raises(error, match="n_jobs"):
            eeopt.fit(data, method="beem-a", target="accuracy", n_jobs=value)
        with pytest.raises(error, match="n_jobs"):
            level_sweep(scores, correct, costs, thresholds=mode, n_jobs=value)


@pytest.mark.parametrize("seed", range(3))
def test_exit_groups_alike_in_numpy_and_in_the_kernel(monkeypatch, seed):
    """The build's groups of one exit (each sample's group, the group starts, the packed
    counts) from the vectorised numpy passes used without numba equal the one-pass kernel's
    (compiled or plain Python), on tied scores."""
    from eeopt.methods import _beem_sweep

    rng = np.random.default_rng(seed)
    n, n_exits, k = 300, 4, 2
    scores = rng.choice([0.1, 0.4, 0.5, 0.9], size=(n, n_exits))
    wrong = (rng.random((n, n_exits)) < 0.4).astype(np.int8)
    negated = -scores[:, k]
    order = np.argsort(negated).astype(np.int32)
    outputs = []
    for compiled in (True, False):
        monkeypatch.setattr(_beem_sweep, "HAVE_NUMBA", compiled)
        group_of = np.full((n, n_exits - 1), -1, dtype=np.int32)
        group_start = np.zeros(n + 1, dtype=np.int32)
        cells = np.zeros(n + 1, dtype=np.int64)
        if compiled:
            count = _beem_sweep._group_exit_kernel(
                k, negated, order, wrong, group_of, group_start, cells
            )
        else:
            count = _beem_sweep._group_exit(k, negated, order, wrong, group_of, group_start, cells)
        outputs.append((count, group_of, group_start, cells))
    (count, group_of, group_start, cells), numpy_path = outputs
    assert count == numpy_path[0] == np.unique(scores[:, k]).size
    for got, expected in zip(numpy_path[1:], (group_of, group_start, cells), strict=True):
        np.testing.assert_array_equal(got, expected)
    # Each group: its samples' score, size and errors (a loop over the groups).
    for g in range(count):
        members = order[group_start[g] : group_start[g + 1]]
        assert np.unique(scores[members, k]).size == 1
        assert cells[g] == (members.size << 32) + int(wrong[members, k].sum())
