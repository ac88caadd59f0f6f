import numpy as np
import pytest
from conftest import make_multi_exit

import eeopt
from eeopt.compare import FINAL, RUN_COLUMNS, SUMMARY_COLUMNS, compare_many


def _split(n=800, seed=1, n_classes=5):
    logits, labels = make_multi_exit(n=n, n_exits=4, seed=seed, n_classes=n_classes)
    costs = [1.0, 2.0, 3.0, 4.0]
    half = n // 2
    return (
        eeopt.ExitData.from_logits(logits[:half], labels[:half], costs),
        eeopt.ExitData.from_logits(logits[half:], labels[half:], costs),
    )


def _pool(n=600, seed=3, n_classes=5):
    logits, labels = make_multi_exit(n=n, n_exits=4, seed=seed, n_classes=n_classes)
    return eeopt.ExitData.from_logits(logits, labels, [1.0, 2.0, 3.0, 4.0])


def _row(table, method, setting):
    return next(r for r in table.summary if r["method"] == method and r["setting"] == setting)


def test_the_given_split_fits_on_val_and_evaluates_on_test():
    val, test = _split()
    table = eeopt.compare(
        val, test, methods=["maxprob", "msdnet"], budgets=[2.0, 3.0], verbose=False
    )
    assert [r["method"] for r in table.summary] == [FINAL, "maxprob", "maxprob", "msdnet", "msdnet"]
    assert len(table.runs) == 4 and all(r["split"] == 0 for r in table.runs)
    for run in table.runs:
        policy = eeopt.fit(val, method=run["method"], budget=run["budget"])
        expected = policy.evaluate(test)
        assert run["accuracy"] == expected.accuracy
        assert run["mean_cost"] == expected.mean_cost
        assert run["n_calibration"] == 400 and run["n_test"] == 400
    final = table.final()
    assert final["accuracy"] == pytest.approx(test.exit_accuracy[-1])
    assert final["mean_cost"] == 4.0 and final["speedup"] == 1.0


def test_repeated_splits_match_a_direct_loop():
    data = _pool()
    table = eeopt.compare(
        data,
        ["maxprob", "patience"],
        budgets=[2.5, 3.5],
        n_splits=5,
        calibration_size=250,
        verbose=False,
    )
    splits = table.datasets["data"]["splits"]
    assert len(splits) == 5
    for calibration, test_idx in splits:
        assert calibration.size == 250 and test_idx.size == 350
        assert np.intersect1d(calibration, test_idx).size == 0
        np.testing.assert_array_equal(np.union1d(calibration, test_idx), np.arange(600))
    # Different splits, each run refitted by hand on its split with its recorded seed.
    assert len({tuple(c[:5]) for c, _ in splits}) == 5
    by_key = {}
    for run in table.runs:
        calibration, test_idx = splits[run["split"]]
        fit = dict(method=run["method"], budget=run["budget"], random_state=run["random_state"])
        if run["accuracy"] is None:
            with pytest.raises(eeopt.BudgetUnreachableError):
                eeopt.fit(data.subset(calibration), **fit)
            continue
        result = eeopt.fit(data.subset(calibration), **fit).evaluate(data.subset(test_idx))
        assert run["accuracy"] == result.accuracy and run["mean_cost"] == result.mean_cost
        by_key.setdefault((run["method"], run["setting"]), []).append(result)
    for (method, setting), results in by_key.items():
        row = _row(table, method, setting)
        if len(results) < 5:  # out of reach on some split: no summary, a note
            assert row["accuracy"] is None and row["note"].startswith("budget below reach")
            continue
        assert row["accuracy"] == pytest.approx(np.mean([r.accuracy for r in results]))
        assert row["mean_cost"] == pytest.approx(np.mean([r.mean_cost for r in results]))
        assert row["speedup"] == pytest.approx(4.0 / row["mean_cost"])
        fractions = np.mean([r.exit_fractions for r in results], axis=0)
        np.testing.assert_allclose(row["exit_fractions"], fractions)
        assert row["accuracy_low"] <= row["accuracy"] <= row["accuracy_high"]
        assert row["mean_cost_low"] <= row["mean_cost"] <= row["mean_cost_high"]


