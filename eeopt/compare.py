"""Fit several methods on validation data, evaluate on test data, tabulate."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from eeopt import _validation as v
from eeopt._progress import progress
from eeopt.data import ExitData, as_exit_data
from eeopt.exceptions import BudgetUnreachableError
from eeopt.methods import METHODS, fit, method_names

_COLUMNS = ("method", "budget", "accuracy", "mean_cost", "speedup", "exit_fractions")


@dataclass
class ComparisonTable:
    """One row per (method, budget): test accuracy, mean cost, speedup, exit fractions.

    ``rows`` is a list of dicts with the keys ``method``, ``budget`` (None for the method's
    default target), ``accuracy``, ``mean_cost``, ``speedup``, ``exit_fractions``, ``policy``
    (the fitted policy) and ``result`` (the test :class:`~eeopt.engine.EvaluationResult`).
    The first row is the final exit alone, for reference. A budget a method cannot reach on
    the validation data gives a row with ``accuracy`` None and ``note`` "budget below reach".
    """

    rows: list[dict[str, Any]]
    cost_units: str = ""

    def _cells(self) -> list[list[str]]:
        cells = []
        for row in self.rows:
            budget = "" if row["budget"] is None else f"{row['budget']:.6g}"
            if row["accuracy"] is None:
                cells.append([row["method"], budget, "n/a", "n/a", "n/a", row.get("note", "")])
                continue
            fractions = " ".join(f"{f:.3f}" for f in row["exit_fractions"])
            cells.append(
                [
                    row["method"],
                    budget,
                    f"{row['accuracy']:.4f}",
                    f"{row['mean_cost']:.6g}",
                    f"{row['speedup']:.3f}",
                    fractions,
                ]
            )
        return cells

    def __str__(self) -> str:
        header = list(_COLUMNS)
        cells = self._cells()
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
        return "\n".join(lines)

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """CSV text (exit fractions as space-separated numbers); written to ``path`` if given."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(_COLUMNS)
        writer.writerows(self._cells())
        return _maybe_write(buffer.getvalue(), path)

    def to_markdown(self, path: str | os.PathLike | None = None) -> str:
        lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in self._cells()]
        return _maybe_write("\n".join(lines) + "\n", path)

    def to_latex(self, path: str | os.PathLike | None = None) -> str:
        """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``)."""
        header = ["Method", "Budget", "Accuracy (\\%)", "Mean cost", "Speedup"]
        lines = ["\\begin{tabular}{llrrr}", "\\toprule", " & ".join(header) + " \\\\", "\\midrule"]
        for row in self.rows:
            budget = "--" if row["budget"] is None else f"{row['budget']:.4g}"
            if row["accuracy"] is None:
                lines.append(f"{row['method']} & {budget} & -- & -- & -- \\\\")
                continue
            lines.append(
                f"{row['method']} & {budget} & {100 * row['accuracy']:.2f} & "
                f"{row['mean_cost']:.4g} & {row['speedup']:.2f}$\\times$ \\\\"
            )
        lines += ["\\bottomrule", "\\end{tabular}"]
        return _maybe_write("\n".join(lines) + "\n", path)


def _maybe_write(text: str, path: str | os.PathLike | None) -> str:
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return text


def compare(
    val: ExitData | Any,
    test: ExitData | Any,
    methods: list[str] | None = None,
    budgets: Any = None,
    *,
    verbose: bool = True,
    options: dict[str, dict[str, Any]] | None = None,
) -> ComparisonTable:
    """Fit each method on ``val``, evaluate it on ``test``.

    Parameters
    ----------
    val, test : ExitData
        Validation (fitting) and test exits of the same model, with labels.
    methods : list of str, optional
        Default: every registered method.
    budgets : array-like, optional
        Mean-cost budgets. Every method is fitted to each budget; without budgets, methods use
        their default target and budget-only methods (``msdnet``, ``eenet``) are skipped.
    options : dict, optional
        Per-method extra options, e.g. ``{"eenet": {"random_state": 0}}``.
    verbose : bool, default=True

    Returns
    -------
    ComparisonTable

    Examples
    --------
    >>> import eeopt
    >>> val, test = eeopt.datasets.load_both("mnist1d")
    >>> table = eeopt.compare(val, test, ["maxprob", "msdnet"], [500_000], verbose=False)
    >>> print(table)  # doctest: +NORMALIZE_WHITESPACE
    method      budget  accuracy  mean_cost    speedup  exit_fractions
    ----------  ------  --------  -----------  -------  -----------------------------------------
    final-exit          0.9720    1.73824e+06  1.000    0.000 0.000 0.000 0.000 0.000 0.000 1.000
    maxprob     500000  0.9680    474376       3.664    0.120 0.297 0.437 0.089 0.025 0.014 0.018
    msdnet      500000  0.9527    513591       3.384    0.328 0.226 0.150 0.122 0.074 0.055 0.044
    >>> latex = table.to_latex()  # also to_csv(), to_markdown(), each with an optional path
    """
    val = as_exit_data(val, name="val")
    test = as_exit_data(test, name="test")
    for name, data in (("val", val), ("test", test)):
        data.require_labels(f"compare ({name})")
    if (val.n_exits, val.n_classes) != (test.n_exits, test.n_classes):
        raise ValueError(
            f"val and test must come from the same model: val has {val.n_exits} exits and "
            f"{val.n_classes} classes, test {test.n_exits} and {test.n_classes}."
        )
    methods = method_names() if methods is None else list(methods)
    for method in methods:
        if method not in METHODS:
            raise ValueError(
                f"unknown method {method!r} in methods; choose from {', '.join(method_names())}."
            )
    options = options or {}
    budget_list = (
        [None]
        if budgets is None
        else [v.check_budget(b, val.costs, "budgets") for b in np.ravel(budgets)]
    )
    final = test.correct[:, -1].mean()
    n_exits = test.n_exits
    rows = [
        {
            "method": "final-exit",
            "budget": None,
            "accuracy": float(final),
            "mean_cost": float(test.costs[-1]),
            "speedup": 1.0,
            "exit_fractions": np.eye(n_exits)[-1].tolist(),
            "policy": None,
            "result": None,
        }
    ]
    jobs = [
        (m, b) for m in methods for b in budget_list if not (b is None and METHODS[m].budget_only)
    ]
    for method, budget in progress(jobs, "compare", verbose):
        extra = {"verbose": False, **options.get(method, {})}
        if budget is not None:
            extra["budget"] = budget
        try:
            policy = fit(val, method=method, **extra)
        except BudgetUnreachableError:
            # A budget the method cannot reach is a finding, not a failure of the table.
            rows.append(
                {
                    "method": method,
                    "budget": budget,
                    "accuracy": None,
                    "mean_cost": None,
                    "speedup": None,
                    "exit_fractions": [],
                    "policy": None,
                    "result": None,
                    "note": "budget below reach",
                }
            )
            continue
        result = policy.evaluate(test)
        rows.append(
            {
                "method": method,
                "budget": budget,
                "accuracy": result.accuracy,
                "mean_cost": result.mean_cost,
                "speedup": result.speedup,
                "exit_fractions": result.exit_fractions.tolist(),
                "policy": policy,
                "result": result,
            }
        )
    return ComparisonTable(rows, str(test.metadata.get("cost_units", "")))
