"""Pareto fronts of methods and the oracle (spec section 9)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eeopt import _validation as v
from eeopt._progress import progress
from eeopt.data import as_exit_data
from eeopt.exceptions import BudgetUnreachableError
from eeopt.methods import candidates, fit, method_spec
from eeopt.methods.registry import TARGET_OPTIONS
from eeopt.targets import non_dominated


@dataclass
class Front:
    """Non-dominated (mean cost, accuracy) points of a method on one data set.

    Attributes
    ----------
    method : str
    mean_costs : ndarray of shape (n_points,)
        Mean cost per sample of each point, increasing (``Front.costs`` before 0.2).
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
    mean_costs: np.ndarray
    accuracies: np.ndarray
    parameters: np.ndarray
    parameter_name: str
    options: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.mean_costs.shape[0]

    @property
    def costs(self) -> np.ndarray:
        """Deprecated name of :attr:`mean_costs` (``ExitData.costs`` are per-exit costs)."""
        warnings.warn(
            "Front.costs is deprecated and will be removed in the next release; use "
            "Front.mean_costs (mean cost per sample of each point).",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.mean_costs

    def accuracy_at(self, budget: float) -> float:
        """Best accuracy on the front with mean cost <= budget (NaN if none)."""
        within = self.mean_costs <= budget
        return float(self.accuracies[within].max()) if within.any() else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "parameter_name": self.parameter_name,
            "mean_costs": self.mean_costs.tolist(),
            "accuracies": self.accuracies.tolist(),
            "parameters": [float(x) for x in self.parameters],
        }

    def __repr__(self) -> str:
        return (
            f"Front(method={self.method!r}, n_points={len(self)}, "
            f"mean_costs=[{self.mean_costs.min():.4g} .. {self.mean_costs.max():.4g}], "
            f"accuracies=[{self.accuracies.min():.4f} .. {self.accuracies.max():.4f}])"
        )


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
    random_state: Any = None,
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
    spec = method_spec(method)
    options = _front_options(spec, options, "pareto_front")
    data = as_exit_data(logits, labels, costs, input=input)
    data.require_labels("a Pareto front")
    if spec.candidates is not None and budgets is None:
        path = candidates(data, method=method, verbose=verbose, **options)
        keep = non_dominated(path.mean_costs, path.accuracies)
        # The running-sum costs of a sweep pick the points; each point reports the engine's.
        point_costs = path.sweep.exact_mean_costs(keep)
        chosen = non_dominated(point_costs, path.accuracies[keep])
        best = keep[chosen]
        return Front(
            method,
            point_costs[chosen],
            path.accuracies[best],
            path.parameters[best],
            path.parameter,
            dict(options),
        )
    budgets = _budgets(budgets, n_budgets, data.costs)
    points = []
    for budget in progress(budgets, f"front {method}", verbose):
        policy = fit(
            data,
            method=method,
            budget=float(budget),
            verbose=False,
            random_state=random_state,
            **options,
        )
        result = policy.evaluate(data)
        points.append((result.mean_cost, result.accuracy))
    point_costs, point_accuracies = (np.array(x) for x in zip(*points, strict=True))
    keep = non_dominated(point_costs, point_accuracies)
    return Front(
        method, point_costs[keep], point_accuracies[keep], budgets[keep], "budget", dict(options)
    )


def _front_options(spec: Any, options: dict[str, Any], caller: str) -> dict[str, Any]:
    """A front's method options: no target (the front sweeps it), nothing unknown."""
    options = spec.upgrade(options)
    targets = sorted(set(options) & (set(TARGET_OPTIONS) | {d.name for d in spec.direct}))
    if targets:
        raise ValueError(
            f"{caller} sweeps the target itself; remove {', '.join(targets)} from the options."
        )
    v.check_options(spec.name, options, spec.options)
    return options


def _budgets(budgets: Any, n_budgets: int, costs: np.ndarray) -> np.ndarray:
    if budgets is None:
        n_budgets = v.check_positive_int(n_budgets, "n_budgets", minimum=2)
        budgets = np.linspace(costs[0], costs[-1], n_budgets)
    return np.array([v.check_budget(b, costs, "budgets") for b in np.ravel(budgets)])


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
    >>> print(f"{oracle.accuracies[-1]:.4f} at {oracle.mean_costs[-1]:.0f} FLOPs")
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
    random_state: Any = None,
    **options: Any,
) -> Front:
    """Test-set front of policies fitted on validation data: what a paper reports.

    For swept methods each validation front point is refitted with its own parameter
    (``threshold=``, ``patience=``, ``level=``) and evaluated on ``test``; at most
    ``max_points`` points, spread along the front. Budgeted methods, or any method when
    ``budgets`` is given, are fitted at each budget (default ``n_budgets`` evenly spaced),
    with ``random_state`` (EENet's seed).
    Dominated test points are dropped; ``parameters`` holds the settings used.

    Examples
    --------
    >>> import eeopt
    >>> val, test = eeopt.datasets.load_both("mnist1d")
    >>> front = eeopt.heldout_front(val, test, "msdnet", n_budgets=5, verbose=False)
    >>> front.parameter_name, [f"{a:.3f}" for a in front.accuracies]
    ('budget', ['0.658', '0.943', '0.971', '0.972'])
    """
    spec = method_spec(method)
    options = _front_options(spec, options, "heldout_front")
    max_points = v.check_positive_int(max_points, "max_points")
    val = as_exit_data(val, name="val")
    test = as_exit_data(test, name="test")
    test.require_labels("a held-out front (its accuracies)")
    if spec.candidates is not None and budgets is None:
        # Each validation front point: the path's own policy (exactly that point).
        path = candidates(val, method=method, verbose=False, **options)
        keep = non_dominated(path.mean_costs, path.accuracies)
        if keep.size > max_points:
            keep = keep[np.unique(np.linspace(0, keep.size - 1, max_points).round().astype(int))]
        parameter, labels = path.parameter, path.parameters[keep]
        jobs = [lambda i=i: path.policy(i) for i in keep]
    else:
        parameter, labels = "budget", _budgets(budgets, n_budgets, val.costs)
        jobs = [
            lambda b=b: fit(
                val,
                method=method,
                budget=float(b),
                verbose=False,
                random_state=random_state,
                **options,
            )
            for b in labels
        ]
    points, used = [], []
    for job, label in progress(list(zip(jobs, labels, strict=True)), f"front {method}", verbose):
        try:
            policy = job()
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
