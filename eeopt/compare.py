"""Compare methods over repeated calibration/test splits, with intervals and paired tests.

:func:`compare` fits every method at every budget on the calibration part of each split and
evaluates it on the test part. The fits are independent, so they run through joblib
(``n_jobs=``, scikit-learn's convention; any joblib backend, Dask's included). Every random
number (the splits, each fit's seed, the bootstrap) is drawn in the calling process from
``random_state``, so the same call gives the same table whatever runs it.

The result, :class:`ComparisonTable`, is one tidy row per run (method, budget, split) plus a
summary per method and budget: the mean over splits, a bootstrap interval, and a paired
bootstrap test against a reference (the final exit by default) over the same splits and
samples. ``table.pivot()`` gives the methods-by-budgets table papers print.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eeopt import _validation as v
from eeopt import resampling
from eeopt._progress import Progress
from eeopt.data import ExitData, as_exit_data
from eeopt.diagnostics import recall_accuracy, static_accuracy
from eeopt.engine import EvaluationResult, evaluate_exits
from eeopt.exceptions import BudgetUnreachableError
from eeopt.frontier import oracle_front
from eeopt.methods import METHODS, fit, method_names
from eeopt.pivot import Pivot, import_pandas
from eeopt.units import CostUnit, data_cost_unit

#: The row of the final exit alone; also the default reference of the paired test.
FINAL = "final-exit"

#: Columns of the tidy table (one row per run), in order.
RUN_COLUMNS = (
    "dataset",
    "method",
    "setting",
    "budget",
    "split",
    "random_state",
    "n_calibration",
    "n_test",
    "accuracy",
    "mean_cost",
    "speedup",
    "oracle_accuracy",
    "static_accuracy",
    "gap_closed",
    "recall_accuracy",
    "recall_ceiling",
    "exit_fractions",
    "note",
)

#: Columns of the summary (one row per dataset, method and setting), in order.
SUMMARY_COLUMNS = (
    "dataset",
    "method",
    "setting",
    "budget",
    "n_splits",
    "n_reached",
    "accuracy",
    "accuracy_low",
    "accuracy_high",
    "mean_cost",
    "mean_cost_low",
    "mean_cost_high",
    "speedup",
    "speedup_low",
    "speedup_high",
    "reference",
    "difference",
    "difference_low",
    "difference_high",
    "p_value",
    "gap_closed",
    "recall_accuracy",
    "recall_ceiling",
    "exit_fractions",
    "note",
)

#: Fit options compare sets itself.
_OWN_OPTIONS = {"verbose", "random_state", "budget", "target", "tolerance"}
#: Steps of the budget bisection that fits budget-only methods to an accuracy target.
_BISECTION_STEPS = 10


@dataclass(frozen=True)
class Setting:
    """What every method is fitted to in one column of a comparison.

    Attributes
    ----------
    label : str
        The column's name ("0.303" for a budget in MFLOPs, "25%" for a share of the final
        exit's cost, "default", "accuracy").
    budget : float or None
        The budget in the data's cost units.
    fraction : float or None
        The budget as a share of the final exit's cost, when it was given so.
    target : str or None
        ``"accuracy"``: the cheapest setting within ``tolerance`` of the final exit's
        accuracy on the calibration data.
    tolerance : float
    """

    label: str
    budget: float | None = None
    fraction: float | None = None
    target: str | None = None
    tolerance: float = 0.0

    def applies_to(self, method: str) -> bool:
        """Budget-only methods (msdnet, eenet) have no default target."""
        default = self.budget is None and self.target is None
        return not (default and METHODS[method].budget_only)


@dataclass
class _Dataset:
    """One dataset's splits: calibration indices into ``fit_source``, test into ``test_source``."""

    name: str
    fit_source: ExitData
    test_source: ExitData
    splits: list[resampling.Split]
    settings: list[Setting]
    pooled: bool
    unit: CostUnit