def test_a_pair_with_several_splits_is_pooled_with_val_sized_calibration():
    val, test = _split(n=500)
    table = eeopt.compare((val, test), ["maxprob"], budgets=[2.5], n_splits=3, verbose=False)
    info = table.datasets["data"]
    assert info["pooled"] and info["n_calibration"] == 250 and info["n_test"] == 250
    for calibration, test_idx in info["splits"]:
        assert np.union1d(calibration, test_idx).size == 500


def test_the_two_calling_forms_give_the_same_table():
    val, test = _split()
    old = eeopt.compare(val, test, ["maxprob", "msdnet"], [2.0, 3.0], verbose=False)
    new = eeopt.compare((val, test), ["maxprob", "msdnet"], budgets=[2.0, 3.0], verbose=False)
    assert old.to_csv(level="summary") == new.to_csv(level="summary")
    assert old.to_csv() == new.to_csv()


def test_identical_methods_differ_by_exactly_zero_with_p_one():
    # With two classes max probability, margin and entropy rank samples alike: same exits.
    val, test = _split(n_classes=2)
    table = eeopt.compare(
        val,
        test,
        ["maxprob", "margin", "entropy"],
        budgets=[2.0, 3.0],
        reference="maxprob",
        n_bootstrap=300,
        verbose=False,
    )
    for row in table.summary[1:]:
        assert row["reference"] == "maxprob"
        assert row["difference"] == 0.0 and row["p_value"] == 1.0
        assert row["difference_low"] == row["difference_high"] == 0.0


def test_paired_test_finds_a_real_difference_and_marks_it():
    val, test = _split(n=2000)
    table = eeopt.compare(val, test, ["maxprob"], budgets=[1.2], verbose=False)
    row = table.summary[1]
    assert row["difference"] == pytest.approx(row["accuracy"] - table.final()["accuracy"])
    assert row["difference"] < 0 and row["difference_high"] < 0 and row["p_value"] < 0.01
    assert table.pivot().marks[0, 0] == "†"


def test_the_same_call_gives_the_same_table_eenet_included():
    # Issue 11: two identical compare calls gave 0.9543 and 0.9577 (EENet was not seeded).
    val, test = _split(n=600)
    calls = [
        eeopt.compare(
            val, test, ["eenet"], budgets=[2.2], verbose=False, options={"eenet": {"max_iter": 5}}
        )
        for _ in range(2)
    ]
    assert calls[0].to_csv() == calls[1].to_csv()
    assert calls[0].to_csv(level="summary") == calls[1].to_csv(level="summary")
    other = eeopt.compare(
        val,
        test,
        ["eenet"],
        budgets=[2.2],
        verbose=False,
        random_state=1,
        options={"eenet": {"max_iter": 5}},
    )
    assert other.runs[0]["random_state"] != calls[0].runs[0]["random_state"]


def test_score_only_data_compare_as_the_full_data_given_split_and_pooled():
    """Predictions and max-probability alone give the same table for the methods that read
    only them (the docs promise comparisons on such data), in parallel too."""

    def score_only(d):
        return eeopt.ExitData.from_predictions(
            d.predictions, d.maxprob, d.labels, d.costs, n_classes=d.n_classes
        )

    val, test = _split(n=600)
    kwargs = dict(budgets=[2.0, 3.0], verbose=False, n_bootstrap=200)
    methods = ["maxprob", "patience", "msdnet"]
    for options in ({}, {"n_splits": 3, "n_jobs": 2}):
        full = eeopt.compare((val, test), methods, **kwargs, **options)
        scores = eeopt.compare((score_only(val), score_only(test)), methods, **kwargs, **options)
        assert scores.to_csv() == full.to_csv()


