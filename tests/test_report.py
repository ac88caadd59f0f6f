import re
import shutil
import subprocess

import pytest
from conftest import make_multi_exit

import eeopt
from eeopt.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECTIONS = [
    "Accuracy at fixed budgets",
    "Accuracy against cost",
    "Guarantee on new data",
    "Where samples leave",
    "Diagnostics",
    "BEEM-A and Theorem 3.1 (test data)",
    "How well max probability separates right from wrong",
]


def _toy(n=1200, n_exits=4, seed=5):
    logits, labels = make_multi_exit(n=n, n_exits=n_exits, seed=seed)
    costs = [2.0e5, 5.0e5, 9.0e5, 1.2e6][:n_exits]
    meta = {"name": "toy", "cost_units": "FLOPs"}
    half = n // 2
    return (
        eeopt.ExitData.from_logits(logits[:half], labels[:half], costs, metadata=meta),
        eeopt.ExitData.from_logits(logits[half:], labels[half:], costs, metadata=meta),
    )


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    val, test = _toy()
    out = tmp_path_factory.mktemp("report")
    return write_report(
        val,
        test,
        out,
        methods=["maxprob", "msdnet", "beem-a"],
        budgets=[5.0e5, 8.0e5],
        command="eeopt report toy.npz -o out",
        verbose=False,
    )


def test_page_has_every_section_in_order_each_with_a_reading(page):
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<h1>eeopt report: toy</h1>" in text
    assert re.findall(r"<h2>(.*?)</h2>", text) == SECTIONS
    for section in text.split("<h2>")[1:]:
        assert "<p class='reading'>" in section  # a one-line reading of every section
    assert text.count("<svg") == 5  # fronts, guarantee, exit bars, theorem, score separation
    assert 'src="http' not in text and "<script" not in text  # self-contained


def test_one_pivot_methods_by_budgets_in_engineering_units(page):
    text = page.read_text()
    assert text.count("<table class='pivot'>") == 2  # budgets, and AUROC by exit
    pivot = text.split("<table class='pivot'>")[1].split("</table>")[0]
    assert "Budget (MFLOPs)" in pivot
    assert re.findall(r"<th>([^<]*)</th>", pivot)[1:4] == ["method", "0.500", "0.800"]
    rows = re.findall(r"<tr><th>([^<]+)</th>", pivot.split("<tbody>")[1])
    assert rows == ["maxprob", "msdnet", "beem-a"]
    assert "<strong>" in pivot and " ± " in pivot and "×" in pivot
    assert not re.search(r"\d\.\d+e[+-]\d", text)  # no 3.025e+05 anywhere
    assert "MFLOPs" in text.split("<h2>")[0]  # the data section too


def test_exits_are_numbered_from_zero_and_theorem_explained(page):
    text = page.read_text()
    head = text.split("<h2>")[0]
    assert re.findall(r"<tr><td>(\d+)</td>", head) == ["0", "1", "2", "3"]
    theorem = text.split("<h2>BEEM-A and Theorem 3.1 (test data)</h2>")[1].split("<h2>")[0]
    reading = theorem.split("<p class='reading'>")[1].split("</p>")[0]
    assert "It holds at" in reading and "theorem&#x27;s conclusion" in reading
    assert "False" not in theorem.split("</p>", 1)[1]  # the table says yes/no, not False
    assert "<th>paper's i</th>" in theorem


def test_footer_names_the_version_and_the_command(page):
    footer = page.read_text().split("<footer>")[1]
    assert f"eeopt {eeopt.__version__}" in footer
    assert "eeopt report toy.npz -o out" in footer


def test_csv_files_next_to_the_page(page):
    runs = (page.parent / "comparison.csv").read_text().splitlines()
    assert runs[0].startswith("dataset,method,setting,budget,split") and len(runs) == 1 + 3 * 2
    assert (page.parent / "summary.csv").read_text().count("\n") == 1 + 1 + 3 * 2


def test_a_given_table_is_reused_with_its_methods_and_budgets(tmp_path):
    val, test = _toy(n=400, n_exits=3, seed=2)
    table = eeopt.compare(val, test, ["margin"], [3.0e5, 6.0e5], verbose=False)
    table.summary[1]["accuracy"] = 0.123456  # a marker: a refit would not reproduce it
    text = write_report(val, test, tmp_path, table=table, verbose=False).read_text()
    assert "12.3 ± " in text  # the given row, not a refit
    pivot = text.split("<table class='pivot'>")[1].split("</table>")[0]
    assert re.findall(r"<tr><th>([^<]+)</th>", pivot.split("<tbody>")[1]) == ["margin"]
    assert "BEEM-A" not in text  # no beem-a among the table's methods
    assert "write_report" in text.split("<footer>")[1]  # a Python call says so
    with pytest.raises(ValueError, match="table must be"):
        write_report(val, test, tmp_path, table=[1, 2], verbose=False)


def test_guarantee_section_certifies_each_method_and_checks_it_on_test(page, tmp_path):
    text = page.read_text()
    section = text.split("<h2>Guarantee on new data</h2>")[1].split("<h2>")[0]
    assert "with probability at least 0.9" in section and "at most 0.01" in section
    rows = re.findall(r"<tr><td>([^<]+)</td><td>(yes|no)</td>", section)
    assert [name for name, _ in rows] == ["maxprob", "beem-a"]  # msdnet takes budgets only
    val, test = _toy(n=400, n_exits=3, seed=2)
    table = eeopt.compare(val, test, ["margin"], [3.0e5], verbose=False)
    quiet = write_report(val, test, tmp_path, table=table, guarantee={}, verbose=False)
    assert "Guarantee on new data" not in quiet.read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is absent (Debian package 'chromium')")
def test_page_renders_in_headless_chromium(page, tmp_path):
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1000,1400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000  # a page with figures, not blank
