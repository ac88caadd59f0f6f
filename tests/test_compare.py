import numpy as np
import pytest
from conftest import make_multi_exit

import eeopt


def _split():
    logits, labels = make_multi_exit(n=800, n_exits=4, seed=1)
    costs = [1.0, 2.0, 3.0, 4.0]
    return (
        eeopt.ExitData.from_logits(logits[:400], labels[:400], costs),
        eeopt.ExitData.from_logits(logits[400:], labels[400:], costs),
    )


def test_compare_fits_on_val_and_evaluates_on_test():
    val, test = _split()
    table = eeopt.compare(
        val, test, methods=["maxprob", "msdnet"], budgets=[2.0, 3.0], verbose=False
    )
    assert [r["method"] for r in table.rows] == [
        "final-exit",
        "maxprob",
        "maxprob",
        "msdnet",
        "msdnet",
    ]
    for row in table.rows[1:]:
        expected = eeopt.fit(val, method=row["method"], budget=row["budget"]).evaluate(test)
        assert row["accuracy"] == expected.accuracy
        assert row["mean_cost"] == expected.mean_cost
    assert table.rows[0]["accuracy"] == pytest.approx(test.exit_accuracy[-1])


def test_table_exports():
    val, test = _split()
    table = eeopt.compare(
        val, test, methods=["maxprob", "patience"], budgets=[1.5, 3.5], verbose=False
    )
    text = str(table)
    assert "maxprob" in text and "budget below reach" in text  # patience cannot reach 1.5
    csv = table.to_csv()
    assert csv.splitlines()[0] == "method,budget,accuracy,mean_cost,speedup,exit_fractions"
    assert len(csv.splitlines()) == len(table.rows) + 1
    assert table.to_markdown().count("\n") == len(table.rows) + 2
    latex = table.to_latex()
    assert latex.startswith("\\begin{tabular}") and "\\bottomrule" in latex


def test_compare_without_budgets_uses_default_targets_and_skips_budget_only_methods():
    val, test = _split()
    table = eeopt.compare(val, test, methods=["maxprob", "msdnet"], verbose=False)
    assert [r["method"] for r in table.rows] == ["final-exit", "maxprob"]


def test_compare_rejects_mismatched_sets_and_unknown_methods():
    val, test = _split()
    with pytest.raises(ValueError, match="same model"):
        eeopt.compare(val, eeopt.ExitData(test.probs[:, :3], test.labels), verbose=False)
    with pytest.raises(ValueError, match="methods"):
        eeopt.compare(val, test, methods=["nope"], verbose=False)


def test_bootstrap_intervals_cover_the_estimate_and_are_deterministic():
    val, test = _split()
    policy = eeopt.fit(val, method="maxprob", budget=2.5)
    a = policy.evaluate(test, n_bootstrap=300, random_state=0)
    b = policy.evaluate(test, n_bootstrap=300, random_state=0)
    assert a.intervals == b.intervals
    low, high = a.intervals["accuracy"]
    assert low <= a.accuracy <= high and high - low < 0.2
    low, high = a.intervals["mean_cost"]
    assert low <= a.mean_cost <= high
    # A lower confidence gives a narrower interval from the same resamples.
    c = policy.evaluate(test, n_bootstrap=300, random_state=0, confidence=0.5)
    narrow = c.intervals["accuracy"][1] - c.intervals["accuracy"][0]
    wide = a.intervals["accuracy"][1] - a.intervals["accuracy"][0]
    assert 0 < narrow < wide


def test_bootstrap_interval_matches_a_simple_loop():
    from eeopt.engine import bootstrap_intervals

    values = np.random.default_rng(0).random(50)
    got = bootstrap_intervals({"x": values}, 200, 0.9, np.random.default_rng(7))["x"]
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 50, size=(200, 50))
    means = [values[row].mean() for row in idx]
    np.testing.assert_allclose(got, np.percentile(means, [5, 95]))
