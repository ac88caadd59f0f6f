import re
from html.parser import HTMLParser

import numpy as np
import pytest

from eeopt.pivot import Pivot, latex_escape
from eeopt.units import CostUnit


@pytest.fixture
def pivot():
    mean = np.array([[0.972, 0.951], [0.965, np.nan], [0.972, 0.940]])
    return Pivot(
        rows=["maxprob", "patience", "beem_a & co"],
        columns=["25%", "50%"],
        mean=mean,
        low=mean - 0.003,
        high=mean + np.array([[0.002], [0.004], [0.001]]),
        title="Test accuracy (%)",
        column_title="Budget (share of the final exit's cost)",
        notes=["† differs from final-exit (paired bootstrap, p < 0.05)."],
        marks=np.array([["", "†"], ["", ""], ["", ""]], dtype=object),
    )


def test_cells_read_value_plus_minus_the_wider_side(pivot):
    assert pivot.cell_text(0, 0) == "97.2 ± 0.3"
    assert pivot.cell_text(1, 0) == "96.5 ± 0.4"  # the wider side of [96.2, 96.9]
    assert pivot.cell_text(0, 1) == "95.1 ± 0.3 †"
    assert pivot.cell_text(1, 1) == "n/a"


def test_best_per_column_ties_included_nan_ignored(pivot):
    np.testing.assert_array_equal(pivot.best(), [[True, True], [False, False], [True, False]])
    lower = Pivot(["a", "b"], ["c"], [[3.0], [2.0]], kinds=["cost"], cost_unit=CostUnit(1, ""))
    assert lower.best().tolist() == [[False], [True]]  # lower cost is better


class _Cells(HTMLParser):
    """The cells of the HTML tables, with whether each was bold."""

    def __init__(self):
        super().__init__()
        self.rows, self.bold, self.in_cell = [], False, False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.rows[-1].append(["", False])
            self.in_cell = True
        elif tag == "strong":
            self.bold = True

    def handle_endtag(self, tag):
        if tag == "strong":
            self.bold = False
        elif tag in ("td", "th"):
            self.in_cell = False

    def handle_data(self, data):
        if self.in_cell:
            self.rows[-1][-1][0] += data
            self.rows[-1][-1][1] |= self.bold


def test_markdown_round_trips_through_a_parser(pivot):
    markdown = pytest.importorskip("markdown", reason="Python-Markdown comes with mkdocs")
    parser = _Cells()
    parser.feed(markdown.markdown(pivot.to_markdown(), extensions=["tables"]))
    header, *body = parser.rows
    assert [text for text, _ in header] == ["method", "25%", "50%"]
    assert [row[0][0] for row in body] == pivot.rows
    best = pivot.best()
    for i, row in enumerate(body):
        for j, (text, bold) in enumerate(row[1:]):
            assert text == pivot.cell_text(i, j)
            assert bold == best[i, j]


def test_latex_is_balanced_booktabs(pivot):
    latex = pivot.to_latex()
    body = "\n".join(line for line in latex.splitlines() if not line.startswith("%"))
    assert body.startswith("\\begin{tabular}{lrr}") and body.rstrip().endswith("\\end{tabular}")
    assert [r for r in ("\\toprule", "\\midrule", "\\bottomrule") if r in body] == [
        "\\toprule",
        "\\midrule",
        "\\bottomrule",
    ]
    assert body.index("\\toprule") < body.index("\\midrule") < body.index("\\bottomrule")
    assert "\\hline" not in body
    # Braces balance (escaped ones aside) and every math span closes.
    plain = body.replace("\\{", "").replace("\\}", "")
    depth = 0
    for ch in plain:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    rows = [line for line in body.splitlines() if line.endswith("\\\\")]
    for line in rows:
        assert line.replace("\\$", "").count("$") % 2 == 0
        if "multicolumn" not in line:
            assert line.replace("\\&", "").count("&") == 2  # three columns
    assert "\\mathbf{97.2 \\pm 0.3}" in body and "^{\\dagger}" in body
    assert "beem\\_a \\& co" in body and "25\\%" in body and "--" in body
    assert latex.startswith("% Test accuracy (%)")


def test_latex_escape():
    assert latex_escape("a_b & 5% #1 {x}") == "a\\_b \\& 5\\% \\#1 \\{x\\}"


def test_text_html_and_long_form(pivot):
    text = pivot.to_text()
    assert "97.2 ± 0.3 *" in text and text.splitlines()[0] == "Test accuracy (%)"
    assert "* best in its column" in text
    page = pivot.to_html(np.full((3, 2), "3.1×", dtype=object))
    assert page.count("<strong>") == 3 and "<small>3.1×</small>" in page
    records = pivot.records()
    assert len(records) == 6 and records[3]["mean"] is None
    assert pivot.to_csv().splitlines()[0] == "row,column,kind,mean,low,high"
    assert re.search(r"^maxprob,25%,accuracy,0\.972,", pivot.to_csv(), re.M)


def test_kinds_must_name_one_per_column():
    with pytest.raises(ValueError, match="kinds"):
        Pivot(["a"], ["b", "c"], [[1.0, 2.0]], kinds=["accuracy"])
    with pytest.raises(ValueError, match="kinds"):
        Pivot(["a"], ["b"], [[1.0]], kinds=["weird"])