def test_n_jobs_2_gives_the_same_table_as_n_jobs_1():
    data = _pool(n=400)
    kwargs = dict(budgets=[2.0, 3.0], n_splits=3, verbose=False, n_bootstrap=200)
    one = eeopt.compare(data, ["maxprob", "msdnet"], n_jobs=1, **kwargs)
    two = eeopt.compare(data, ["maxprob", "msdnet"], n_jobs=2, **kwargs)
    assert one.to_csv() == two.to_csv()
    assert one.to_csv(level="summary") == two.to_csv(level="summary")


def test_a_dask_local_cluster_gives_the_same_table_as_n_jobs_1():
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    import joblib

    data = _pool(n=400)
    kwargs = dict(budgets=[2.0, 3.0], n_splits=2, verbose=False, n_bootstrap=200)
    one = eeopt.compare(data, ["maxprob", "patience"], n_jobs=1, **kwargs)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
        joblib.parallel_backend("dask"),
    ):
        on_dask = eeopt.compare(data, ["maxprob", "patience"], n_jobs=-1, **kwargs)
    assert one.to_csv() == on_dask.to_csv()
    assert one.to_csv(level="summary") == on_dask.to_csv(level="summary")


def test_a_budget_below_reach_is_na_with_a_note():
    val, test = _split()
    table = eeopt.compare(val, test, ["maxprob", "patience"], [1.5, 3.5], verbose=False)
    run = next(r for r in table.runs if r["method"] == "patience" and r["budget"] == 1.5)
    assert run["accuracy"] is None and run["note"] == "budget below reach"
    row = _row(table, "patience", "1.50")
    assert row["accuracy"] is None and row["note"] == "budget below reach in 1 of 1 splits"
    pivot = table.pivot()
    assert pivot.cell_text(pivot.rows.index("patience"), 0) == "n/a"
    assert any("n/a" in note for note in pivot.notes)


def test_without_budgets_default_targets_and_budget_only_methods_skipped():
    val, test = _split()
    table = eeopt.compare(val, test, methods=["maxprob", "msdnet"], verbose=False)
    assert [r["method"] for r in table.summary] == [FINAL, "maxprob"]
    assert table.settings() == ["default"]


def test_cost_fractions_are_shares_of_the_final_cost():
    val, test = _split()
    table = eeopt.compare(val, test, ["maxprob"], cost_fractions=[0.5, 1.0], verbose=False)
    assert table.settings() == ["50%", "100%"]
    assert [r["budget"] for r in table.runs] == [2.0, 4.0]


def test_target_accuracy_fits_budget_only_methods_by_bisection():
    val, test = _split()
    table = eeopt.compare(
        val, test, ["msdnet", "maxprob"], target="accuracy", tolerance=0.01, verbose=False
    )
    goal = val.exit_accuracy[-1] - 0.01
    for run in table.runs:
        assert run["policy"].evaluate(val).accuracy >= goal
    msdnet = next(r for r in table.runs if r["method"] == "msdnet")
    budget = msdnet["policy"].fit_info_["budget"]
    # One bisection step cheaper no longer reaches the goal.
    cheaper = eeopt.fit(val, method="msdnet", budget=budget - 3 / 1024)
    assert cheaper.evaluate(val).accuracy < goal


def test_exports_csv_runs_and_summary_and_pandas():
    val, test = _split()
    table = eeopt.compare(val, test, ["maxprob", "patience"], [2.5, 3.5], verbose=False)
    runs = table.to_csv().splitlines()
    assert runs[0] == ",".join(RUN_COLUMNS) and len(runs) == len(table.runs) + 1
    summary = table.to_csv(level="summary").splitlines()
    assert summary[0] == ",".join(SUMMARY_COLUMNS) and len(summary) == len(table.summary) + 1
    pandas = pytest.importorskip("pandas", reason="pandas is in the io extra")
    frame = table.to_pandas()
    assert isinstance(frame, pandas.DataFrame) and frame.shape == (4, len(RUN_COLUMNS))
    expected = [np.nan if r["accuracy"] is None else r["accuracy"] for r in table.runs]
    np.testing.assert_array_equal(frame["accuracy"].to_numpy(dtype=float), expected)
    assert table.to_pandas("summary").shape == (5, len(SUMMARY_COLUMNS))
    latex = table.to_latex()
    assert "\\toprule" in latex and "maxprob" in latex
    assert table.to_markdown().count("\n| ") == 3  # header and two methods


