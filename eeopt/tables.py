"""The tables early-exit papers print, one call each: a pivot of methods by budgets.

- :func:`accuracy_at_cost`: accuracy at 25/50/75/100% of the full model's cost (the convention
  of Zero Time Waste and the early-exit calibration papers);
- :func:`speedup_at_accuracy`: speedup at the final exit's accuracy (BEEM's convention);
- :func:`accuracy_at_budgets`: accuracy at given budgets (EENet's and MSDNet's).

Each runs :func:`eeopt.compare` (so it takes the same ``n_splits=``, ``random_state=``,
``n_jobs=``, ... keywords) and returns a :class:`~eeopt.pivot.Pivot` with the comparison in
its ``source`` attribute: ``print`` it, or write it with ``to_latex()`` / ``to_markdown()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from eeopt.compare import FINAL, ComparisonTable, compare
from eeopt.pivot import Pivot

#: Summary metric -> (summary key, pivot kind, has an interval, title).
METRICS: dict[str, tuple[str, str, bool, str]] = {
    "accuracy": ("accuracy", "accuracy", True, "Test accuracy (%)"),
    "speedup": ("speedup", "speedup", True, "Speedup over the final exit"),
    "mean_cost": ("mean_cost", "cost", True, "Mean cost per sample"),
    "difference": ("difference", "difference", True, "Accuracy minus the reference's (points)"),
    "gap_closed": (
        "gap_closed",
        "share",
        False,
        "Share of the gap from a static exit mix to the oracle closed (%)",
    ),
    "recall_accuracy": (
        "recall_accuracy",
        "accuracy",
        False,
        "Accuracy answering with the most confident exit passed (%)",
    ),
    "recall_ceiling": (
        "recall_ceiling",
        "accuracy",
        False,
        "Recall ceiling: some exit passed is right (%)",
    ),
}


def accuracy_at_cost(
    data: Any,
    test: Any = None,
    methods: Sequence[str] | None = None,
    *,
    fractions: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
    **compare_options: Any,
) -> Pivot:
    """Test accuracy of each method at shares of the final exit's cost.

    Parameters
    ----------
    data, test, methods
        As in :func:`eeopt.compare` (``accuracy_at_cost(val, test, methods)`` or
        ``accuracy_at_cost(data, methods)``).
    fractions : sequence of float, default=(0.25, 0.5, 0.75, 1.0)
        Budgets as shares of the final exit's cost.
    **compare_options
        Passed on to :func:`eeopt.compare` (``n_splits``, ``random_state``, ``n_jobs``, ...).

    Returns
    -------
    Pivot
        Methods by shares; ``.source`` is the :class:`~eeopt.ComparisonTable`.

    Examples
    --------
    >>> import eeopt
    >>> from eeopt.tables import accuracy_at_cost
    >>> val, test = eeopt.datasets.load_both("mnist1d")
    >>> table = accuracy_at_cost(val, test, ["maxprob", "msdnet"], verbose=False)
    >>> table.columns
    ['25%', '50%', '75%', '100%']
    >>> latex = table.to_latex()
    """
    table = compare(data, test, methods=methods, cost_fractions=list(fractions), **compare_options)
    return _with_source(table.pivot("accuracy"), table)


def accuracy_at_budgets(
    data: Any,
    test: Any = None,
    methods: Sequence[str] | None = None,
    *,
    budgets: Any,
    **compare_options: Any,
) -> Pivot:
    """Test accuracy of each method at the given mean-cost budgets (data's units).

    Returns
    -------
    Pivot
        Methods by budgets (in engineering units); ``.source`` is the comparison.
    """
    table = compare(data, test, methods=methods, budgets=budgets, **compare_options)
    return _with_source(table.pivot("accuracy"), table)


def speedup_at_accuracy(
    data: Any,
    test: Any = None,
    methods: Sequence[str] | None = None,
    *,
    tolerance: float = 0.0,
    **compare_options: Any,
) -> Pivot:
    """Test accuracy and speedup of each method fitted to keep the final exit's accuracy.

    Each method takes its cheapest setting whose calibration accuracy is within
    ``tolerance`` of the final exit's (BEEM's table); budget-only methods take the smallest
    budget that reaches it (bisection over the cost range).

    Returns
    -------
    Pivot
        Methods by ``["accuracy", "speedup"]``; ``.source`` is the comparison.
    """
    table = compare(
        data, test, methods=methods, target="accuracy", tolerance=tolerance, **compare_options
    )
    accuracy = table.pivot("accuracy")
    speedup = table.pivot("speedup")
    pivot = Pivot(
        rows=accuracy.rows,
        columns=["accuracy (%)", "speedup"],
        mean=np.hstack([accuracy.mean, speedup.mean]),
        low=np.hstack([accuracy.low, speedup.low]),
        high=np.hstack([accuracy.high, speedup.high]),
        kinds=["accuracy", "speedup"],
        title=f"At the final exit's accuracy (tolerance {100 * tolerance:g} points)",
        notes=accuracy.notes,
        marks=np.hstack([accuracy.marks, np.full(speedup.mean.shape, "", dtype=object)]),
    )
    return _with_source(pivot, table)


def _with_source(pivot: Pivot, table: ComparisonTable) -> Pivot:
    pivot.source = table
    return pivot


def summary_pivot(table: ComparisonTable, metric: str, dataset: str) -> Pivot:
    """Methods by settings of one summary ``metric`` (one of :data:`METRICS`) of ``dataset``;
    what :meth:`ComparisonTable.pivot` returns."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}.")
    key, kind, has_interval, title = METRICS[metric]
    rows = [r for r in table.summary if r["dataset"] == dataset and r["method"] != FINAL]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    settings = table.settings(dataset)
    shape = (len(methods), len(settings))
    mean, low, high = (np.full(shape, np.nan) for _ in range(3))
    marks = np.full(shape, "", dtype=object)
    level = 1 - table.confidence
    for r in rows:
        i, j = methods.index(r["method"]), settings.index(r["setting"])
        mean[i, j] = _number(r[key])
        if has_interval:
            low[i, j], high[i, j] = _number(r[f"{key}_low"]), _number(r[f"{key}_high"])
        significant = r["p_value"] is not None and r["p_value"] < level
        if metric == "accuracy" and r["method"] != table.reference and significant:
            marks[i, j] = "†"
    return Pivot(
        rows=methods,
        columns=settings,
        mean=mean,
        low=low if has_interval else None,
        high=high if has_interval else None,
        kinds=[kind] * len(settings),
        title=title,
        column_title=_column_title(table, dataset),
        notes=_notes(table, dataset, rows, marks, has_interval),
        marks=marks,
        cost_unit=table.unit(dataset),
    )


