"""A self-contained HTML report: fronts, exit distributions, score separation, tables."""

from __future__ import annotations

import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from eeopt._progress import progress
from eeopt.compare import ComparisonTable, compare
from eeopt.data import ExitData
from eeopt.frontier import heldout_front, oracle_front
from eeopt.methods import method_names

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1rem 0; } svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.85rem; color: #555; }
.meta { color: #555; font-size: 0.9rem; }
"""


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _table_html(table: ComparisonTable) -> str:
    header = "".join(
        f"<th>{h}</th>"
        for h in ("method", "budget", "accuracy (%)", "mean cost", "speedup", "exit fractions")
    )
    rows = []
    for row in table.rows:
        budget = "" if row["budget"] is None else f"{row['budget']:.4g}"
        if row["accuracy"] is None:
            cells = [row["method"], budget, "n/a", "n/a", "n/a", row.get("note", "")]
        else:
            cells = [
                row["method"],
                budget,
                f"{100 * row['accuracy']:.2f}",
                f"{row['mean_cost']:.4g}",
                f"{row['speedup']:.2f}x",
                " ".join(f"{f:.2f}" for f in row["exit_fractions"]),
            ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def heldout_fronts_figure(
    val: ExitData,
    test: ExitData,
    methods: list[str],
    *,
    options: dict[str, dict[str, Any]] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (6.5, 4.2),
    verbose: bool = True,
) -> Any:
    """The figure a paper reports: test-set fronts of policies fitted on validation data
    (:func:`~eeopt.heldout_front`, per-method ``options``), with the test oracle and the final
    exit. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    from eeopt import plot

    options = options or {}
    fronts = {
        m: heldout_front(val, test, m, verbose=False, **options.get(m, {}))
        for m in progress(methods, "fronts", verbose)
    }
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    plot.plot_fronts(
        fronts,
        oracle=oracle_front(test),
        cost_units=str(test.metadata.get("cost_units", "")) or None,
        ax=ax,
        final=(float(test.costs[-1]), float(test.exit_accuracy[-1])),
        title=title,
    )
    return fig


def write_report(
    val: ExitData,
    test: ExitData,
    out_dir: str | os.PathLike,
    *,
    methods: list[str] | None = None,
    budgets: Any = None,
    title: str | None = None,
    table: ComparisonTable | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    verbose: bool = True,
) -> Path:
    """Fit ``methods`` on ``val``, evaluate on ``test`` and write ``out_dir/index.html``.

    The page embeds its figures as inline SVG (no other files needed): the test-set Pareto
    fronts of every method fitted on validation data, with the oracle and the final exit; the
    exit distributions at the middle budget; the separation of correct and wrong predictions by
    max probability per exit; the comparison table (also written as ``comparison.csv``); and,
    when ``beem-a`` is among the methods, the Theorem 3.1 report on the test data.

    ``table`` reuses a :func:`~eeopt.compare` of the same ``val`` and ``test`` (say, one already
    printed) instead of fitting again; its methods and budgets then replace ``methods`` and
    ``budgets``. ``options`` holds per-method fit options as in :func:`~eeopt.compare`
    (``{"eenet": {"random_state": 0}}`` makes the page the same from run to run).

    Returns
    -------
    Path of the HTML file.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from eeopt import plot

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if table is not None:
        if not isinstance(table, ComparisonTable):
            raise ValueError(
                f"table must be the ComparisonTable eeopt.compare returns, "
                f"not {type(table).__name__}; or leave it out."
            )
        methods = list(dict.fromkeys(r["method"] for r in table.rows[1:]))
        budgets = sorted({r["budget"] for r in table.rows if r["budget"] is not None})
    methods = method_names() if methods is None else list(methods)
    if budgets is None:
        budgets = np.linspace(test.costs[0], test.costs[-1], 7)[1:-1]
    budgets = np.asarray(budgets, dtype=float)
    if table is None:
        table = compare(val, test, methods, budgets, verbose=verbose, options=options)
    table.to_csv(out_dir / "comparison.csv")
    units = str(test.metadata.get("cost_units", "")) or None

    front_svg = _svg(heldout_fronts_figure(val, test, methods, options=options, verbose=verbose))

    at_middle, distribution_svg = {}, ""
    if budgets.size:
        middle = float(budgets[len(budgets) // 2])
        at_middle = {
            r["method"]: r["result"]
            for r in table.rows
            if r["budget"] == middle and r["result"] is not None
        }
    if at_middle:
        fig, ax = plt.subplots(figsize=(6.5, 3.2), constrained_layout=True)
        plot.plot_exit_distribution(at_middle, ax=ax, title=f"Budget {middle:.4g}")
        distribution_svg = _svg(fig)

    fig, axes = plt.subplots(
        1,
        test.n_exits,
        figsize=(min(2.2 * test.n_exits, 13), 2.4),
        constrained_layout=True,
        squeeze=False,
    )
    plot.plot_score_separation(test, "maxprob", axes=axes[0])
    separation_svg = _svg(fig)

    theorem_html = ""
    if "beem-a" in methods:
        from eeopt import fit, theory

        report = theory.theorem_3_1(fit(val, method="beem-a"), test)
        fig, ax = plt.subplots(figsize=(6.0, 3.4), constrained_layout=True)
        plot.plot_theorem(report, ax=ax)
        theorem_html = (
            "<h2>BEEM-A and Theorem 3.1 (test data)</h2>"
            f"<figure>{_svg(fig)}<figcaption>BEEM-A fitted with the paper's per-exit error rule "
            "on validation data. The constants are eeopt's reconstruction (see the docs)."
            f"</figcaption></figure><pre>{html.escape(str(report))}</pre>"
        )

    name = test.metadata.get("name", "")
    title = title or f"eeopt report{': ' + name if name else ''}"
    accuracies = ", ".join(f"{100 * a:.1f}" for a in test.exit_accuracy)
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>"
        f"{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='meta'>Fitted on {val.n_samples} validation samples, evaluated on "
        f"{test.n_samples} test samples; {test.n_exits} exits, {test.n_classes} classes; "
        f"costs {html.escape(str(test.costs.tolist()))} {html.escape(units or '')}. "
        f"Per-exit test accuracy (%): {accuracies}.</p>",
        "<h2>Accuracy against cost</h2>",
        f"<figure>{front_svg}<figcaption>Test accuracy against test mean cost of policies "
        "fitted on validation data; dashed: the oracle (labels known); star: the final exit."
        "</figcaption></figure>",
        "<h2>Comparison at fixed budgets</h2>",
        _table_html(table),
    ]
    if distribution_svg:
        parts += ["<h2>Where samples leave</h2>", f"<figure>{distribution_svg}</figure>"]
    if theorem_html:
        parts.append(theorem_html)
    parts += [
        "<h2>How well max probability separates right from wrong</h2>",
        f"<figure>{separation_svg}<figcaption>Test samples, per exit.</figcaption></figure>",
        "</body></html>",
    ]
    path = out_dir / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
