"""A pivot: rows (methods, scores) by columns (budgets, exits), the shape papers print.

:class:`Pivot` holds numbers, not strings: each cell a value with an optional interval, each
column a kind (accuracy, speedup, cost, ...) that says how to write it and which end is best.
It writes itself as aligned text, Markdown, LaTeX (booktabs), HTML, CSV and a pandas
DataFrame; the best cell of each column is bold and intervals read ``97.2 ± 0.3``.
"""

from __future__ import annotations

import csv
import html
import io
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eeopt.units import CostUnit

#: How each kind of value is written: scale, decimals, suffix, and whether higher is better
#: (None: no best, e.g. a difference).
KINDS: dict[str, tuple[float, int, str, bool | None]] = {
    "accuracy": (100.0, 1, "", True),  # percent
    "speedup": (1.0, 2, "×", True),
    "cost": (1.0, 3, "", False),  # significant digits, in the pivot's cost unit
    "auroc": (1.0, 3, "", True),
    "share": (100.0, 0, "%", True),  # a share of something, as a percentage
    "difference": (100.0, 1, "", None),  # accuracy points
}


@dataclass
class Pivot:
    """Rows by columns of values with optional intervals.

    Parameters
    ----------
    rows : list of str
        Row labels (methods, scores).
    columns : list of str
        Column labels (budgets, exits, metrics).
    mean : ndarray of shape (n_rows, n_columns)
        The values in their natural units (accuracy in [0, 1], cost in the data's units); NaN
        is written ``n/a``.
    low, high : ndarray of shape (n_rows, n_columns), optional
        Interval ends; written as ``mean ± d`` with d the larger distance from the mean to
        either end (never narrower than the interval).
    kinds : list of str, optional
        One of :data:`KINDS` per column; default ``"accuracy"`` everywhere.
    title, column_title, row_title : str
        A caption, a label over the columns ("Budget (MFLOPs)") and over the rows.
    notes : list of str
        Lines printed under the table (what the intervals are, the reference, ...).
    marks : ndarray of str, optional
        A short mark after a cell (e.g. "†" where a paired test rejects), explained in notes.
    cost_unit : CostUnit
        How columns of kind "cost" are written.
    source : object, optional
        What the pivot was made from (the :class:`~eeopt.ComparisonTable` of a paper table).
    """

    rows: list[str]
    columns: list[str]
    mean: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    kinds: list[str] | None = None
    title: str = ""
    column_title: str = ""
    row_title: str = "method"
    notes: list[str] = field(default_factory=list)
    marks: np.ndarray | None = None
    cost_unit: CostUnit = field(default_factory=CostUnit)
    #: What the pivot was made from (say the ComparisonTable), for the numbers behind it.
    source: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64).reshape(
            len(self.rows), len(self.columns)
        )
        if self.kinds is None:
            self.kinds = ["accuracy"] * len(self.columns)
        unknown = sorted(set(self.kinds) - set(KINDS))
        if len(self.kinds) != len(self.columns) or unknown:
            raise ValueError(
                f"kinds must name one of {sorted(KINDS)} per column ({len(self.columns)}), "
                f"got {self.kinds}."
            )

    # -- cells -----------------------------------------------------------------------------
    def best(self) -> np.ndarray:
        """Boolean mask of the best cell(s) of each column (ties all best; none for NaN)."""
        out = np.zeros(self.mean.shape, dtype=bool)
        for j, kind in enumerate(self.kinds):
            higher = KINDS[kind][3]
            column = self.mean[:, j]
            if higher is None or not np.isfinite(column).any():
                continue
            target = np.nanmax(column) if higher else np.nanmin(column)
            out[:, j] = column == target
        return out

    def number(self, value: float, kind: str) -> str:
        """``value`` written as a number of ``kind`` (no interval, no suffix)."""
        if not np.isfinite(value):
            return "n/a"
        if kind == "cost":
            return self.cost_unit.number(value)
        scale, decimals, _, _ = KINDS[kind]
        return f"{value * scale:.{decimals}f}"

    def cell_parts(self, i: int, j: int) -> tuple[str, str, str]:
        """``(value, plus_minus, suffix)`` of a cell: ``("97.2", "0.3", "")``; the interval
        part is empty where there is none."""
        kind = self.kinds[j]
        value = self.mean[i, j]
        suffix = KINDS[kind][2] if np.isfinite(value) else ""
        if self.low is None or not np.isfinite(value) or not np.isfinite(self.low[i, j]):
            return self.number(value, kind), "", suffix
        spread = max(value - self.low[i, j], self.high[i, j] - value, 0.0)
        return self.number(value, kind), self.number(spread, kind), suffix

    def cell_text(self, i: int, j: int, plus_minus: str = " ± ") -> str:
        value, spread, suffix = self.cell_parts(i, j)
        text = f"{value}{plus_minus}{spread}{suffix}" if spread else f"{value}{suffix}"
        mark = self._mark(i, j)
        return f"{text} {mark}" if mark else text

    def _mark(self, i: int, j: int) -> str:
        return "" if self.marks is None else str(self.marks[i, j])

    # -- writers ---------------------------------------------------------------------------
    def to_text(self) -> str:
        """Aligned plain text; the best cell of each column ends with ``*``."""
        best = self.best()
        header = [self.row_title, *self.columns]
        body = [
            [row]
            + [
                self.cell_text(i, j) + (" *" if best[i, j] else "")
                for j in range(len(self.columns))
            ]
            for i, row in enumerate(self.rows)
        ]
        widths = [max(len(r[c]) for r in [header, *body]) for c in range(len(header))]
        lines = [self.title] if self.title else []
        if self.column_title:
            lines.append(" " * (widths[0] + 2) + self.column_title)
        for r in [header, None, *body]:
            if r is None:
                lines.append("  ".join("-" * w for w in widths))
                continue
            cells = [r[0].ljust(widths[0])] + [
                c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
            ]
            lines.append("  ".join(cells).rstrip())
        notes = [*self.notes, "* best in its column"] if best.any() else self.notes
        return "\n".join(lines + notes)

    def __str__(self) -> str:
        return self.to_text()

    def to_markdown(self, path: str | os.PathLike | None = None) -> str:
        """A GitHub/Python-Markdown table; the best cell of each column in bold."""
        best = self.best()
        caption = ", ".join(x for x in (self.title, self.column_title) if x)
        lines = [f"**{caption}**", ""] if caption else []
        lines += [_md_row([self.row_title, *self.columns])]
        lines.append("|" + ":---|" + "---:|" * len(self.columns))
        for i, row in enumerate(self.rows):
            cells = [self.cell_text(i, j) for j in range(len(self.columns))]
            cells = [f"**{c}**" if best[i, j] else c for j, c in enumerate(cells)]
            lines.append(_md_row([row, *cells]))
        text = "\n".join(lines) + "\n"
        if self.notes:
            text += "\n" + "\n".join(f"{note}  " for note in self.notes) + "\n"
        return _maybe_write(text, path)

    def to_latex(self, path: str | os.PathLike | None = None) -> str:
        """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``); best cells in bold,
        intervals as ``$97.2 \\pm 0.3$``; notes become LaTeX comments above it."""
        best = self.best()
        n = len(self.columns)
        lines = [
            f"% {_latex_comment(note)}"
            for note in ([self.title] if self.title else []) + self.notes
        ]
        lines += [f"\\begin{{tabular}}{{l{'r' * n}}}", "\\toprule"]
        if self.column_title:
            lines.append(f" & \\multicolumn{{{n}}}{{c}}{{{latex_escape(self.column_title)}}} \\\\")
            lines.append(f"\\cmidrule(l){{2-{n + 1}}}")
        header = [latex_escape(self.row_title.capitalize())] + [
            latex_escape(c) for c in self.columns
        ]
        lines += [" & ".join(header) + " \\\\", "\\midrule"]
        for i, row in enumerate(self.rows):
            cells = [self._latex_cell(i, j, best[i, j]) for j in range(n)]
            lines.append(" & ".join([latex_escape(row), *cells]) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        return _maybe_write("\n".join(lines) + "\n", path)

    def _latex_cell(self, i: int, j: int, bold: bool) -> str:
        value, spread, suffix = self.cell_parts(i, j)
        if value == "n/a":
            return "--"
        body = f"{value} \\pm {spread}" if spread else value
        body = f"\\mathbf{{{body}}}" if bold else body
        tail = {"×": "\\times", "%": "\\%"}.get(suffix, "")
        mark = {"†": "^{\\dagger}"}.get(self._mark(i, j), "")
        return f"${body}{tail}{mark}$"

    def to_html(self, subtext: np.ndarray | None = None) -> str:
        """An HTML ``<table>``; best cells in ``<strong>``, ``subtext`` (str per cell) in a
        small second line (say the speedup under an accuracy)."""
        best = self.best()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        top = ""
        if self.column_title:
            top = (
                f"<tr><th></th><th colspan='{len(self.columns)}' class='group'>"
                f"{html.escape(self.column_title)}</th></tr>"
            )
        rows = []
        for i, row in enumerate(self.rows):
            cells = []
            for j in range(len(self.columns)):
                text = html.escape(self.cell_text(i, j))
                text = f"<strong>{text}</strong>" if best[i, j] else text
                if subtext is not None and subtext[i, j]:
                    text += f"<br><small>{html.escape(str(subtext[i, j]))}</small>"
                cells.append(f"<td>{text}</td>")
            rows.append(f"<tr><th>{html.escape(row)}</th>{''.join(cells)}</tr>")
        return (
            f"<table class='pivot'><thead>{top}<tr><th>{html.escape(self.row_title)}</th>"
            f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )

    def records(self) -> list[dict[str, Any]]:
        """Long form: one dict per cell with ``row``, ``column``, ``kind``, ``mean``, ``low``,
        ``high`` (natural units; None where missing)."""
        out = []
        for i, row in enumerate(self.rows):
            for j, column in enumerate(self.columns):
                out.append(
                    {
                        "row": row,
                        "column": column,
                        "kind": self.kinds[j],
                        "mean": _plain(self.mean[i, j]),
                        "low": None if self.low is None else _plain(self.low[i, j]),
                        "high": None if self.high is None else _plain(self.high[i, j]),
                    }
                )
        return out

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """Long-form CSV of :meth:`records`."""
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, ["row", "column", "kind", "mean", "low", "high"], lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(self.records())
        return _maybe_write(buffer.getvalue(), path)

    def to_pandas(self) -> Any:
        """:meth:`records` as a pandas DataFrame (needs pandas: ``pip install eeopt[io]``)."""
        return import_pandas().DataFrame.from_records(self.records())


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


_LATEX_SPECIAL = {
    "\\": "\\textbackslash{}",
    "&": "\\&",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "_": "\\_",
    "{": "\\{",
    "}": "\\}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
    "±": "$\\pm$",
    "×": "$\\times$",
}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _latex_comment(text: str) -> str:
    return str(text).replace("\n", " ")


def _plain(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _maybe_write(text: str, path: str | os.PathLike | None) -> str:
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return text


def import_pandas() -> Any:
    """pandas, or an ImportError that says how to install it."""
    try:
        import pandas
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("to_pandas() needs pandas: pip install pandas (or eeopt[io]).") from None
    return pandas