def test_compare_many_runs_every_dataset_in_one_table():
    a, b = _pool(n=300, seed=1), _pool(n=300, seed=2)
    table = compare_many(
        {"a": a, "b": b}, ["maxprob"], cost_fractions=[0.5, 0.75], n_splits=2, verbose=False
    )
    assert list(table.datasets) == ["a", "b"]
    assert {r["dataset"] for r in table.runs} == {"a", "b"} and len(table.runs) == 8
    assert table.pivot(dataset="b").columns == ["50%", "75%"]
    with pytest.raises(ValueError, match="dataset must be one of"):
        table.pivot()
    alone = eeopt.compare(a, ["maxprob"], cost_fractions=[0.5, 0.75], n_splits=2, verbose=False)
    # Dataset i draws its splits from the i-th child of the seed: not the same as alone.
    assert len(alone.runs) == 4


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"budgets": [2.0], "cost_fractions": [0.5]}, ValueError, "at most one"),
        ({"options": {"eenet": {"random_state": 0}}, "methods": ["eenet"]}, ValueError, "seed"),
        ({"options": {"msdnet": {}}, "methods": ["maxprob"]}, ValueError, "not among methods"),
        ({"calibration_size": 100}, ValueError, "given split"),
        ({"reference": "msdnet", "methods": ["maxprob"]}, ValueError, "reference"),
        ({"methods": ["maxprob", "maxprob"]}, ValueError, "repeat"),
        ({"methods": ["nope"]}, ValueError, "methods"),
        ({"cost_fractions": [0.1]}, ValueError, "below the first exit"),
        ({"budgets": [9.0]}, ValueError, "budgets"),
        ({"random_state": "x"}, TypeError, "random_state"),
        ({"n_splits": 0}, ValueError, "n_splits"),
        ({"confidence": 1.0}, ValueError, "confidence"),
        ({"target": "cost"}, ValueError, "target"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, needle):
    val, test = _split(n=200)
    kwargs = {"methods": ["maxprob"], "verbose": False, **kwargs}
    with pytest.raises(error, match=needle):
        eeopt.compare(val, test, **kwargs)


def test_conflicting_calling_forms_are_errors():
    val, test = _split(n=200)
    with pytest.raises(TypeError, match="by keyword"):
        eeopt.compare(val, ["maxprob"], [2.0])
    with pytest.raises(ValueError, match="test set once"):
        eeopt.compare((val, test), test)
    with pytest.raises(ValueError, match="same model"):
        eeopt.compare(val, eeopt.ExitData(test.probs[:, :3], test.labels), verbose=False)
    with pytest.raises(ValueError, match="calibration_size"):
        eeopt.compare(val, ["maxprob"], calibration_size=200, verbose=False)
    other = test.with_costs([1.0, 2.0, 3.0, 5.0])
    with pytest.raises(ValueError, match="different costs"):
        eeopt.compare(val, other, ["maxprob"], n_splits=2, verbose=False)


def test_bootstrap_intervals_cover_the_estimate_and_are_deterministic():
    val, test = _split()
    policy = eeopt.fit(val, method="maxprob", budget=2.5)
    a = policy.evaluate(test, n_bootstrap=300, random_state=0)
    b = policy.evaluate(test, n_bootstrap=300, random_state=0)
    assert a.intervals == b.intervals
    low, high = a.intervals["accuracy"]
    assert low <= a.accuracy <= high and high - low < 0.2
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
