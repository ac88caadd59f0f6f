import numpy as np
import pytest
from conftest import make_multi_exit
from scipy.optimize import linprog

import eeopt
from eeopt.diagnostics import recall_accuracy, score_auroc, static_accuracy


@pytest.fixture
def data():
    logits, labels = make_multi_exit(n=300, n_exits=4, seed=6)
    return eeopt.ExitData.from_logits(logits, labels, [1.0, 2.0, 4.0, 5.0])


def _auroc_by_pairs(score, right):
    """P(a right answer scores above a wrong one), ties counting half: one pair at a time."""
    wins = 0.0
    for s_right in score[right]:
        for s_wrong in score[~right]:
            wins += 1.0 if s_right > s_wrong else 0.5 if s_right == s_wrong else 0.0
    return wins / (right.sum() * (~right).sum())


def test_auroc_matches_a_pairwise_count(data):
    pivot = score_auroc(data, ["maxprob", "patience"])
    assert pivot.rows == ["maxprob", "patience"] and pivot.columns == ["0", "1", "2", "3"]
    for i, name in enumerate(pivot.rows):
        for k in range(data.n_exits):
            expected = _auroc_by_pairs(data.score(name)[:, k], data.correct[:, k])
            assert pivot.mean[i, k] == pytest.approx(expected)


def test_auroc_is_nan_where_an_exit_is_always_right():
    probs = np.zeros((4, 2, 3))
    probs[:, :, 0] = [[0.9, 0.8], [0.6, 0.7], [0.7, 0.2], [0.5, 0.3]]
    probs[:, :, 1] = 1 - probs[:, :, 0]
    data = eeopt.ExitData(probs, [0, 0, 0, 0])
    auroc = score_auroc(data, ["maxprob"])
    assert np.isnan(auroc.mean[0, 0]) and np.isfinite(auroc.mean[0, 1])
    assert auroc.cell_text(0, 0) == "n/a"


def _static_by_lp(costs, accuracy, budget):
    """Best fixed mix of exits (shares pi >= 0, sum 1) with mean cost <= budget."""
    done = linprog(
        -np.asarray(accuracy),
        A_ub=[costs],
        b_ub=[budget],
        A_eq=[np.ones(len(costs))],
        b_eq=[1.0],
        bounds=[(0, 1)] * len(costs),
        method="highs",
    )
    return -done.fun if done.status == 0 else np.nan


def test_static_accuracy_is_the_best_fixed_mix_of_exits():
    rng = np.random.default_rng(0)
    for _ in range(20):
        costs = np.sort(rng.uniform(1, 10, 5))
        accuracy = rng.uniform(0.3, 1.0, 5)  # not monotone: the envelope must skip exits
        budgets = rng.uniform(0.5, 11, 8)
        got = static_accuracy(costs, accuracy, budgets)
        expected = [_static_by_lp(costs, accuracy, b) for b in budgets]
        np.testing.assert_allclose(got, expected, atol=1e-9)


def test_recall_accuracy_matches_a_per_sample_loop(data):
    exits = np.random.default_rng(1).integers(0, data.n_exits, data.n_samples)
    at_exit, most_confident, ceiling = recall_accuracy(data, exits)
    right = [0, 0, 0]
    for n, k in enumerate(exits):
        passed = range(k + 1)
        right[0] += data.correct[n, k]
        chosen = max(passed, key=lambda j: (data.maxprob[n, j], -j))  # first of the most confident
        right[1] += data.correct[n, chosen]
        right[2] += any(data.correct[n, j] for j in passed)
    assert (at_exit, most_confident, ceiling) == pytest.approx([r / data.n_samples for r in right])
    assert at_exit <= ceiling and most_confident <= ceiling


def test_recall_accuracy_rejects_exits_of_the_wrong_shape(data):
    with pytest.raises(ValueError, match="exit_index"):
        recall_accuracy(data, np.zeros(3, dtype=int))


def test_gap_closed_is_measured_between_the_static_mix_and_the_oracle(data):
    val, test = data.subset(np.arange(150)), data.subset(np.arange(150, 300))
    table = eeopt.compare(val, test, ["maxprob"], budgets=[2.5], verbose=False)
    run = table.runs[0]
    oracle = eeopt.oracle_front(test).accuracy_at(run["mean_cost"])
    static = static_accuracy(test.costs, test.exit_accuracy, run["mean_cost"])
    assert run["gap_closed"] == pytest.approx((run["accuracy"] - static) / (oracle - static))
    assert table.pivot("gap_closed").mean[0, 0] == pytest.approx(run["gap_closed"])