@dataclass
class ComparisonTable:
    """Runs and their summary: what :func:`compare` returns.

    Attributes
    ----------
    runs : list of dict
        One per (dataset, method, setting, split), keys :data:`RUN_COLUMNS` plus ``policy``
        (the fitted policy, None where the budget was out of reach), ``exit_index`` and
        ``correct`` (per test sample). ``accuracy`` is None where the method could not reach
        the budget on that split's calibration data (``note`` says so).
    summary : list of dict
        One per (dataset, method, setting), keys :data:`SUMMARY_COLUMNS`; the first of each
        dataset is the final exit alone. Means over splits; ``*_low``/``*_high`` the
        ``confidence`` bootstrap interval; ``difference`` the accuracy minus the reference's
        (same setting), with its interval and a two-sided ``p_value`` (paired bootstrap).
        A method that misses a budget on any split gets None and a note.
    reference : str
    confidence : float
    n_bootstrap : int
    datasets : dict
        Per dataset: ``costs``, ``cost_units``, ``n_splits``, ``n_calibration``, ``n_test``,
        ``pooled`` (re-split from pooled samples, or the given split), ``settings`` (column
        labels), ``setting_kind`` and ``splits``: the ``(calibration, test)`` index arrays of
        each split (into the pooled samples, val then test, or into val and test when the
        given split is used), to refit anything else on the same splits.
    """

    runs: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    reference: str = FINAL
    confidence: float = 0.95
    n_bootstrap: int = 1000
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The summary rows (the first is the final exit), as earlier versions named them."""
        return self.summary

    @property
    def cost_units(self) -> str:
        units = {d["cost_units"] for d in self.datasets.values()}
        return units.pop() if len(units) == 1 else ""

    @property
    def methods(self) -> list[str]:
        """Methods in table order (the final exit left out)."""
        return list(dict.fromkeys(r["method"] for r in self.summary if r["method"] != FINAL))

    def dataset_name(self, dataset: str | None = None) -> str:
        """The name of ``dataset``; None is the only one when the table holds one."""
        names = list(self.datasets)
        if dataset is None and len(names) == 1:
            return names[0]
        if dataset not in self.datasets:
            raise ValueError(f"dataset must be one of {names}, got {dataset!r}.")
        return dataset

    def settings(self, dataset: str | None = None) -> list[str]:
        """Setting labels (the columns of a pivot) of ``dataset``, in order."""
        name = self.dataset_name(dataset)
        rows = [r for r in self.summary if r["dataset"] == name and r["method"] != FINAL]
        return list(dict.fromkeys(r["setting"] for r in rows))

    def unit(self, dataset: str | None = None) -> CostUnit:
        info = self.datasets[self.dataset_name(dataset)]
        return data_cost_unit(info["costs"], {"cost_units": info["cost_units"]})

    def final(self, dataset: str | None = None) -> dict[str, Any]:
        """The summary row of the final exit alone."""
        name = self.dataset_name(dataset)
        return next(r for r in self.summary if r["dataset"] == name and r["method"] == FINAL)

    def pivot(self, metric: str = "accuracy", dataset: str | None = None) -> Pivot:
        """Methods by settings (budgets) of one summary metric, for one dataset.

        Parameters
        ----------
        metric : {"accuracy", "speedup", "mean_cost", "difference", "gap_closed",
            "recall_accuracy", "recall_ceiling"}, default="accuracy"
            ``accuracy``, ``speedup``, ``mean_cost`` and ``difference`` carry intervals;
            accuracy cells are marked † where the paired test against the reference rejects
            at level ``1 - confidence``.
        dataset : str, optional
            Needed when the table holds several datasets.
        """
        from eeopt.tables import summary_pivot

        return summary_pivot(self, metric, self.dataset_name(dataset))

    def __str__(self) -> str:
        blocks = []
        for name in self.datasets:
            blocks.append(self.describe(name))
            if self.settings(name):
                blocks += [str(self.pivot("accuracy", name)), str(self.pivot("speedup", name))]
        return "\n\n".join(blocks)

    def describe(self, dataset: str | None = None) -> str:
        """One sentence: the splits, the intervals, the reference, the final exit."""
        name = self.dataset_name(dataset)
        info, final, unit = self.datasets[name], self.final(name), self.unit(name)
        how = (
            f"{info['n_splits']} random splits of the pooled samples"
            if info["pooled"]
            else "the given calibration/test split"
        )
        return (
            f"{name}: fitted on {info['n_calibration']} and tested on {info['n_test']} samples, "
            f"{how}; {100 * self.confidence:g}% intervals from {self.n_bootstrap} paired "
            f"bootstrap resamples of splits and test samples. Final exit alone: "
            f"{100 * final['accuracy']:.1f}% at {unit.format(final['mean_cost'])}."
        )

    def to_csv(self, path: str | os.PathLike | None = None, *, level: str = "runs") -> str:
        """CSV of the runs (tidy, default) or of the ``level="summary"``; exit fractions as
        space-separated numbers; written to ``path`` if given."""
        records, columns = self._records(level)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({k: _csv_value(record[k]) for k in columns})
        return _maybe_write(buffer.getvalue(), path)

    def to_pandas(self, level: str = "runs") -> Any:
        """The runs (or ``level="summary"``) as a pandas DataFrame (needs pandas)."""
        records, columns = self._records(level)
        return import_pandas().DataFrame.from_records(
            [{k: r[k] for k in columns} for r in records], columns=list(columns)
        )

    def _records(self, level: str) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
        v.check_choice(level, "level", ("runs", "summary"))
        return (self.runs, RUN_COLUMNS) if level == "runs" else (self.summary, SUMMARY_COLUMNS)

    def to_markdown(
        self, path: str | os.PathLike | None = None, *, metric: str = "accuracy", dataset=None
    ) -> str:
        """The :meth:`pivot` of ``metric`` as Markdown (best per column in bold)."""
        return self.pivot(metric, dataset).to_markdown(path)

    def to_latex(
        self, path: str | os.PathLike | None = None, *, metric: str = "accuracy", dataset=None
    ) -> str:
        """The :meth:`pivot` of ``metric`` as a booktabs ``tabular`` (best per column in
        bold, intervals as ``$97.2 \\pm 0.3$``)."""
        return self.pivot(metric, dataset).to_latex(path)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, np.ndarray)):
        return " ".join(f"{x:.6g}" for x in value)
    if isinstance(value, float):
        return repr(value)
    return value


def _maybe_write(text: str, path: str | os.PathLike | None) -> str:
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return text


# -- the entry points -----------------------------------------------------------------------
def compare(
    data: Any,
    test: Any = None,
    methods: Sequence[str] | None = None,
    budgets: Any = None,
    *,
    cost_fractions: Any = None,
    target: str | None = None,
    tolerance: float = 0.0,
    n_splits: int = 1,
    calibration_size: int | float | None = None,
    reference: str = FINAL,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    random_state: int | None = 0,
    n_jobs: int | None = None,
    verbose: bool = True,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> ComparisonTable:
    """Fit each method on calibration samples and evaluate it on test samples, over splits.

    Two calling forms: ``compare(data_or_pair, methods, budgets=..., ...)`` and, as before,
    ``compare(val, test, methods, budgets)``.

    Parameters
    ----------
    data : ExitData or (val, test) pair of ExitData
        Exits with labels. **Splits**: one ExitData is pooled and re-split ``n_splits`` times
        at random (``calibration_size`` samples calibrate, the rest test). A (val, test) pair
        with ``n_splits=1`` is used as given (fit on val, test on test); with
        ``n_splits > 1`` the two are pooled and re-split, ``calibration_size`` defaulting to
        ``len(val)``.
    test : ExitData, optional
        The test set of the two-set form ``compare(val, test, ...)``. A method name or a list
        of them here is read as ``methods`` (the short form ``compare(data, methods)``).
    methods : list of str, optional
        Default: every registered method.
    budgets : array-like, optional
        Mean-cost budgets in the data's units; every method is fitted to each.
    cost_fractions : array-like, optional
        Budgets as shares of the final exit's cost (``[0.25, 0.5, 0.75, 1.0]``): the same
        columns for datasets of different costs.
    target : {"accuracy"}, optional
        Instead of budgets: the cheapest setting of each method whose calibration accuracy is
        within ``tolerance`` of the final exit's (budget-only methods: the smallest budget
        that reaches it, found by bisection to 1/1024 of the cost range).
        Without ``budgets``, ``cost_fractions`` or ``target``, each method uses its default
        target and budget-only methods (``msdnet``, ``eenet``) are skipped.
    tolerance : float, default=0.0
    n_splits : int, default=1
    calibration_size : int or float, optional
        Calibration samples per split: a count, or a share of the pooled samples in (0, 1).
        Default: half the samples (``len(val)`` for a pooled pair).
    reference : str, default="final-exit"
        The method every other is tested against (paired bootstrap, same setting).
    confidence : float, default=0.95
        Coverage of the intervals; the paired test's level is ``1 - confidence``.
    n_bootstrap : int, default=1000
        Resamples of the two-stage bootstrap (splits, then test samples within each).
    random_state : int or None, default=0
        Seeds the splits, every fit (each split's fits get their own seed, derived with
        :class:`numpy.random.SeedSequence`; EENet uses it) and the bootstrap: the same call
        gives the same table, whatever ``n_jobs`` or joblib backend.
    n_jobs : int, optional
        Fits run in parallel through joblib (None: 1 unless a ``joblib.parallel_config``
        says otherwise; -1: every core). ``with joblib.parallel_backend("dask"):`` runs them
        on a Dask cluster.
    verbose : bool, default=True
        One progress bar over all fits.
    options : dict, optional
        Per-method fit options, e.g. ``{"msdnet": {"score": "entropy"}}``; targets and
        ``random_state`` are compare's own.

    Returns
    -------
    ComparisonTable

    Examples
    --------
    >>> import eeopt
    >>> val, test = eeopt.datasets.load_both("mnist1d")
    >>> table = eeopt.compare(val, test, ["maxprob", "msdnet"], [500_000], verbose=False)
    >>> print(table.pivot())  # doctest: +NORMALIZE_WHITESPACE
    Test accuracy (%)
             Budget (MFLOPs)
    method          0.500
    -------  ------------
    maxprob  96.8 ± 0.6 *
    msdnet   95.3 ± 0.7 †
    Final exit alone: 97.2 ± 0.6% at 1.74 MFLOPs.
    Intervals: 95% paired bootstrap (1000 resamples, 1 split); ± gives the wider side.
    † differs from final-exit (paired bootstrap, p < 0.05).
    * best in its column
    >>> row = table.summary[1]  # maxprob; summary[0] is the final exit alone
    >>> print(f"{row['difference']:+.4f}, p = {row['p_value']:.3f}")
    -0.0040, p = 0.074
    >>> latex = table.to_latex()  # also to_markdown(), to_csv() (one row per run), to_pandas()
    """
    val, test_set, methods = _forms(data, test, methods)
    names, extra, confidence, n_bootstrap = _check_run(
        methods, options, reference, confidence, n_bootstrap
    )
    split_seq, bootstrap_seq = resampling.seed_sequences(random_state)
    dataset = _prepare(
        _name(val),
        val,
        test_set,
        n_splits,
        calibration_size,
        split_seq,
        budgets=budgets,
        cost_fractions=cost_fractions,
        target=target,
        tolerance=tolerance,
    )
    return _run(
        [dataset],
        names,
        extra,
        reference,
        confidence,
        n_bootstrap,
        bootstrap_seq,
        n_jobs=n_jobs,
        verbose=verbose,
    )


def compare_many(
    datasets: Mapping[str, Any],
    methods: Sequence[str] | None = None,
    *,
    budgets: Any = None,
    cost_fractions: Any = None,
    target: str | None = None,
    tolerance: float = 0.0,
    n_splits: int = 1,
    calibration_size: int | float | None = None,
    reference: str = FINAL,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    random_state: int | None = 0,
    n_jobs: int | None = None,
    verbose: bool = True,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> ComparisonTable:
    """:func:`compare` over several datasets in one pool of fits and one progress bar.

    Parameters
    ----------
    datasets : dict of name -> ExitData or (val, test) pair
        Each split as in :func:`compare`; budgets are usually given as ``cost_fractions``
        since datasets differ in cost. Dataset ``i`` (in the dict's order) draws its splits
        from the ``i``-th child of ``random_state``'s sequence.
    Other parameters are those of :func:`compare`.

    Returns
    -------
    ComparisonTable
        With a ``dataset`` column in the runs and the summary.
    """
    if not isinstance(datasets, Mapping) or not datasets:
        raise ValueError("datasets must be a non-empty dict of name -> ExitData or (val, test).")
    names, extra, confidence, n_bootstrap = _check_run(
        methods, options, reference, confidence, n_bootstrap
    )
    split_seq, bootstrap_seq = resampling.seed_sequences(random_state)
    prepared = []
    for (key, source), seq in zip(datasets.items(), split_seq.spawn(len(datasets)), strict=True):
        val, test_set, _ = _forms(source, None, names)
        prepared.append(
            _prepare(
                str(key),
                val,
                test_set,
                n_splits,
                calibration_size,
                seq,
                budgets=budgets,
                cost_fractions=cost_fractions,
                target=target,
                tolerance=tolerance,
            )
        )
    return _run(
        prepared,
        names,
        extra,
        reference,
        confidence,
        n_bootstrap,
        bootstrap_seq,
        n_jobs=n_jobs,
        verbose=verbose,
    )


# -- checking the input ---------------------------------------------------------------------
def _forms(data: Any, test: Any, methods: Any) -> tuple[ExitData, Any, Any]:
    """``(val_or_pool, test_or_None, methods)`` from the two calling forms."""
    if isinstance(test, str) or (
        isinstance(test, (list, tuple)) and test and all(isinstance(m, str) for m in test)
    ):
        if methods is not None:
            raise TypeError(
                "in the short form compare(data, methods, ...) pass budgets by keyword: "
                "compare(data, methods, budgets=[...])."
            )
        test, methods = None, [test] if isinstance(test, str) else list(test)
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], ExitData):
        if test is not None:
            raise ValueError("give the test set once: either data=(val, test) or test=.")
        data, test = data
    val = as_exit_data(data, name="data")
    val.require_labels("compare (data)")
    if test is not None:
        test = as_exit_data(test, name="test")
        test.require_labels("compare (test)")
        if (val.n_exits, val.n_classes) != (test.n_exits, test.n_classes):
            raise ValueError(
                f"val and test must come from the same model: val has {val.n_exits} exits and "
                f"{val.n_classes} classes, test {test.n_exits} and {test.n_classes}."
            )
    return val, test, methods


def _check_run(
    methods: Any, options: Any, reference: Any, confidence: Any, n_bootstrap: Any
) -> tuple[list[str], dict[str, dict[str, Any]], float, int]:
    """The checked ``(methods, options, confidence, n_bootstrap)`` of a comparison."""
    names = _check_methods(methods)
    extra = _check_options(options, names)
    if reference != FINAL and reference not in names:
        raise ValueError(
            f"reference must be {FINAL!r} or one of methods ({', '.join(names)}); "
            f"got {reference!r}."
        )
    confidence = v.check_fraction(confidence, "confidence")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), e.g. 0.95; got {confidence:g}.")
    return names, extra, confidence, v.check_positive_int(n_bootstrap, "n_bootstrap")


def _check_methods(methods: Any) -> list[str]:
    if isinstance(methods, str):
        methods = [methods]
    names = method_names() if methods is None else list(methods)
    if not names:
        raise ValueError("methods must name at least one method, e.g. ['maxprob'].")
    for method in names:
        if method not in METHODS:
            raise ValueError(
                f"unknown method {method!r} in methods; choose from {', '.join(method_names())}."
            )
    if len(set(names)) != len(names):
        raise ValueError(f"methods must not repeat a name, got {names}.")
    return names


def _check_options(options: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    options = {} if options is None else options
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict of method -> dict, got {type(options).__name__}.")
    out = {}
    for method, extra in options.items():
        if method not in names:
            raise ValueError(f"options names {method!r}, which is not among methods {names}.")
        own = sorted(set(extra) & _OWN_OPTIONS)
        if own:
            raise ValueError(
                f"options[{method!r}] sets {', '.join(own)}: compare sets these itself (budgets=, "
                "target=, and a seed per split from random_state=); remove them."
            )
        v.check_options(method, extra, METHODS[method].option_names - _OWN_OPTIONS)
        out[method] = dict(extra)
    return out


def _name(data: ExitData) -> str:
    return str(data.metadata.get("name") or "data")


# -- planning the splits and settings -------------------------------------------------------
def _prepare(
    name: str,
    val: ExitData,
    test: ExitData | None,
    n_splits: int,
    calibration_size: Any,
    seq: np.random.SeedSequence,
    **targets: Any,
) -> _Dataset:
    n_splits = v.check_positive_int(n_splits, "n_splits")
    settings = _settings(val.costs, _unit(val), **targets)
    if test is not None and n_splits == 1:
        if calibration_size is not None:
            raise ValueError(
                "calibration_size applies to re-splits; with a (val, test) pair and n_splits=1 "
                "the given split is used. Leave calibration_size out, or set n_splits > 1."
            )
        (split_seq,) = seq.spawn(1)
        (seed_seq,) = split_seq.spawn(1)
        split = resampling.Split(
            np.arange(val.n_samples), np.arange(test.n_samples), resampling.fit_seed(seed_seq)
        )
        return _Dataset(name, _bare(val), _bare(test), [split], settings, False, _unit(test))
    pool = _bare(val) if test is None else _pool(val, test)
    size = _calibration_size(calibration_size, pool.n_samples, val.n_samples if test else None)
    splits = resampling.random_splits(pool.n_samples, size, n_splits, seq)
    return _Dataset(name, pool, pool, splits, settings, True, _unit(pool))


def _bare(data: ExitData) -> ExitData:
    """The same arrays without the cached scores: what every parallel task receives (joblib
    memory-maps the large probability array once; cached arrays would be pickled per task).
    Score-only data keep their predictions and confidence, which are all they hold."""
    if not data.has_probs:
        return data.subset(slice(None))
    return ExitData(data.probs, data.labels, data.costs, metadata=data.metadata, validate=False)


def _unit(data: ExitData) -> CostUnit:
    return data_cost_unit(data.costs, data.metadata)


def _pool(val: ExitData, test: ExitData) -> ExitData:
    if not np.array_equal(val.costs, test.costs):
        raise ValueError(
            "val and test have different costs; pooling them for n_splits > 1 needs one cost "
            "vector: pass test.with_costs(val.costs) (or n_splits=1 for the given split)."
        )
    labels = np.concatenate([val.labels, test.labels])
    if not (val.has_probs and test.has_probs):  # score-only data pool what they hold
        name = val.confidence_name
        if name != test.confidence_name:
            raise ValueError(
                f"val holds confidence {name!r} and test {test.confidence_name!r}; pooling "
                f"them needs the same score: load both with the same confidence."
            )
        return ExitData.from_predictions(
            np.concatenate([val.predictions, test.predictions]),
            None if name is None else np.concatenate([val.score(name), test.score(name)]),
            labels,
            val.costs,
            n_classes=val.n_classes,
            confidence_name=name or "maxprob",
            metadata=dict(val.metadata),
        )
    probs = np.concatenate([val.probs, test.probs])
    probs.flags.writeable = False
    return ExitData(probs, labels, val.costs, metadata=dict(val.metadata), validate=False)


def _calibration_size(size: Any, n_pool: int, default: int | None) -> int:
    if size is None:
        size = default if default is not None else n_pool // 2
    elif isinstance(size, float) and not isinstance(size, bool):
        if not 0 < size < 1:
            raise ValueError(f"calibration_size as a share must lie in (0, 1), got {size:g}.")
        size = int(round(size * n_pool))
    else:
        size = v.check_positive_int(size, "calibration_size")
    if not 1 <= size <= n_pool - 1:
        raise ValueError(
            f"calibration_size must leave samples on both sides: 1 .. {n_pool - 1} of the "
            f"{n_pool} pooled samples, got {size}."
        )
    return int(size)


def _settings(
    costs: np.ndarray,
    unit: CostUnit,
    *,
    budgets: Any,
    cost_fractions: Any,
    target: str | None,
    tolerance: float,
) -> list[Setting]:
    given = [
        n
        for n, x in (("budgets", budgets), ("cost_fractions", cost_fractions), ("target", target))
        if x is not None
    ]
    if len(given) > 1:
        raise ValueError(f"give at most one of budgets=, cost_fractions=, target=; got {given}.")
    if target is not None:
        v.check_choice(target, "target", ("accuracy",))
        tol = v.check_fraction(tolerance, "tolerance")
        return [Setting("accuracy", target="accuracy", tolerance=tol)]
    if cost_fractions is not None:
        return [_fraction_setting(f, costs) for f in np.ravel(cost_fractions)]
    if budgets is None:
        return [Setting("default")]
    values = [v.check_budget(b, costs, "budgets") for b in np.ravel(budgets)]
    if len(set(values)) != len(values):
        raise ValueError(f"budgets must not repeat a value, got {values}.")
    return [
        Setting(label, budget=b) for label, b in zip(_labels(values, unit), values, strict=True)
    ]


def _fraction_setting(fraction: Any, costs: np.ndarray) -> Setting:
    f = v.check_fraction(fraction, "cost_fractions")
    budget = f * float(costs[-1])
    if budget < costs[0]:
        raise ValueError(
            f"cost_fractions {f:g} gives a budget of {budget:g}, below the first exit's cost "
            f"{costs[0]:g}; use shares >= {costs[0] / costs[-1]:.3g}."
        )
    return Setting(f"{100 * f:g}%", budget=budget, fraction=f)


def _labels(budgets: list[float], unit: CostUnit) -> list[str]:
    """Budget labels in ``unit`` with as many digits as it takes to tell them apart."""
    for digits in range(3, 10):
        labels = [unit.number(b, digits) for b in budgets]
        if len(set(labels)) == len(labels):
            return labels
    return [repr(b) for b in budgets]


# -- running the fits -----------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    dataset: int
    split: int
    method: str
    setting: int


def _run(
    datasets: list[_Dataset],
    methods: list[str],
    options: dict[str, dict[str, Any]],
    reference: str,
    confidence: float,
    n_bootstrap: int,
    bootstrap_seq: np.random.SeedSequence,
    *,
    n_jobs: int | None,
    verbose: bool,
) -> ComparisonTable:
    from joblib import Parallel, delayed

    jobs = [
        _Job(d, s, m, k)
        for d, dataset in enumerate(datasets)
        for m in methods
        for k, setting in enumerate(dataset.settings)
        if setting.applies_to(m)
        for s in range(len(dataset.splits))
    ]
    calls = (
        delayed(run_one)(
            datasets[job.dataset].fit_source,
            datasets[job.dataset].test_source,
            datasets[job.dataset].splits[job.split],
            job.method,
            datasets[job.dataset].settings[job.setting],
            options.get(job.method, {}),
        )
        for job in jobs
    )
    runs = []
    with Progress(len(jobs), "compare", verbose) as bar:
        for job, run in zip(
            jobs, Parallel(n_jobs=n_jobs, return_as="generator")(calls), strict=True
        ):
            dataset = datasets[job.dataset]
            runs.append({"dataset": dataset.name, "split": job.split, **run})
            bar.update()
    summary = []
    for d, (dataset, seq) in enumerate(
        zip(datasets, bootstrap_seq.spawn(len(datasets)), strict=True)
    ):
        finals = [_final_run(dataset, s) for s in range(len(dataset.splits))]
        mine = [r for r, job in zip(runs, jobs, strict=True) if job.dataset == d]
        summary += _summarise(dataset, finals, mine, reference, confidence, n_bootstrap, seq)
    info = {d.name: _info(d) for d in datasets}
    return ComparisonTable(runs, summary, reference, confidence, n_bootstrap, info)


def _info(dataset: _Dataset) -> dict[str, Any]:
    split = dataset.splits[0]
    return {
        "costs": dataset.test_source.costs.tolist(),
        "cost_units": str(dataset.test_source.metadata.get("cost_units", "")),
        "n_splits": len(dataset.splits),
        "n_calibration": int(split.calibration.size),
        "n_test": int(split.test.size),
        "pooled": dataset.pooled,
        "settings": [s.label for s in dataset.settings],
        "setting_kind": _setting_kind(dataset.settings[0]),
        "splits": [(s.calibration, s.test) for s in dataset.splits],
    }


def _setting_kind(setting: Setting) -> str:
    """What the columns are: "budget", "fraction", "accuracy" (target) or "default"."""
    if setting.target is not None:
        return "accuracy"
    if setting.fraction is not None:
        return "fraction"
    return "default" if setting.budget is None else "budget"


def _take(source: ExitData, indices: np.ndarray) -> ExitData:
    if indices.size == source.n_samples:  # sorted and unique: every sample, in order
        return source
    return source.subset(indices)


def run_one(
    fit_source: ExitData,
    test_source: ExitData,
    split: resampling.Split,
    method: str,
    setting: Setting,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Fit ``method`` to ``setting`` on a split's calibration samples, evaluate on its test
    samples: one run of :func:`compare` (a joblib task; public so that workers import it)."""
    calibration = _take(fit_source, split.calibration)
    test = _take(test_source, split.test)
    run: dict[str, Any] = {
        "method": method,
        "setting": setting.label,
        "budget": setting.budget,
        "random_state": split.fit_seed,
        "n_calibration": calibration.n_samples,
        "n_test": test.n_samples,
    }
    try:
        policy = _fit(calibration, method, setting, options, split.fit_seed)
    except BudgetUnreachableError:
        # A budget the method cannot reach is a finding, not a failure of the table.
        return {
            **run,
            **dict.fromkeys(RUN_COLUMNS[8:], None),
            "exit_fractions": [],
            "note": "budget below reach",
            "policy": None,
            "exit_index": None,
            "correct": None,
        }
    return {**run, **_measure(test, policy.evaluate(test)), "policy": policy}


def _fit(data: ExitData, method: str, setting: Setting, options: dict, seed: int) -> Any:
    common = {"verbose": False, "random_state": seed, **options}
    if setting.budget is not None:
        return fit(data, method=method, budget=setting.budget, **common)
    if setting.target is None:
        return fit(data, method=method, **common)
    if not METHODS[method].budget_only:
        return fit(data, method=method, target="accuracy", tolerance=setting.tolerance, **common)
    return _fit_budget_to_accuracy(data, method, setting.tolerance, common)


def _fit_budget_to_accuracy(data: ExitData, method: str, tolerance: float, common: dict) -> Any:
    """The cheapest budget (bisection, ``_BISECTION_STEPS`` halvings) whose fitted policy
    reaches the final exit's accuracy minus ``tolerance`` on ``data``."""
    goal = float(data.exit_accuracy[-1]) - tolerance
    low, high = float(data.costs[0]), float(data.costs[-1])
    best = fit(data, method=method, budget=high, **common)
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        try:
            policy = fit(data, method=method, budget=middle, **common)
        except BudgetUnreachableError:
            low = middle
            continue
        if policy.evaluate(data).accuracy >= goal:
            best, high = policy, middle
        else:
            low = middle
    return best


def _measure(test: ExitData, result: EvaluationResult) -> dict[str, Any]:
    """The run's metrics, the oracle and static baselines at its cost, recall."""
    accuracy, mean_cost, exit_index = result.accuracy, result.mean_cost, result.exit_index
    oracle = oracle_front(test).accuracy_at(mean_cost)
    static = float(static_accuracy(test.costs, test.exit_accuracy, mean_cost))
    gap = oracle - static
    _, with_recall, ceiling = recall_accuracy(test, exit_index)
    return {
        "accuracy": accuracy,
        "mean_cost": mean_cost,
        "speedup": result.speedup,
        "oracle_accuracy": oracle,
        "static_accuracy": static,
        "gap_closed": (accuracy - static) / gap if gap > 0 else None,
        "recall_accuracy": with_recall,
        "recall_ceiling": ceiling,
        "exit_fractions": result.exit_fractions.tolist(),
        "note": "",
        "exit_index": exit_index,
        "correct": result.predictions == test.labels,
    }


def _final_run(dataset: _Dataset, s: int) -> dict[str, Any]:
    test = _take(dataset.test_source, dataset.splits[s].test)
    exit_index = np.full(test.n_samples, test.n_exits - 1)
    result = evaluate_exits(exit_index, test.predictions, test.labels, test.costs)
    return {"method": FINAL, "setting": "", "budget": None, **_measure(test, result)}


# -- summarising ----------------------------------------------------------------------------
def _summarise(
    dataset: _Dataset,
    finals: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    reference: str,
    confidence: float,
    n_bootstrap: int,
    seq: np.random.SeedSequence,
) -> list[dict[str, Any]]:
    """One summary row per (method, setting): means over splits, bootstrap intervals and the
    paired test against the reference, all from one set of bootstrap draws."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {(FINAL, ""): finals}
    for run in runs:
        groups.setdefault((run["method"], run["setting"]), []).append(run)
    complete = [k for k, g in groups.items() if all(r["accuracy"] is not None for r in g)]
    stats = _bootstrap(dataset, [groups[k] for k in complete], n_bootstrap, confidence, seq)
    column = {key: i for i, key in enumerate(complete)}
    rows = []
    for key, group in groups.items():
        row = _summary_row(dataset, key, group)
        if key in column:
            ref = column.get((FINAL, "") if reference == FINAL else (reference, key[1]))
            row.update(stats.row(column[key], ref, reference))
        rows.append(row)
    return rows


def _summary_row(dataset: _Dataset, key: tuple[str, str], group: list[dict]) -> dict[str, Any]:
    missed = sum(r["accuracy"] is None for r in group)
    row = dict.fromkeys(SUMMARY_COLUMNS)
    row.update(
        dataset=dataset.name,
        method=key[0],
        setting=key[1],
        budget=group[0]["budget"],
        n_splits=len(dataset.splits),
        n_reached=len(group) - missed,
        exit_fractions=[],
        note=f"budget below reach in {missed} of {len(group)} splits" if missed else "",
    )
    if missed:
        return row
    for name in ("gap_closed", "recall_accuracy", "recall_ceiling"):
        values = [np.nan if r[name] is None else r[name] for r in group]
        row[name] = None if np.isnan(values).all() else float(np.nanmean(values))
    row["exit_fractions"] = np.mean([r["exit_fractions"] for r in group], axis=0).tolist()
    return row


@dataclass
class _Stats:
    """Observed means and bootstrap replicates of accuracy and mean cost, one column per
    complete (method, setting)."""

    accuracy: np.ndarray  # (n_columns,)
    cost: np.ndarray
    accuracy_replicates: np.ndarray  # (n_bootstrap, n_columns)
    cost_replicates: np.ndarray
    confidence: float
    final_cost: float

    def row(self, i: int, ref: int | None, reference: str) -> dict[str, Any]:
        low, high = resampling.percentile_interval(self.accuracy_replicates[:, i], self.confidence)
        cost_low, cost_high = resampling.percentile_interval(
            self.cost_replicates[:, i], self.confidence
        )
        out = {
            "accuracy": float(self.accuracy[i]),
            "accuracy_low": float(low),
            "accuracy_high": float(high),
            "mean_cost": float(self.cost[i]),
            "mean_cost_low": float(cost_low),
            "mean_cost_high": float(cost_high),
            "speedup": self.final_cost / float(self.cost[i]),
            "speedup_low": self.final_cost / float(cost_high),
            "speedup_high": self.final_cost / float(cost_low),
            "reference": reference,
        }
        if ref is not None:
            observed = float(self.accuracy[i] - self.accuracy[ref])
            differences = self.accuracy_replicates[:, i] - self.accuracy_replicates[:, ref]
            d_low, d_high = resampling.percentile_interval(differences, self.confidence)
            p = resampling.paired_p_value(differences[:, None], np.array([observed]))[0]
            out.update(
                difference=observed,
                difference_low=float(d_low),
                difference_high=float(d_high),
                p_value=float(p),
            )
        return out


def _bootstrap(
    dataset: _Dataset,
    groups: list[list[dict[str, Any]]],
    n_bootstrap: int,
    confidence: float,
    seq: np.random.SeedSequence,
) -> _Stats:
    costs = dataset.test_source.costs
    # (n_splits, n_test, n_columns): right or wrong, and the cost, of every test sample.
    correct = np.stack([np.stack([r["correct"] for r in g]) for g in groups], axis=-1)
    cost = np.stack([np.stack([costs[r["exit_index"]] for r in g]) for g in groups], axis=-1)
    replicates = resampling.split_bootstrap(
        np.concatenate([correct.astype(np.float64), cost], axis=-1),
        n_bootstrap,
        np.random.default_rng(seq),
    )
    n = len(groups)
    return _Stats(
        accuracy=np.array([np.mean([r["accuracy"] for r in g]) for g in groups]),
        cost=np.array([np.mean([r["mean_cost"] for r in g]) for g in groups]),
        accuracy_replicates=replicates[:, :n],
        cost_replicates=replicates[:, n:],
        confidence=confidence,
        final_cost=float(costs[-1]),
    )
