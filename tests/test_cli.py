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
        (["fit", "missing.npz", "--method", "maxprob"], "neither a file"),
        (["fit", "{npz}", "--method", "nope"], "unknown method"),
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
