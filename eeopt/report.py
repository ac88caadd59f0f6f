"""A self-contained HTML report that reads at a glance: one section per question, each with a
one-line reading of what it shows.

The page (``write_report``) holds, in order: the data (exits, costs in engineering units, the
oracle); accuracy at fixed budgets as one pivot (methods by budgets, best in bold, intervals);
the test-set fronts; where samples leave (a stacked bar per method); diagnostics (gap to the
oracle, recall, AUROC of the scores); BEEM-A and Theorem 3.1 with what its check means here;
the separation of right from wrong answers; and a footer with eeopt's version and the command.
Figures are inline SVG (no other files needed); every method has its colour in every figure.
"""

from __future__ import annotations

import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from eeopt._progress import progress
from eeopt.compare import FINAL, ComparisonTable, compare
from eeopt.data import ExitData
from eeopt.diagnostics import score_auroc
from eeopt.frontier import heldout_front, oracle_front
from eeopt.methods import method_names
from eeopt.units import CostUnit, data_cost_unit

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: 0.3rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem; }
p.reading { background: #f4f7fb; border-left: 3px solid #0072B2; padding: 0.4rem 0.7rem; }
table { border-collapse: collapse; font-size: 0.88rem; margin: 0.6rem 0; }
th, td { padding: 0.22rem 0.55rem; border-bottom: 1px solid #ddd; text-align: right;
         vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #888; } th.group { text-align: center; }
td small { color: #666; }
figure { margin: 0.8rem 0; } svg { max-width: 100%; height: auto; }
figcaption, .note { font-size: 0.85rem; color: #555; }
.meta { color: #444; } footer { margin-top: 3rem; font-size: 0.8rem; color: #666;
       border-top: 1px solid #ddd; padding-top: 0.5rem; }
.ok { color: #009E73; } .no { color: #D55E00; }
"""


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _reading(text: str) -> str:
    return f"<p class='reading'>{html.escape(text)}</p>"


def heldout_fronts_figure(
    val: ExitData,
    test: ExitData,
    methods: list[str],
    *,
    options: dict[str, dict[str, Any]] | None = None,
    random_state: int | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (6.5, 4.2),
    verbose: bool = True,
) -> Any:
    """The figure a paper reports: test-set fronts of policies fitted on validation data
    (:func:`~eeopt.heldout_front`, per-method ``options``), with the test oracle and the final
    exit, in engineering cost units. ``random_state`` seeds the methods that draw random
    numbers (EENet), so that the figure is the same from run to run. Returns the Figure."""
    import matplotlib.pyplot as plt

    from eeopt import plot

    options = options or {}
    fronts = {
        m: heldout_front(val, test, m, verbose=False, **_seeded(m, options, random_state))
        for m in progress(methods, "fronts", verbose)
    }
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    plot.plot_fronts(
        fronts,
        oracle=oracle_front(test),
        unit=data_cost_unit(test.costs, test.metadata),
        ax=ax,
        final=(float(test.costs[-1]), float(test.exit_accuracy[-1])),
        title=title,
    )
    return fig


def _seeded(method: str, options: dict, random_state: int | None) -> dict[str, Any]:
    """``options[method]`` with ``random_state`` (every method takes it; EENet draws from it)."""
    out = dict(options.get(method, {}))
    if random_state is not None:
        out.setdefault("random_state", random_state)
    return out


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
    n_splits: int = 1,
    n_jobs: int | None = None,
    random_state: int | None = 0,
    command: str | None = None,
    guarantee: dict[str, Any] | None = None,
    verbose: bool = True,
) -> Path:
    """Fit ``methods`` on ``val``, evaluate on ``test`` and write ``out_dir/index.html``.

    Parameters
    ----------
    val, test : ExitData
        Validation (fitting) and test exits of one model, with labels.
    methods : list of str, optional
        Default: every registered method.
    budgets : array-like, optional
        Default: five budgets evenly spaced inside ``[costs[0], costs[-1]]``.
    title : str, optional
    table : ComparisonTable, optional
        Reuse a :func:`~eeopt.compare` of the same data (say, one already printed) instead of
        fitting again; its methods and budgets then replace ``methods`` and ``budgets``.
    options : dict, optional
        Per-method fit options, as in :func:`~eeopt.compare`.
    n_splits, n_jobs, random_state
        Passed to :func:`~eeopt.compare` (``n_splits > 1`` pools val and test and re-splits
        them for the table; the fronts, the Theorem 3.1 check and the histograms use the
        given val/test split). ``random_state`` also seeds the fronts' fits.
    command : str, optional
        The command that made the page, shown in its footer (the CLI passes its own).
    guarantee : dict, optional
        The certified target of the "Guarantee" section: ``eeopt.fit`` arguments, default
        ``{"tolerance": 0.01, "delta": 0.1}`` (the accuracy gap, certified on ``val`` for each
        method that takes an accuracy target, checked on ``test``); ``{}`` leaves the section
        out.
    verbose : bool, default=True

    Returns
    -------
    Path of the HTML file. ``comparison.csv`` (one row per run) and ``summary.csv`` are written
    next to it.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if table is not None and not isinstance(table, ComparisonTable):
        raise ValueError(
            f"table must be the ComparisonTable eeopt.compare returns, "
            f"not {type(table).__name__}; or leave it out."
        )
    if table is None:
        methods = method_names() if methods is None else list(methods)
        if budgets is None:
            budgets = np.linspace(test.costs[0], test.costs[-1], 7)[1:-1]
        table = compare(
            val,
            test,
            methods,
            budgets,
            n_splits=n_splits,
            n_jobs=n_jobs,
            random_state=random_state,
            verbose=verbose,
            options=options,
        )
    table.to_csv(out_dir / "comparison.csv")
    table.to_csv(out_dir / "summary.csv", level="summary")
    sections = _sections(val, test, table, options or {}, random_state, verbose)
    certified = DEFAULT_GUARANTEE if guarantee is None else dict(guarantee)
    if certified:
        sections.insert(3, _guarantee_section(val, test, table.methods, certified, random_state))
    page = _page(title or _title(test), sections, command or _python_command(table))
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


#: The report's certified target unless ``guarantee=`` says otherwise.
DEFAULT_GUARANTEE = {"tolerance": 0.01, "delta": 0.1}


def _title(test: ExitData) -> str:
    name = test.metadata.get("name", "")
    return f"eeopt report{': ' + name if name else ''}"


def _python_command(table: ComparisonTable) -> str:
    settings = ", ".join(table.settings())
    return (
        f"eeopt.report.write_report(val, test, ..., methods={table.methods}) at budgets {settings}"
    )


def _sections(
    val: ExitData,
    test: ExitData,
    table: ComparisonTable,
    options: dict,
    random_state: int | None,
    verbose: bool,
) -> list[str]:
    unit = data_cost_unit(test.costs, test.metadata)
    methods = table.methods
    parts = [
        _data_section(val, test, table, unit),
        _budget_section(table),
        _fronts_section(val, test, table, options, random_state, verbose),
        _exits_section(table),
        _diagnostics_section(table, test),
    ]
    if "beem-a" in methods:
        parts.append(_theorem_section(val, test))
    parts.append(_separation_section(test))
    return parts


def _page(title: str, sections: list[str], command: str) -> str:
    from eeopt import __version__

    return "\n".join(
        [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            *sections,
            f"<footer>Made by eeopt {html.escape(__version__)} with "
            f"<code>{html.escape(command)}</code>.</footer>",
            "</body></html>",
        ]
    )


# -- sections -------------------------------------------------------------------------------
def _data_section(val: ExitData, test: ExitData, table: ComparisonTable, unit: CostUnit) -> str:
    oracle = oracle_front(test)
    accuracy = test.exit_accuracy
    auroc = score_auroc(test, ["maxprob"]).mean[0]
    rows = "".join(
        f"<tr><td>{k}</td><td>{unit.number(c)}</td><td>{100 * a:.1f}</td><td>"
        f"{'n/a' if np.isnan(r) else f'{r:.3f}'}</td></tr>"
        for k, (c, a, r) in enumerate(zip(test.costs, accuracy, auroc, strict=True))
    )
    head = (
        f"<tr><th>exit</th><th>cost ({html.escape(unit.label or 'units')})</th>"
        "<th>accuracy (%)</th><th>AUROC of max probability</th></tr>"
    )
    meta = (
        f"{table.describe()} {test.n_exits} exits (numbered 0 to {test.n_exits - 1} as in "
        f"the API), {test.n_classes} classes."
    )
    reading = (
        f"Accuracy rises from {100 * accuracy[0]:.1f}% at exit 0 to {100 * accuracy[-1]:.1f}% "
        f"at exit {test.n_exits - 1}, for {test.costs[-1] / test.costs[0]:.0f} times the cost. "
        f"An oracle that knew the labels (each sample at its earliest right exit) would reach "
        f"{100 * oracle.accuracies[-1]:.1f}% at {unit.format(oracle.mean_costs[-1])}: the room "
        "early exit has to play in."
    )
    return (
        f"<p class='meta'>{html.escape(meta)}</p>{_reading(reading)}"
        f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"
    )


def _budget_section(table: ComparisonTable) -> str:
    settings = table.settings()
    if not settings:
        return ""
    accuracy = table.pivot("accuracy")
    speedup = table.pivot("speedup")
    subtext = np.array(
        [
            [
                speedup.cell_parts(i, j)[0] + "×" if np.isfinite(speedup.mean[i, j]) else ""
                for j in range(len(settings))
            ]
            for i in range(len(accuracy.rows))
        ],
        dtype=object,
    )
    notes = "".join(f"{html.escape(n)}<br>" for n in accuracy.notes)
    return (
        "<h2>Accuracy at fixed budgets</h2>"
        + _reading(_budget_reading(table, accuracy))
        + accuracy.to_html(subtext)
        + f"<p class='note'>Test accuracy (%), speedup over the final exit below it. {notes}</p>"
    )


def _budget_reading(table: ComparisonTable, accuracy: Any) -> str:
    best = accuracy.best()
    columns = accuracy.columns
    leaders = [accuracy.rows[i] for i in np.flatnonzero(best[:, 0])]
    text = (
        f"At {_setting_phrase(table, columns[0])}, {' and '.join(leaders) or 'no method'} "
        f"{'is' if len(leaders) == 1 else 'are'} most accurate "
        f"({_plain_cell(accuracy, int(np.argmax(best[:, 0])), 0)}%)."
    )
    reference = "the final exit" if table.reference == FINAL else table.reference
    marked = (accuracy.marks == "†").any(axis=0)
    quiet_from = len(columns) - int(np.argmax(marked[::-1])) if marked.any() else 0
    level = f"paired bootstrap, level {1 - table.confidence:.2g}"
    if quiet_from == 0:
        return f"{text} No method differs significantly from {reference} ({level})."
    if quiet_from < len(columns):
        return (
            f"{text} From {_setting_phrase(table, columns[quiet_from])} on, no method differs "
            f"significantly from {reference} ({level}); † marks those that do below it."
        )
    return f"{text} † marks the methods that differ significantly from {reference} ({level})."


def _setting_phrase(table: ComparisonTable, label: str) -> str:
    """A column of the comparison in words: "the budget 0.303 MFLOPs", "25% of the final
    exit's cost"."""
    kind = table.datasets[table.dataset_name()]["setting_kind"]
    if kind == "budget":
        return f"the budget {label} {table.unit().label}".rstrip()
    if kind == "fraction":
        return f"{label} of the final exit's cost"
    return "the final exit's accuracy" if kind == "accuracy" else "the default target"


def _plain_cell(pivot: Any, i: int, j: int) -> str:
    """A cell's value and interval, without its mark."""
    value, spread, _ = pivot.cell_parts(i, j)
    return f"{value} ± {spread}" if spread else value


def _fronts_section(
    val: ExitData,
    test: ExitData,
    table: ComparisonTable,
    options: dict,
    random_state: int | None,
    verbose: bool,
) -> str:
    fig = heldout_fronts_figure(
        val, test, table.methods, options=options, random_state=random_state, verbose=verbose
    )
    middle = table.settings()[len(table.settings()) // 2] if table.settings() else None
    gap = table.pivot("gap_closed") if middle is not None else None
    reading = (
        "Each line: test accuracy of the policies a method fits on validation data, against "
        "their test cost. Dashed: the oracle (labels known); no policy can pass it. The oracle "
        "is the same with or without recall (answering with an earlier exit already passed): "
        "with the labels known, the earliest right exit is the cheapest right answer either way."
    )
    if gap is not None and np.isfinite(gap.mean[:, gap.columns.index(middle)]).any():
        j = gap.columns.index(middle)
        i = int(np.nanargmax(gap.mean[:, j]))
        reading += (
            f" At {_setting_phrase(table, middle)}, {gap.rows[i]} closes "
            f"{100 * gap.mean[i, j]:.0f}% of the "
            "gap between a static mix of exits (no look at the input) and the oracle."
        )
    return (
        "<h2>Accuracy against cost</h2>"
        + _reading(reading)
        + f"<figure>{_svg(fig)}<figcaption>Test set; star: the final exit alone."
        "</figcaption></figure>"
    )


def _exits_section(table: ComparisonTable) -> str:
    import matplotlib.pyplot as plt

    from eeopt import plot

    settings = table.settings()
    if not settings:
        return ""
    middle = settings[len(settings) // 2]
    rows = [
        r
        for r in table.summary
        if r["setting"] == middle and r["method"] != FINAL and r["exit_fractions"]
    ]
    if not rows:
        return ""
    fractions = {r["method"]: np.asarray(r["exit_fractions"]) for r in rows}
    fig, ax = plt.subplots(figsize=(6.5, 0.42 * len(fractions) + 1.3), constrained_layout=True)
    plot.plot_exit_distribution(fractions, ax=ax)
    early = {m: f[:2].sum() for m, f in fractions.items()}
    last = {m: f[-1] for m, f in fractions.items()}
    first, keeper = max(early, key=early.get), max(last, key=last.get)
    reading = (
        f"At {_setting_phrase(table, middle)}: {first} lets the most samples leave by exit 1 "
        f"({100 * early[first]:.0f}%); {keeper} keeps the most to the final exit "
        f"({100 * last[keeper]:.0f}%). Same budget, different bets on which samples are easy."
    )
    return f"<h2>Where samples leave</h2>{_reading(reading)}<figure>{_svg(fig)}</figure>"


def _diagnostics_section(table: ComparisonTable, test: ExitData) -> str:
    settings = table.settings()
    parts = ["<h2>Diagnostics</h2>"]
    if settings:
        middle = settings[len(settings) // 2]
        parts.append(_gap_recall_table(table, middle))
    auroc = score_auroc(test)
    best = auroc.best()
    wins = {name: int(best[i].sum()) for i, name in enumerate(auroc.rows)}
    leader = max(wins, key=wins.get)
    parts.append(
        _reading(
            f"AUROC of each score for 'this exit is right' (0.5 is chance): {leader} is best at "
            f"{wins[leader]} of {test.n_exits} exits. A score that ranks right above wrong "
            "answers makes a better exit rule at every budget."
        )
    )
    parts.append(auroc.to_html())
    return "".join(parts)


def _gap_recall_table(table: ComparisonTable, middle: str) -> str:
    pivots = [
        table.pivot(m) for m in ("accuracy", "gap_closed", "recall_accuracy", "recall_ceiling")
    ]
    j = pivots[0].columns.index(middle)
    head = (
        "<tr><th>method</th><th>accuracy (%)</th><th>gap to the oracle closed</th>"
        "<th>with recall (%)</th><th>recall ceiling (%)</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{html.escape(p.cell_text(i, j))}</td>" for p in pivots)
        + "</tr>"
        for i, name in enumerate(pivots[0].rows)
    )
    gains = pivots[2].mean[:, j] - pivots[0].mean[:, j]
    text = (
        f"At {_setting_phrase(table, middle)}: the gap closed is the share of the way from a "
        "static mix of exits to the oracle at the same cost (100% = the oracle, below 0 = "
        "worse than not looking at the input). With recall, each sample answers with the "
        "most confident exit it passed"
    )
    if np.isfinite(gains).any():
        i = int(np.nanargmax(np.abs(gains)))
        text += (
            f"; that changes accuracy by {100 * gains[i]:+.1f} points at most ({pivots[0].rows[i]})"
        )
    text += "; the ceiling is the share of samples some passed exit gets right."
    return _reading(text) + f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"


def _guarantee_section(
    val: ExitData, test: ExitData, methods: list[str], options: dict, random_state: int | None
) -> str:
    """Certified targets: each method's certificate on val, its upper bound along the tested
    path, and the risk it has on test."""
    import warnings

    from eeopt import fit
    from eeopt.methods import method_spec

    options = {"random_state": random_state, **options}
    rows = []
    for method in [m for m in methods if not method_spec(m).budget_only]:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            policy = fit(val, method=method, verbose=False, **options)
        record = policy.guarantee_
        rows.append((method, record, policy.evaluate(test), _held_out_risk(policy, test, record)))
    if not rows:
        return ""
    first = rows[0][1]
    return (
        "<h2>Guarantee on new data</h2>"
        + _reading(_guarantee_reading(rows, test))
        + f"<figure>{_svg(_guarantee_figure(rows, val))}<figcaption>Each method's "
        f"{html.escape(first['bound'])} upper bound at confidence {1 - first['delta']:g} on its "
        "risk, along the settings tested (from no early exit, right, towards cheaper settings, "
        "left); fixed-sequence testing certifies the settings before the first one above "
        "epsilon, and the cheapest of them is kept. Paths built from the data (per-exit "
        "thresholds, learned weights) are tested on half of the validation samples."
        "</figcaption></figure>" + _guarantee_table(rows)
    )


def _guarantee_figure(rows: list, val: ExitData) -> Any:
    """Upper bounds along each method's tested path, against the settings' mean costs."""
    import matplotlib.pyplot as plt

    from eeopt import plot

    unit = data_cost_unit(val.costs, val.metadata)
    fig, ax = plt.subplots(figsize=(7.4, 3.2), constrained_layout=True)
    for method, record, _, _ in rows:
        style = plot.method_style(method)
        ax.plot(
            unit.scale(record["tested_mean_costs"]),
            record["upper_bounds"],
            label=method,
            color=style.color,
            marker=style.marker,
            markevery=max(1, len(record["upper_bounds"]) // 12),
            markersize=3.5,
            linewidth=1.3,
        )
    first = rows[0][1]
    ax.axhline(first["epsilon"], color="black", linewidth=1.0, label="epsilon")
    ax.invert_xaxis()  # the path goes from the dearest setting to the cheapest
    ax.set_xlabel(unit.axis_label("Mean cost of the setting on the validation samples"))
    ax.set_ylabel(f"upper bound on the {first['risk']} risk")
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]), top=max(3 * first["epsilon"], 1e-3))
    ax.legend(frameon=False, fontsize="small")
    return fig


def _held_out_risk(policy: Any, test: ExitData, record: dict) -> float:
    """The certified risk measured on the test samples."""
    predictions = policy.predict(test)
    if record["risk"] == "consistency":
        return float(np.mean(predictions != test.predictions[:, -1]))
    wrong = np.mean(predictions != test.labels)
    if record["risk"] == "error":
        return float(wrong)
    return float(wrong - (1 - test.exit_accuracy[-1]))


def _guarantee_reading(rows: list, test: ExitData) -> str:
    held = [m for m, r, _, risk in rows if risk <= r["epsilon"]]
    certified = [(m, res) for m, r, res, _ in rows if r["certified"]]
    record = rows[0][1]
    text = (
        f"Certified on the validation samples: with probability at least "
        f"{1 - record['delta']:g}, the {record['risk']} risk on new data is at most "
        f"{record['epsilon']:g}. {len(held)} of {len(rows)} methods stay within it on the "
        f"{test.n_samples} test samples"
    )
    if certified:
        best, result = max(certified, key=lambda item: item[1].speedup)
        text += f"; the fastest certified is {best} ({result.speedup:.2f}× the final exit)"
    return text + "."


def _guarantee_table(rows: list) -> str:
    header = (
        "<tr><th>method</th><th>certified</th><th>settings tested</th><th>upper bound</th>"
        "<th>test risk</th><th>test speedup</th></tr>"
    )
    body = []
    for method, record, result, risk in rows:
        n = record["n_certified"]
        # The last certified setting's row (the record lists it whatever else it thins).
        row = record["tested_positions"].index(n - 1) if n else None
        bound = f"{record['upper_bounds'][row]:.4f}" if n else "–"
        ok = "ok" if risk <= record["epsilon"] else "no"
        risk = round(risk, 12) + 0.0  # no "-0.0000"
        body.append(
            f"<tr><td>{html.escape(method)}</td><td>{'yes' if record['certified'] else 'no'}"
            f"</td><td>{record['n_tested']}</td><td>{bound}</td>"
            f"<td class='{ok}'>{risk:+.4f}</td><td>{result.speedup:.2f}×</td></tr>"
        )
    return f"<table><thead>{header}</thead><tbody>{''.join(body)}</tbody></table>"


def _theorem_section(val: ExitData, test: ExitData) -> str:
    import matplotlib.pyplot as plt

    from eeopt import fit, plot, theory

    report = theory.theorem_3_1(fit(val, method="beem-a", verbose=False), test)
    fig, ax = plt.subplots(figsize=(7.4, 3.4), constrained_layout=True)
    plot.plot_theorem(report, ax=ax)
    return (
        "<h2>BEEM-A and Theorem 3.1 (test data)</h2>"
        + _reading(_theorem_reading(report))
        + f"<figure>{_svg(fig)}<figcaption>BEEM-A fitted with the paper's per-exit error rule on "
        "validation data; the constants are eeopt's reconstruction (see the BEEM page of the "
        "docs). The error axis is clipped above the measured errors; a clipped bound is "
        "written at the top.</figcaption></figure>" + _theorem_table(report)
    )


def _theorem_reading(report: Any) -> str:
    holds = np.asarray(report.condition)
    used = np.asarray(report.n_exit) > 0
    below = np.asarray(report.measured_error) < report.p  # NaN (nobody leaves) is False
    exits = np.asarray(report.exit_number) - 1
    text = (
        f"From exit 1 on, the check (q < bound) says, with eeopt's reading of the constants, "
        f"that the samples leaving there err less than the final exit does "
        f"(p = {100 * report.p:.1f}%). It holds at {int(holds.sum())} of {holds.size} early "
        "exits."
    )
    reasons = (
        (
            ~holds & ~used,
            "no test sample leaves, so the bound is 0 and the check says no: expected, and "
            "harmless",
        ),
        (
            ~holds & used & below & (exits == 0),
            "the samples leaving err below p, yet the check says no: at the paper's first "
            "exit the bound has the factor b^0 = 1 where 'err below p' needs B (the share of "
            "wrong answers that leave), so it can only hold if exit 0 alone beats the final "
            "exit; expected",
        ),
        (
            ~holds & used & ~below,
            "the samples leaving err at least p on test data ({errors}): the thresholds kept "
            "them below p on validation data, and a small excess on new data is sampling "
            "error, not a failure of the theorem",
        ),
    )
    errors = np.asarray(report.measured_error)
    for where, reason in reasons:
        if where.any():
            shown = _join([f"{100 * e:.1f}%" for e in errors[where]])
            text += f" At exit {_join(exits[where])}, {reason.format(errors=shown)}."
    verdict = "holds" if report.error_within_p else "does not hold"
    return (
        f"{text} Overall BEEM-A errs {100 * report.policy_error:.1f}% against p = "
        f"{100 * report.p:.1f}%: the theorem's conclusion {verdict} on this test set."
    )


def _join(values: Any) -> str:
    items = [x if isinstance(x, str) else str(int(x)) for x in values]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _theorem_table(report: Any) -> str:
    head = (
        "<tr><th>exit</th><th>paper's i</th><th>q (%)</th><th>bound (%)</th>"
        "<th>samples leaving</th><th>their error (%)</th><th>q &lt; bound</th></tr>"
    )
    rows = []
    for j, i in enumerate(report.exit_number):
        error = report.measured_error[j]
        ok = bool(report.condition[j])
        rows.append(
            f"<tr><td>{int(i) - 1}</td><td>{int(i)}</td><td>{100 * report.q[j]:.1f}</td>"
            f"<td>{100 * report.bound[j]:.1f}</td><td>{int(report.n_exit[j])}</td>"
            f"<td>{'n/a' if np.isnan(error) else f'{100 * error:.1f}'}</td>"
            f"<td class='{'ok' if ok else 'no'}'>{'yes' if ok else 'no'}</td></tr>"
        )
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _separation_section(test: ExitData) -> str:
    import matplotlib.pyplot as plt

    from eeopt import plot

    fig, axes = plt.subplots(
        1,
        test.n_exits,
        figsize=(min(2.2 * test.n_exits, 13), 2.5),
        constrained_layout=True,
        squeeze=False,
    )
    plot.plot_score_separation(test, "maxprob", scale="log", axes=axes[0])
    reading = (
        "Max probability of the right (blue) and wrong (orange) answers at each exit, counted "
        "on a log scale so that the few wrong answers of the late exits show. The less the two "
        "overlap, the better a threshold on max probability picks who may leave."
    )
    return (
        "<h2>How well max probability separates right from wrong</h2>"
        + _reading(reading)
        + f"<figure>{_svg(fig)}<figcaption>Test samples, per exit.</figcaption></figure>"
    )
