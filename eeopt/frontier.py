"""Pareto fronts of methods and the oracle (spec section 9)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eeopt import _validation as v
from eeopt._progress import progress
from eeopt.data import as_exit_data
from eeopt.exceptions import BudgetUnreachableError
from eeopt.methods import METHODS, fit, method_names
from eeopt.methods._registry import SWEEPS

#: Options that set a target; a front sweeps the target itself, so these are not accepted.
_TARGET_OPTIONS = {"budget", "target", "tolerance", "threshold", "patience", "q", "alpha"}


@dataclass
class Front:
    """Non-dominated (mean cost, accuracy) points of a method on one data set.

    Attributes
    ----------
    method : str
    costs : ndarray of shape (n_points,)
        Mean cost per sample, increasing.
    accuracies : ndarray of shape (n_points,)
        Accuracy at each point, strictly increasing.
    parameters : ndarray of shape (n_points,)
        The setting that gives each point (``parameter_name``: a threshold, a patience, a
        budget, ...); passing it to :func:`eeopt.fit` reproduces the point.
    parameter_name : str
    options : dict
        The method options the front was computed with.
    """

    method: str
    costs: np.ndarray
    accuracies: np.ndarray
    parameters: np.ndarray
    parameter_name: str
    options: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.costs.shape[0]

    def accuracy_at(self, budget: float) -> float:
        """Best accuracy on the front with mean cost <= budget (NaN if none)."""
        within = self.costs <= budget
        return float(self.accuracies[within].max()) if within.any() else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "parameter_name": self.parameter_name,
            "costs": self.costs.tolist(),
            "accuracies": self.accuracies.tolist(),
            "parameters": [float(x) for x in self.parameters],
        }

    def __repr__(self) -> str:
        return (
            f"Front(method={self.method!r}, n_points={len(self)}, "
            f"costs=[{self.costs.min():.4g} .. {self.costs.max():.4g}], "
            f"accuracies=[{self.accuracies.min():.4f} .. {self.accuracies.max():.4f}])"
        )


def non_dominated(costs: np.ndarray, accuracies: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (cheaper or equal and more accurate).

    Returned in increasing cost; among equal points the first is kept.
    """
    order = np.lexsort((-accuracies, costs))  # by cost, then most accurate first
    best_so_far = np.maximum.accumulate(accuracies[order])
    previous_best = np.r_[-np.inf, best_so_far[:-1]]
    return order[accuracies[order] > previous_best]


