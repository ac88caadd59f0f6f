import shutil
import subprocess

import pytest
from conftest import make_multi_exit

import eeopt
from eeopt.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    logits, labels = make_multi_exit(n=1200, n_exits=4, seed=5)
    val = eeopt.ExitData.from_logits(logits[:600], labels[:600], metadata={"name": "toy"})
    test = eeopt.ExitData.from_logits(logits[600:], labels[600:], metadata={"name": "toy"})
    out = tmp_path_factory.mktemp("report")
    return write_report(
        val, test, out, methods=["maxprob", "msdnet"], budgets=[2.0, 3.0], verbose=False
    )


def test_page_holds_figures_and_table(page):
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "eeopt report: toy" in text
    assert text.count("<svg") == 3  # fronts, exit distribution, score separation
    assert text.count("<tr>") == 1 + 1 + 2 * 2  # header, final exit, 2 methods x 2 budgets


def test_a_given_table_is_reused_with_its_methods_and_budgets(tmp_path):
    logits, labels = make_multi_exit(n=400, n_exits=3, seed=2)
    val = eeopt.ExitData.from_logits(logits[:200], labels[:200])
    test = eeopt.ExitData.from_logits(logits[200:], labels[200:])
    table = eeopt.compare(val, test, ["margin"], [1.5, 2.5], verbose=False)
    table.rows[1]["accuracy"] = 0.123456  # a marker: a refit would not reproduce it
    text = write_report(val, test, tmp_path, table=table, verbose=False).read_text()
    assert "<td>12.35</td>" in text  # the given row, not a refit
    assert text.count("<tr>") == 1 + 1 + 2  # header, final exit, margin at the 2 budgets
    with pytest.raises(ValueError, match="table must be"):
        write_report(val, test, tmp_path, table=[1, 2], verbose=False)


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
