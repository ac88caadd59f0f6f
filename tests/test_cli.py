import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_multi_exit

import eeopt
from eeopt.cli import main


@pytest.fixture
def npz(tmp_path):
    logits, labels = make_multi_exit(n=600, n_exits=4, seed=1)
    path = tmp_path / "toy.npz"
    eeopt.ExitData.from_logits(logits, labels, costs=[1, 2, 3, 4]).save(path)
    return path


def test_fit_then_evaluate(npz, tmp_path, capsys):
    policy_path = tmp_path / "p.json"
    assert (
        main(["fit", str(npz), "--method", "maxprob", "--budget", "2.5", "-o", str(policy_path)])
        == 0
    )
    policy = eeopt.load_policy(policy_path)
    assert policy.fit_info_["budget"] == 2.5
    assert main(["evaluate", str(policy_path), str(npz), "--json"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{") :])
    expected = policy.evaluate(eeopt.ExitData.load(npz))
    assert summary["accuracy"] == expected.accuracy
    assert summary["mean_cost"] == expected.mean_cost <= 2.5


def test_fit_passes_method_options(npz, tmp_path):
    out = tmp_path / "p.json"
    assert (
        main(
            [
                "fit",
                str(npz),
                "--method",
                "msdnet",
                "--budget",
                "2",
                "--option",
                "score=entropy",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert eeopt.load_policy(out).score_name == "entropy"


def test_eenet_results_are_the_same_from_run_to_run(npz, tmp_path, capsys):
    args = ["--method", "eenet", "--budget", "2.2", "--option", "max_iter=5", "-q"]
    thresholds = []
    for seed in (0, 0, 1):
        out = tmp_path / f"p{len(thresholds)}.json"
        assert main(["fit", str(npz), *args, "--random-state", str(seed), "-o", str(out)]) == 0
        policy = eeopt.load_policy(out)
        thresholds.append(policy.thresholds_)
        assert policy.to_dict()["fit_info"]["random_state"] == seed
    np.testing.assert_array_equal(thresholds[0], thresholds[1])
    capsys.readouterr()
    tables = []
    for _ in range(2):
        assert main(["compare", str(npz), "--methods", "eenet", "--n-budgets", "2", "-q"]) == 0
        tables.append(capsys.readouterr().out)
    assert tables[0] == tables[1] and "eenet" in tables[0]


def test_compare_prints_the_table_and_writes_files(npz, tmp_path, capsys):
    fig = tmp_path / "front.pdf"
    table = tmp_path / "table.tex"
    code = main(
        [
            "compare",
            str(npz),
            "--methods",
            "maxprob,msdnet",
            "--budgets",
            "2,3",
            "-o",
            str(fig),
            "--table",
            str(table),
            "-q",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "Final exit alone" in out and "msdnet" in out and "Budget" in out
    assert fig.read_bytes().startswith(b"%PDF")
    assert "\\begin{tabular}" in table.read_text()


def test_report_writes_a_self_contained_page(npz, tmp_path, capsys):
    out = tmp_path / "report"
    assert (
        main(
            [
                "report",
                str(npz),
                "--methods",
                "maxprob,patience",
                "--n-budgets",
                "3",
                "-o",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "Final exit alone" in printed and "patience" in printed and "index.html" in printed
    page = (out / "index.html").read_text()
    assert page.count("<svg") >= 3 and "<table class='pivot'>" in page and "maxprob" in page
    assert 'src="http' not in page  # nothing loaded from elsewhere
    assert (out / "comparison.csv").exists()
    footer = page.split("<footer>")[1]
    assert f"eeopt report {npz} --methods maxprob,patience --n-budgets 3 -o {out}" in footer


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["fit", "missing.npz", "--method", "maxprob"], "does not exist"),
        (["fit", "missing.pth", "--method", "maxprob"], "does not exist"),
        (["compare", "missing.pth"], "does not exist"),
        (["fit", "missing", "--method", "maxprob"], "neither a file nor a shipped dataset"),
        (["fit", "{npz}", "--method", "nope"], "invalid choice: 'nope'"),
        (["fit", "{npz}", "--method", "maxprob", "--budget", "99"], "budget"),
        (["fit", "{npz}", "--method", "maxprob", "--option", "bad"], "name=value"),
        (["evaluate", "missing.json", "{npz}"], "POLICY"),
        (["compare", "{npz}", "--budgets", "a,b"], "--budgets"),
        (
            ["compare", "{npz}", "--table", "x.doc", "--methods", "maxprob", "--budgets", "2"],
            ".csv",
        ),
        (["compare", "{npz}", "--budgets", "2", "--cost-fractions", "0.5"], "not both"),
        (["compare", "{npz}", "--splits", "3", "--calibration-size", "ab"], "--calibration-size"),
        (["compare", "{npz}", "--methods", "maxprob", "--reference", "msdnet"], "reference"),
        (["benchmark", "{npz}", "--cost-fractions", "0.1", "-o", "x"], "cost_fractions"),
        (["benchmark", "{npz}", "{npz}", "-o", "x"], "two inputs"),
    ],
)
def test_bad_input_is_one_line_and_status_2(npz, argv, needle, capsys):
    argv = [a.replace("{npz}", str(npz)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("eeopt: error:") and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_console_script_runs_end_to_end(npz, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "eeopt.cli",
            "fit",
            str(npz),
            "--method",
            "patience",
            "-o",
            str(tmp_path / "p.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "eeopt.cli", "fit", str(npz)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode == 2  # argparse: --method is required


def test_single_npz_is_split_in_half_reproducibly(npz):
    from eeopt.cli import load_splits

    a_val, a_test = load_splits(str(npz), random_state=3)
    b_val, _ = load_splits(str(npz), random_state=3)
    assert a_val.n_samples + a_test.n_samples == 600
    np.testing.assert_array_equal(a_val.labels, b_val.labels)


# -- a researcher's own arrays (issue 13) ------------------------------------------------------
def _own_npz(tmp_path, name="own.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_own_npz_with_logits_labels_and_costs(tmp_path, capsys):
    logits, labels = make_multi_exit(n=300, n_exits=4, seed=3)
    path = _own_npz(tmp_path, logits=logits, labels=labels, costs=[1.0, 2.0, 4.0, 8.0])
    out = tmp_path / "p.json"
    code, printed, err = _run(
        ["fit", path, "--method", "maxprob", "--budget", 3, "-o", out], capsys
    )
    assert code == 0, err
    expected = eeopt.fit(logits, labels, [1.0, 2.0, 4.0, 8.0], method="maxprob", budget=3.0)
    np.testing.assert_array_equal(eeopt.load_policy(out).thresholds_, expected.thresholds_)
    assert "note" not in err  # the file has costs


def test_logits_stored_as_probs_and_the_input_flag(tmp_path, capsys):
    logits, labels = make_multi_exit(n=200, n_exits=3, seed=4)
    path = _own_npz(tmp_path, probs=logits, labels=labels)
    for flag, code_expected in (("auto", 0), ("logits", 0), ("probs", 2)):
        out = tmp_path / f"{flag}.json"
        argv = ["fit", path, "--method", "patience", "--input", flag, "-o", out]
        code, _, err = _run(argv, capsys)
        assert code == code_expected
    assert "input='logits'" in err  # --input probs on logits says how to read them


def test_costs_default_to_exit_count_with_a_note(tmp_path, capsys):
    logits, labels = make_multi_exit(n=200, n_exits=3, seed=5)
    path = _own_npz(tmp_path, logits=logits, labels=labels)
    out = tmp_path / "p.json"
    code, _, err = _run(["fit", path, "--method", "maxprob", "-o", out], capsys)
    assert code == 0 and "note: " in err and "1..3" in err
    np.testing.assert_array_equal(eeopt.load_policy(out).costs_, [1.0, 2.0, 3.0])


def test_fit_without_labels_for_a_method_that_needs_none(tmp_path, capsys):
    logits, _ = make_multi_exit(n=200, n_exits=4, seed=6)
    path = _own_npz(tmp_path, "nolabels.npz", logits=logits, costs=[10.0, 20.0, 40.0, 80.0])
    out = tmp_path / "p.json"
    argv = ["fit", path, "--method", "msdnet", "--budget", 40, "-o", out]
    code, printed, err = _run(argv, capsys)
    assert code == 0, err
    assert "accuracy n/a (no labels)" in printed and out.exists()
    code, _, err = _run(["fit", path, "--method", "maxprob", "-o", tmp_path / "m.json"], capsys)
    assert code == 2 and "labels are required" in err


def test_score_only_npz_and_csv_tables(tmp_path, capsys):
    val = eeopt.datasets.load("digits", "val")
    path = _own_npz(
        tmp_path, predictions=val.predictions, confidence=val.maxprob, labels=val.labels
    )
    code, printed, err = _run(
        ["fit", path, "--method", "beem-a", "-o", tmp_path / "b.json"], capsys
    )
    assert code == 0, err
    code, _, err = _run(["fit", path, "--method", "entropy", "-o", tmp_path / "e.json"], capsys)
    assert code == 2 and "probability vector" in err
    table = tmp_path / "exits.csv"
    header = [f"pred_{k + 1}" for k in range(val.n_exits)] + ["label"]
    rows = np.column_stack([val.predictions, val.labels])
    table.write_text(",".join(header) + "\n" + "\n".join(",".join(map(str, r)) for r in rows))
    code, printed, err = _run(
        ["fit", table, "--method", "patience", "-o", tmp_path / "p.json"], capsys
    )
    assert code == 0, err


def test_costs_apply_to_shipped_datasets(tmp_path, capsys):
    costs = tmp_path / "c.csv"
    costs.write_text("1\n2\n3\n")  # digits has 4 exits
    code, _, err = _run(["compare", "digits", "--costs", costs, "--methods", "maxprob"], capsys)
    assert code == 2 and "one cumulative cost per exit (4)" in err
    costs.write_text("1\n2\n3\n10\n")
    argv = ["compare", "digits", "--costs", costs, "--methods", "maxprob", "--budgets", "5", "-q"]
    code, printed, err = _run(argv, capsys)
    assert code == 0, err
    final = 100 * eeopt.datasets.load("digits", "test").exit_accuracy[-1]
    assert f"Final exit alone: {final:.1f}% at 10.0." in printed  # the new costs, no FLOPs
    code, _, err = _run(["report", "mnist1d", "--costs", costs, "-o", tmp_path / "r"], capsys)
    assert code == 2 and "(7)" in err and not (tmp_path / "r").exists()


def test_outputs_are_checked_before_any_work(npz, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "p.json"
    code, _, err = _run(["fit", npz, "--method", "eenet", "--budget", 2, "-o", missing], capsys)
    assert code == 2 and "does not exist" in err
    out = tmp_path / "p.json"
    assert _run(["fit", npz, "--method", "patience", "-o", out], capsys)[0] == 0
    code, _, err = _run(["fit", npz, "--method", "patience", "-o", out], capsys)
    assert code == 2 and "--force" in err
    assert _run(["fit", npz, "--method", "patience", "-o", out, "--force"], capsys)[0] == 0
    code, _, err = _run(["report", npz, "-o", out], capsys)  # a file, not a folder
    assert code == 2 and "is a file" in err
    code, _, err = _run(["compare", npz, "-o", out, "--methods", "maxprob"], capsys)
    assert code == 2 and "exists" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["evaluate", "{npz}", "{policy}"], "eeopt evaluate POLICY DATA"),
        (["evaluate", "{binary}", "{npz}"], "not a policy file"),
        (["fit", "{garbage}", "--method", "maxprob"], "neither a zip archive"),
        (["fit", "{single}", "--method", "maxprob"], "a single array (.npy)"),
        (["fit", "{objects}", "--method", "maxprob"], "Python objects"),
        (["compare", "{npz}", "--n-budgets", "-3"], "--n-budgets: must be a whole number >= 1"),
        (["compare", "{npz}", "--n-budgets", "0"], "--n-budgets: must be a whole number >= 1"),
        (["compare", "{npz}", "--methods", "maxprob,nope"], "unknown method 'nope'"),
    ],
)
def test_confusing_inputs_get_one_clear_line(npz, tmp_path, argv, needle, capsys):
    policy = tmp_path / "p.json"
    eeopt.fit(eeopt.ExitData.load(npz), method="patience").save(policy)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\xa4 not a zip file at all")
    objects = tmp_path / "objects.npz"
    np.savez(objects, probs=np.array([{"a": 1}], dtype=object))
    binary = tmp_path / "binary.json"
    binary.write_bytes(garbage.read_bytes())
    single = tmp_path / "single.npy"
    np.save(single, np.zeros((3, 2, 2)))
    single = single.rename(tmp_path / "single.npz")  # a .npy renamed
    files = {
        "{npz}": npz,
        "{policy}": policy,
        "{garbage}": garbage,
        "{objects}": objects,
        "{binary}": binary,
        "{single}": single,
    }
    argv = [str(files.get(a, a)) for a in argv]
    code, _, err = _run(argv, capsys)
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1


def test_every_option_has_help_and_the_methods_are_listed():
    import argparse

    from eeopt.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"eeopt {name} {action.option_strings or action.dest}"
    fit_help = subparsers.choices["fit"].format_help()
    for method in eeopt.method_names():
        assert method in fit_help


def test_fit_certifies_a_target_and_prints_the_statement(npz, tmp_path, capsys):
    out = tmp_path / "p.json"
    argv = ["fit", npz, "--method", "maxprob", "--tolerance", "0.05", "--delta", "0.1"]
    code, printed, err = _run([*argv, "--risk", "consistency", "-o", out], capsys)
    assert code == 0, err
    assert "With probability at least 0.9" in printed
    policy = eeopt.load_policy(out)
    assert policy.guarantee_["risk"] == "consistency" and policy.fit_params_["delta"] == 0.1
    code, _, err = _run([*argv[:-2], "--delta", "2", "-o", tmp_path / "q.json"], capsys)
    assert code == 2 and "delta" in err
    # --grid: only the grid's thresholds are tested, and the policy's threshold is one of them
    code, _, err = _run([*argv, "--grid", "11", "-o", tmp_path / "g.json"], capsys)
    assert code == 0, err
    grid_policy = eeopt.load_policy(tmp_path / "g.json")
    assert grid_policy.fit_params_["grid"] == 11 and grid_policy.guarantee_["grid_size"] == 11
    assert round(float(grid_policy.thresholds_[0]) * 10, 9) in range(11)
    code, _, err = _run([*argv, "--grid", "1", "-o", tmp_path / "h.json"], capsys)
    assert code == 2 and "grid" in err
    code, _, err = _run([*argv, "--option", "bound=wsr", "-o", tmp_path / "i.json"], capsys)
    assert code == 2 and "use --bound instead" in err
    code, _, err = _run(["report", npz, "--delta", "-1", "-o", tmp_path / "r"], capsys)
    assert code == 2 and "--delta must lie in (0, 1)" in err


def test_an_empty_number_list_is_named(npz, capsys):
    code, _, err = _run(["compare", npz, "--methods", "maxprob", "--budgets", ""], capsys)
    assert code == 2 and "--budgets is empty" in err


def test_compare_re_splits_with_splits_and_cost_fractions(npz, tmp_path, capsys):
    table = tmp_path / "runs.csv"
    argv = ["compare", str(npz), "--methods", "maxprob", "--cost-fractions", "0.5,0.75"]
    assert main([*argv, "--splits", "3", "--n-jobs", "2", "--table", str(table), "-q"]) == 0
    out = capsys.readouterr().out
    assert "3 random splits" in out and "50%" in out and "75%" in out
    assert len(table.read_text().splitlines()) == 1 + 2 * 3  # one row per run


def test_benchmark_writes_csv_tables_and_figures_for_every_cache(npz, tmp_path, capsys):
    other = tmp_path / "other.npz"
    logits, labels = make_multi_exit(n=400, n_exits=3, seed=4)
    eeopt.ExitData.from_logits(logits, labels, costs=[1, 3, 4]).save(other)
    out = tmp_path / "results"
    argv = ["benchmark", str(npz), str(other), "--methods", "maxprob,msdnet", "--splits", "2"]
    assert main([*argv, "-o", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "toy:" in printed and "other:" in printed
    runs = (out / "runs.csv").read_text().splitlines()
    assert len(runs) == 1 + 2 * 2 * 4 * 2  # datasets x methods x shares x splits
    assert {line.split(",")[0] for line in runs[1:]} == {"toy", "other"}
    for name in ("toy", "other"):
        assert "\\toprule" in (out / f"{name}-accuracy.tex").read_text()
        assert "| maxprob |" in (out / f"{name}-speedup.md").read_text()
        assert (out / f"{name}-comparison.svg").read_text().rstrip().endswith("</svg>")
    assert (out / "summary.csv").exists()