def pareto_front(
    logits: Any,
    labels: Any = None,
    costs: Any = None,
    method: str = "maxprob",
    *,
    budgets: Any = None,
    n_budgets: int = 25,
    input: str = "auto",
    verbose: bool = True,
    **options: Any,
) -> Front:
    """The exact accuracy/cost front of a method on the given (fitting) data.

    Methods with an exact sweep (the threshold baselines, patience, BEEM's error level) are
    evaluated at every parameter value that changes an exit decision; budgeted methods
    (``msdnet``, ``eenet``) are fitted at each of ``budgets``. Dominated points are dropped.

    Parameters
    ----------
    logits : ExitData or array-like of shape (n_samples, n_exits, n_classes)
    labels : array-like of shape (n_samples,), optional if ``logits`` is an ExitData
    costs : array-like of shape (n_exits,), optional
    method : str, default="maxprob"
    budgets : array-like, optional
        Budgets for budgeted methods; default ``n_budgets`` evenly spaced over
        ``[costs[0], costs[-1]]``.
    verbose : bool, default=True
        Progress bar for budget sweeps and for BEEM's level sweep.
    **options
        Method options other than targets (``score=``, ``weights=``, ...).

    Returns
    -------
    Front

    Examples
    --------
    >>> import eeopt
    >>> val = eeopt.datasets.load("mnist1d", "val")
    >>> front = eeopt.pareto_front(val, method="maxprob")
    >>> front.parameter_name, len(front) > 100       # every decision-changing threshold
    ('threshold', True)
    >>> policy = eeopt.fit(val, method="maxprob", threshold=float(front.parameters[50]))
    >>> bool(policy.evaluate(val).accuracy == front.accuracies[50])
    True
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(method_names())}.")
    targets = sorted(set(options) & _TARGET_OPTIONS)
    if targets:
        raise ValueError(
            f"pareto_front sweeps the target itself; remove {', '.join(targets)} from the options."
        )
    v.check_options(method, options, METHODS[method].options - _TARGET_OPTIONS)
    data = as_exit_data(logits, labels, costs, input=input)
    data.require_labels("a Pareto front")
    if method in SWEEPS:
        spec = SWEEPS[method]
        sweep = spec.fn(data, method, verbose=verbose, **options)
        keep = non_dominated(sweep.mean_costs, sweep.accuracies)
        return Front(
            method,
            sweep.mean_costs[keep],
            sweep.accuracies[keep],
            sweep.parameters[keep],
            spec.parameter,
            dict(options),
        )
    if budgets is None:
        n_budgets = v.check_positive_int(n_budgets, "n_budgets", minimum=2)
        budgets = np.linspace(data.costs[0], data.costs[-1], n_budgets)
    budgets = np.array([v.check_budget(b, data.costs, "budgets") for b in np.ravel(budgets)])
    points = []
    for budget in progress(budgets, f"front {method}", verbose):
        policy = fit(data, method=method, budget=float(budget), verbose=False, **options)
        result = policy.evaluate(data)
        points.append((result.mean_cost, result.accuracy))
    point_costs, point_accuracies = (np.array(x) for x in zip(*points, strict=True))
    keep = non_dominated(point_costs, point_accuracies)
    return Front(
        method, point_costs[keep], point_accuracies[keep], budgets[keep], "budget", dict(options)
    )


def oracle_front(
    logits: Any, labels: Any = None, costs: Any = None, *, input: str = "auto"
) -> Front:
    """The best accuracy any per-sample exit assignment reaches at each mean cost.

    The oracle knows the labels. Starting from every sample at the first exit, a sample that
    some exit gets right gains 1 correct answer for ``costs[first correct] - costs[0]``; with
    unit gains, taking the cheapest gains first is optimal for every budget (a fractional
    knapsack whose greedy order is exact). The last point is the oracle itself: every sample at
    its earliest correct exit, accuracy = share of samples with any correct exit. No policy
    can beat this front on the same data.

    It is also the oracle **with recall** (T-Tamer, 2025: a sample may answer with any exit it
    has already passed): stopping at exit k to answer with an earlier exit j pays
    ``costs[k] >= costs[j]`` for an answer that was already there at j, so with the labels
    known the earliest right exit is the cheapest right answer with or without recall, and the
    two fronts coincide (a brute force over every stop-and-answer choice checks this in the
    tests). Recall does change what policies that do not know the labels can reach:
    :func:`eeopt.diagnostics.recall_accuracy` measures it at a policy's exits.

    Returns
    -------
    Front
        ``parameters`` counts the samples moved past the first exit.

    Examples
    --------
    >>> import eeopt
    >>> test = eeopt.datasets.load("mnist1d", "test")
    >>> oracle = eeopt.oracle_front(test)
    >>> print(f"{oracle.accuracies[-1]:.4f} at {oracle.costs[-1]:.0f} FLOPs")
    0.9927 at 139659 FLOPs
    """
    data = as_exit_data(logits, labels, costs, input=input)
    correct = data.correct
    has_correct = correct.any(axis=1)
    first_correct = correct.argmax(axis=1)
    gains = np.sort(data.costs[first_correct[has_correct & (first_correct > 0)]] - data.costs[0])
    n = data.n_samples
    base = int(np.count_nonzero(correct[:, 0]))
    point_costs = data.costs[0] + np.r_[0.0, np.cumsum(gains)] / n
    point_accuracies = (base + np.arange(gains.size + 1)) / n
    keep = non_dominated(point_costs, point_accuracies)
    return Front(
        "oracle",
        point_costs[keep],
        point_accuracies[keep],
        np.arange(gains.size + 1)[keep].astype(float),
        "n_moved",
    )


def heldout_front(
    val: Any,
    test: Any,
    method: str = "maxprob",
    *,
    budgets: Any = None,
    max_points: int = 60,
    n_budgets: int = 15,
    verbose: bool = True,
    **options: Any,
) -> Front:
    """Test-set front of policies fitted on validation data: what a paper reports.

    For swept methods each validation front point is refitted with its own parameter
    (``threshold=``, ``patience=``, ``level=``) and evaluated on ``test``; at most
    ``max_points`` points, spread along the front. Budgeted methods, or any method when
    ``budgets`` is given, are fitted at each budget (default ``n_budgets`` evenly spaced).
    Dominated test points are dropped; ``parameters`` holds the settings used.

    Examples
    --------
    >>> import eeopt
    >>> val, test = eeopt.datasets.load_both("mnist1d")
    >>> front = eeopt.heldout_front(val, test, "msdnet", n_budgets=5, verbose=False)
    >>> front.parameter_name, [f"{a:.3f}" for a in front.accuracies]
    ('budget', ['0.658', '0.943', '0.971', '0.972'])
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(method_names())}.")
    val = as_exit_data(val, name="val")
    test = as_exit_data(test, name="test")
    if method in SWEEPS and budgets is None:
        # Each validation front point, refitted with its own parameter (exactly that point).
        val_front = pareto_front(val, method=method, verbose=False, **options)
        keep = np.arange(len(val_front))
        if keep.size > max_points:
            keep = np.unique(np.linspace(0, keep.size - 1, max_points).round().astype(int))
        parameter = val_front.parameter_name
        settings = [
            {parameter: int(x) if parameter == "patience" else float(x)}
            for x in val_front.parameters[keep]
        ]
        labels = val_front.parameters[keep]
    else:
        if budgets is None:
            budgets = np.linspace(val.costs[0], val.costs[-1], n_budgets)
        labels = np.array([v.check_budget(b, val.costs, "budgets") for b in np.ravel(budgets)])
        settings = [{"budget": float(b)} for b in labels]
        parameter = "budget"
    points, used = [], []
    for setting, label in progress(
        list(zip(settings, labels, strict=True)), f"front {method}", verbose
    ):
        try:
            policy = fit(val, method=method, **setting, verbose=False, **options)
        except BudgetUnreachableError:
            continue  # this method cannot reach so low a budget
        result = policy.evaluate(test)
        points.append((result.mean_cost, result.accuracy))
        used.append(label)
    if not points:
        raise ValueError(f"no budget in budgets is reachable by {method!r}; raise budgets.")
    point_costs, point_accuracies = (np.array(x) for x in zip(*points, strict=True))
    keep = non_dominated(point_costs, point_accuracies)
    return Front(
        method,
        point_costs[keep],
        point_accuracies[keep],
        np.array(used)[keep],
        parameter,
        dict(options),
    )
