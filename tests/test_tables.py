import numpy as np
import pytest
from conftest import make_multi_exit

import eeopt
from eeopt import tables


@pytest.fixture(scope="module")
def split():
    logits, labels = make_multi_exit(n=800, n_exits=4, seed=8)
    costs = [1.0, 2.0, 3.0, 4.0]
    return (
        eeopt.ExitData.from_logits(logits[:400], labels[:400], costs),
        eeopt.ExitData.from_logits(logits[400:], labels[400:], costs),
    )


def test_accuracy_at_cost_is_a_pivot_of_shares_of_the_final_cost(split):
    val, test = split
    pivot = tables.accuracy_at_cost(val, test, ["maxprob", "msdnet"], verbose=False)
    assert pivot.columns == ["25%", "50%", "75%", "100%"] and pivot.rows == ["maxprob", "msdnet"]
    table = pivot.source
    for j, share in enumerate([0.25, 0.5, 0.75, 1.0]):
        for i, method in enumerate(pivot.rows):
            expected = eeopt.fit(val, method=method, budget=4.0 * share).evaluate(test).accuracy
            assert pivot.mean[i, j] == expected
    assert table.datasets["data"]["setting_kind"] == "fraction"
    assert pivot.column_title == "Budget (share of the final exit's cost)"


def test_accuracy_at_budgets_labels_budgets_in_the_data_units(split):
    val, test = split
    pivot = tables.accuracy_at_budgets(val, test, ["maxprob"], budgets=[2.0, 3.25], verbose=False)
    assert pivot.columns == ["2.00", "3.25"] and pivot.column_title == "Budget"
    np.testing.assert_array_equal(pivot.mean, pivot.source.pivot().mean)


def test_speedup_at_accuracy_keeps_the_final_exit_accuracy_on_calibration(split):
    val, test = split
    pivot = tables.speedup_at_accuracy(val, ["maxprob", "patience", "msdnet"], verbose=False)
    assert pivot.columns == ["accuracy (%)", "speedup"]
    assert pivot.kinds == ["accuracy", "speedup"]
    # A single ExitData is split in half at random: one split, calibration on one half.
    table = pivot.source
    assert table.datasets["data"]["n_splits"] == 1 and table.datasets["data"]["pooled"]
    for run in table.runs:
        calibration = val.subset(table.datasets["data"]["splits"][0][0])
        goal = calibration.exit_accuracy[-1]
        assert run["policy"].evaluate(calibration).accuracy >= goal
        row = pivot.rows.index(run["method"])
        assert pivot.mean[row, 1] == pytest.approx(4.0 / run["mean_cost"])
    assert "speedup" in pivot.to_latex() and "\\times" in pivot.to_latex()