def _number(x: Any) -> float:
    return np.nan if x is None else float(x)


def _column_title(table: ComparisonTable, dataset: str) -> str:
    kind = table.datasets[dataset]["setting_kind"]
    if kind == "budget":
        label = table.unit(dataset).label
        return f"Budget ({label})" if label else "Budget"
    if kind == "fraction":
        return "Budget (share of the final exit's cost)"
    return "Target" if kind == "default" else ""


def _notes(
    table: ComparisonTable, dataset: str, rows: list[dict], marks: np.ndarray, intervals: bool
) -> list[str]:
    final, unit, info = table.final(dataset), table.unit(dataset), table.datasets[dataset]
    spread = max(
        final["accuracy"] - final["accuracy_low"], final["accuracy_high"] - final["accuracy"]
    )
    splits = f"{info['n_splits']} split{'s' if info['n_splits'] > 1 else ''}"
    notes = [
        f"Final exit alone: {100 * final['accuracy']:.1f} ± {100 * spread:.1f}% at "
        f"{unit.format(final['mean_cost'])}.",
        f"Intervals: {100 * table.confidence:g}% paired bootstrap ({table.n_bootstrap} "
        f"resamples, {splits}); ± gives the wider side."
        if intervals
        else f"Means over {splits}.",
    ]
    if (marks == "†").any():
        notes.append(
            f"† differs from {table.reference} (paired bootstrap, p < {1 - table.confidence:.2g})."
        )
    missed = sorted({r["method"] for r in rows if r["accuracy"] is None})
    if missed:
        notes.append(f"n/a: budget below the method's reach on some split ({', '.join(missed)}).")
    return notes
