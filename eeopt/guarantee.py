"""Certified targets: a method's candidate path tested with :mod:`eeopt.risk`.

``eeopt.fit(data, method=M, tolerance=epsilon, delta=delta)`` and ``eeopt.fit(data, method=M,
budget=B, delta=delta)`` come here. The method's candidate path (:func:`eeopt.candidates`) is
tested in order with fixed-sequence testing; every setting the test rejects is certified at
once (the family-wise error is at most delta), so the cheapest of them (for a risk) or the most
accurate (for a budget) is returned. The risks, per sample, are

- ``"accuracy-gap"``: ``1[exit wrong] - 1[final wrong]`` in ``[-1, 1]`` (the default with labels);
- ``"consistency"``: ``1[exit prediction != final prediction]`` (no labels needed; CALM);
- ``"error"``: ``1[exit wrong]``;
- the cost ``costs[exit]`` in ``[costs[0], costs[-1]]`` for ``budget=B``.

A path chosen on the samples that test it breaks the guarantee. Paths that are a fixed family
whatever the data (a shared threshold on a score, a patience, BEEM-C's shared alpha) are tested
on every sample. Paths built from the data (per-exit thresholds, BEEM-A's learned weights,
MSDNet's and EENet's quantile thresholds) use Pareto testing (Laufer-Goldshtein et al., ICLR
2023): the samples are split (``calibration_split``, seeded by ``random_state``), the path is
built and ordered on the first part (its Pareto front, by estimated risk), and tested on the
second.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

from eeopt import _validation as v
from eeopt import engine, risk
from eeopt.data import ExitData
from eeopt.targets import (
    Candidates,
    ExitCountTable,
    Sweep,
    first_lost_values,
    near_cheapest,
    non_dominated,
)

RISKS = ("accuracy-gap", "consistency", "error")
GUARANTEES = ("probability", "expectation")
#: Budgets on the path of a method fitted by a budget solver (MSDNet, EENet).
N_BUDGET_PATH = 25
_SPLIT = v.Interval("real", 0.0, 1.0, closed="neither")
_DELTA = v.Interval("real", 0.0, 1.0, closed="neither")


@dataclass(frozen=True)
class Certified:
    """A certified target: what to certify, at which level, how.

    ``risk`` is one of :data:`RISKS` or ``"cost"`` (``budget=``); ``epsilon`` the level in the
    loss's units (the budget for ``"cost"``).
    """

    risk: str
    epsilon: float
    delta: float | None
    bound: str
    guarantee: str
    calibration_split: float | None
    #: Shared thresholds tested instead of every one that changes a decision (decreasing),
    #: and ``grid=`` as the user gave it (an int or the values).
    grid: np.ndarray | None = None
    grid_option: Any = None

    def as_options(self) -> dict[str, Any]:
        """The options of :func:`eeopt.fit` that ask for this certified target again."""
        target = {"budget": self.epsilon} if self.risk == "cost" else {"tolerance": self.epsilon}
        if self.risk not in ("cost", "accuracy-gap"):
            target["risk"] = self.risk
        options = {**target, "guarantee": self.guarantee}
        if self.guarantee == "probability":  # conformal risk control takes no bound
            options["bound"] = self.bound
        if self.delta is not None:
            options["delta"] = self.delta
        if self.calibration_split is not None:
            options["calibration_split"] = self.calibration_split
        if self.grid_option is not None:
            options["grid"] = self.grid_option
        return options

    @property
    def positive_part(self) -> bool:
        """The accuracy gap under a mean-only bound is certified through its positive part
        ``1[exit wrong and final right]``: a 0/1 loss that is at least the gap on every sample,
        so its certificate holds for the gap, and on which "hb" and "binomial" are tight (on
        the gap itself, mapped to [0, 1], they cannot see its small variance)."""
        return self.risk == "accuracy-gap" and self.bound in ("hb", "binomial")

    @property
    def loss_range(self) -> tuple[float, float]:
        if self.risk == "accuracy-gap" and not self.positive_part:
            return (-1.0, 1.0)
        return (0.0, 1.0)

    @property
    def loss(self) -> str:
        """The per-sample loss certified, in words."""
        return {
            "cost": "costs[exit]",
            "consistency": "1[exit prediction != final prediction]",
            "error": "1[exit wrong]",
        }.get(
            self.risk,
            "1[exit wrong and final right] (at least the accuracy gap on every sample)"
            if self.positive_part
            else "1[exit wrong] - 1[final wrong] (the accuracy gap)",
        )


def resolve(
    spec: Any,
    data: ExitData,
    options: dict[str, Any],
    *,
    delta: Any,
    risk_name: Any,
    bound: Any,
    guarantee: Any,
    calibration_split: Any,
    grid: Any = None,
) -> Certified | None:
    """The certified target of a fit, or None when the fit is not certified (no ``delta`` and
    ``guarantee="probability"``); checks every argument against the others first."""
    guarantee = v.check_choice(guarantee, "guarantee", GUARANTEES)
    if delta is None and guarantee == "probability":
        for name, value in (
            ("risk", risk_name),
            ("bound", bound),
            ("calibration_split", calibration_split),
            ("grid", grid),
        ):
            if value is not None:
                raise ValueError(f"{name}= applies to a certified target: pass delta= as well.")
        return None
    delta, bound, split = _check_terms(options, delta, bound, guarantee, calibration_split)
    grid_option = grid if isinstance(grid, (int, np.integer)) else None
    grid = _check_grid(spec, grid)
    if grid is not None and grid_option is None:
        grid_option = grid.tolist()
    direct = sorted(d.name for d in spec.direct if options.get(d.name) is not None)
    if direct:
        raise ValueError(
            f"delta= certifies a target (budget= or tolerance=); {direct[0]}= is a direct "
            f"setting with nothing to certify: remove delta=, or fit to a target."
        )
    if options.get("budget") is not None:
        if risk_name is not None or options.get("tolerance") is not None:
            raise ValueError(
                "a certified budget= certifies the mean cost on new data; risk= and tolerance= "
                "apply to certified accuracy targets, not to budget=."
            )
        budget = v.check_budget(options["budget"], data.costs)
        return Certified("cost", budget, delta, bound, guarantee, split, grid, grid_option)
    risk_name, epsilon = _risk_and_level(spec, data, options, risk_name)
    return Certified(risk_name, epsilon, delta, bound, guarantee, split, grid, grid_option)


def _check_grid(spec: Any, grid: Any) -> np.ndarray | None:
    """``grid=``: an int n (n thresholds evenly spaced on [0, 1], RC-EENN's grid at n = 101) or
    the thresholds themselves; for the methods with one shared threshold on a score."""
    if grid is None:
        return None
    if not any(d.name == "threshold" for d in spec.direct):
        raise ValueError(
            f"grid= lists shared thresholds to test; method {spec.name!r} has none (it takes "
            f"grid= with maxprob, entropy or margin): remove grid=."
        )
    values = v.UnitGrid("thresholds", f"where the {spec.name} score lies").check(grid, "grid")
    if isinstance(values, int):
        return np.arange(values - 1, -1, -1) / (values - 1)  # 1, ..., 0: i/100 at n = 101
    return values[::-1].copy()  # tested from the most conservative


def _check_terms(options, delta, bound, guarantee, calibration_split):
    """``delta``, the bound and the split, checked against each other and the target."""
    if guarantee == "expectation" and delta is not None:
        raise ValueError(
            "guarantee='expectation' (conformal risk control) bounds the expected risk and "
            "takes no delta; remove delta=, or use guarantee='probability'."
        )
    if guarantee == "expectation" and bound is not None:
        raise ValueError(
            f"guarantee='expectation' is conformal risk control, which uses no concentration "
            f"bound; remove bound={bound!r}, or use guarantee='probability' with delta=."
        )
    delta = None if delta is None else _DELTA.check(delta, "delta")
    if guarantee == "expectation":
        bound = "crc"
    else:  # "hb" unless given
        bound = v.check_choice("hb" if bound is None else bound, "bound", risk.BOUNDS)
    if bound == "binomial" and options.get("budget") is not None:
        raise ValueError(
            "bound='binomial' is exact for 0/1 losses only, and a cost is not one: use "
            "bound='hb' or 'wsr' to certify a budget."
        )
    if calibration_split is not None:
        calibration_split = _SPLIT.check(calibration_split, "calibration_split")
    return delta, bound, calibration_split


def _risk_and_level(spec, data, options, risk_name) -> tuple[str, float]:
    """The risk of a certified accuracy target and its level (``tolerance=``)."""
    if spec.budget_only:
        raise ValueError(
            f"method {spec.name!r} is fitted to a budget only: certify budget=B with delta=."
        )
    target = options.get("target")
    if target not in (None, "accuracy"):
        raise ValueError(
            f"delta= certifies target='accuracy' (with tolerance= and risk=) or budget=; "
            f"target={target!r} cannot be certified."
        )
    default = "accuracy-gap" if data.labels is not None else "consistency"
    risk_name = v.check_choice(risk_name or default, "risk", RISKS)
    if risk_name != "consistency":
        data.require_labels(f"risk={risk_name!r} (or risk='consistency', which needs none)")
    if options.get("tolerance") is None:
        raise ValueError(
            f"a certified target needs tolerance= (epsilon: the largest {risk_name} risk to "
            f"allow on new data, e.g. 0.01)."
        )
    return risk_name, v.Interval("real", 0.0, 1.0).check(options["tolerance"], "tolerance")


def certified_fit(
    spec: Any, data: ExitData, settings: dict[str, Any], target: Certified, random_state: Any
) -> tuple[Any, dict, dict]:
    """Build the path, test it, pick among the certified settings.

    Returns
    -------
    policy, info, guarantee, outcome
        ``guarantee`` is the record stored as ``policy.guarantee_``; ``outcome`` the policy's
        exit counts and correct count on ``data`` where the paths know them (the path's
        counts, plus the test part's after a split), else None (then ``fit`` evaluates it:
        the consistency's counts are of agreement with the final exit, not of the labels).
    """
    labelled = data
    if target.risk == "consistency":  # disagreement with the final exit is its "error"
        data = data.replace(labels=data.predictions[:, -1].astype(np.int64))
    split = _split_share(spec, settings, target)
    if target.grid is not None and split is not None:
        raise ValueError(
            "grid= tests a fixed grid of shared thresholds; this path is built from the data "
            "(per_exit=True or calibration_split=): remove grid= or use one shared threshold."
        )
    path_part, test_part = _split(data, split, random_state)
    path = _path(spec, path_part, settings, target)
    order = _order(path, data, target, pareto=split is not None)
    # The path half is not needed past here: a copy of its samples (if one was made) is
    # freed before the test half's own work (a path of thresholds keeps only what its
    # policies need).
    n_path = path_part.n_samples
    del path_part
    grid_of = None
    if target.grid is not None:
        order, grid_of = _grid_order(path, target)
    # The same rule's path on the test part (one global threshold's sweep, a level path's
    # replay): the test reads it for exact means, and conformal risk control a level path's
    # first wrong positions from its replay; otherwise only the choice reads it, so it is
    # made after the test, once the test's own copy of those samples (if any) is freed.
    same_rule = None
    test_reads_rule = (target.guarantee == "probability" and target.bound in risk.MEAN_BOUNDS) or (
        target.guarantee == "expectation" and _replays(path)
    )
    if split is not None and test_reads_rule:
        same_rule = _same_rule(spec, settings, path, test_part, target, order)
    tally: dict = {}  # the outcomes on the test part of the settings evaluated one by one
    cert = _test(path, order, test_part, target, random_state, split is None, same_rule, tally)
    if split is not None and not test_reads_rule:
        if not _replays(path):  # a threshold sweep reads the rows in place; a replay copies
            test_part.free_copy()
        same_rule = _same_rule(spec, settings, path, test_part, target)
    certified = _head(order, cert.index + 1)
    outcome = None
    if certified.size == 0:
        policy, info = _fallback(path, target, cert)
    else:
        on_test = None
        if split is not None:
            on_test = _outcomes_on_test(certified, same_rule, tally, data.costs)
        index, outcome = _choose(path, certified, data, target, on_test)
        if grid_of is None:
            policy, info = path.make_policy(index)
        else:  # the grid's threshold that was tested (same decisions here), as a direct setting
            thresholds = v.check_thresholds(grid_of[index], data.n_exits, "grid")
            policy, info = spec.build(data, spec.name, settings, "threshold", thresholds)
            info = {**info, "threshold": grid_of[index]}
        if target.risk == "consistency" and labelled.labels is not None:
            outcome = None  # fit_info_'s accuracy is on the labels: evaluated
        elif outcome is None:  # the path's counts are the policy's on these samples
            outcome = path.outcome(index)
    n_test = test_part.n_samples
    record = _record(cert, target, path, order, certified, split, n_path, n_test, grid_of)
    return policy, info, record, outcome


def _grid_order(path: Candidates, target: Certified) -> tuple[np.ndarray, dict[int, float]]:
    """The candidates a grid of shared thresholds names, in testing order, and the grid value
    to use for each. Threshold g gives the decisions of the last candidate whose threshold is
    at least g (no score of these samples lies in between), so that candidate's losses are
    g's; of several grid values naming one candidate, the most aggressive is used for a risk
    (the cheaper one on new data) and the most conservative for a budget."""
    named = path.sweep.deciding_alike(target.grid)
    order = np.unique(named)
    pick = np.minimum if target.risk != "cost" else np.maximum
    grid_of: dict[int, float] = {}
    for index, value in zip(named.tolist(), target.grid.tolist(), strict=True):
        grid_of[index] = pick(grid_of.get(index, value), value)
    if target.risk == "cost":  # cheapest first, as for the whole path
        order = order[::-1].copy()
    return order, {k: float(v) for k, v in grid_of.items()}


def _split_share(spec: Any, settings: dict[str, Any], target: Certified) -> float | None:
    """Pareto testing's split where the path is built from the data; none otherwise."""
    if spec.path_uses_data(settings):
        return 0.5 if target.calibration_split is None else target.calibration_split
    return target.calibration_split


@dataclass
class _Part:
    """The samples of ``whole`` at ``rows`` (increasing indices; None: all of them). A path
    that can be built on rows in place (``spec.candidates_take_rows``, a threshold sweep)
    reads them there; other steps get a copy, made once when first needed (at 10^7 tokens
    the copies of both halves of a split were 1x the input and most of a second)."""

    whole: ExitData
    rows: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return self.whole.n_samples if self.rows is None else int(self.rows.shape[0])

    @cached_property
    def data(self) -> ExitData:
        return self.whole if self.rows is None else self.whole.subset(self.rows)

    def free_copy(self) -> None:
        """Forget the copy of the samples (made again if needed)."""
        self.__dict__.pop("data", None)

    def candidates(self, spec: Any, settings: dict[str, Any]) -> Candidates:
        """The method's path on these samples."""
        if self.rows is not None and spec.candidates_take_rows and "data" not in self.__dict__:
            return spec.candidates(self.whole, spec.name, settings, None, rows=self.rows)
        return spec.candidates(self.data, spec.name, settings, None)


def _split(data: ExitData, share: float | None, random_state: Any) -> tuple[_Part, _Part]:
    """The path part and the test part: the same samples without a split, else disjoint
    random ones (``share`` of them on the path)."""
    if share is None:
        return _Part(data), _Part(data)
    order = v.check_random_state(random_state).permutation(data.n_samples)
    n_path = int(round(share * data.n_samples))
    if not 0 < n_path < data.n_samples:
        raise ValueError(
            f"calibration_split={share:g} leaves no samples on one side of {data.n_samples}; "
            f"use a share with at least one sample on each side."
        )
    on_path = np.zeros(data.n_samples, dtype=bool)  # the first n_path drawn, in sample order
    on_path[order[:n_path]] = True
    return _Part(data, np.flatnonzero(on_path)), _Part(data, np.flatnonzero(~on_path))


def _path(spec: Any, part: _Part, settings: dict[str, Any], target: Certified) -> Candidates:
    """The method's candidate path; for budget-solver methods, a grid of budgets from the
    dearest (no early exit) down (EENet trains once, at the budget asked for)."""
    if spec.candidates is not None:
        return part.candidates(spec, settings)
    data = part.data
    budgets = np.linspace(data.costs[-1], data.costs[0], N_BUDGET_PATH)
    if spec.budget_path is not None:
        fitted = spec.budget_path(data, spec.name, settings, budgets, target.epsilon)
    else:
        fitted = [spec.solve_budget(data, spec.name, settings, float(b)) for b in budgets]
    results = [p.evaluate(data) for p, _ in fitted]  # exits and predictions in one pass
    counts = np.array([np.bincount(r.exit_index, minlength=data.n_exits) for r in results])
    correct = (
        np.array([np.count_nonzero(r.predictions == data.labels) for r in results])
        if data.labels is not None
        else np.zeros(len(fitted), dtype=np.int64)
    )
    sweep = Sweep(
        budgets,
        engine.mean_cost_from_counts(counts, data.costs),
        correct,
        data.n_samples,
        moves=ExitCountTable(counts),
        costs=data.costs,
    )
    return Candidates(spec.name, "budget", sweep, lambda i: fitted[i], shared_scores=False)


def _safety_estimates(path: Candidates, target: Certified) -> np.ndarray:
    """Each candidate's mean loss on the samples it was built on, negated, up to a positive
    factor and a shift common to all (higher: less risky): the estimate Pareto testing
    orders by, as integer counts (no float copies of millions of candidates); the
    certificate uses the losses on the test samples."""
    sweep = path.sweep
    if target.positive_part and sweep.counts_lost:  # the loss tested, not the gap it bounds
        lost = sweep.n_lost()  # a new array
        return np.negative(lost, out=lost)
    # The error, the disagreement and the gap all fall with each correct count.
    return sweep.n_correct


def _order(path: Candidates, data: ExitData, target: Certified, pareto: bool) -> np.ndarray | None:
    """The order in which the path is tested: fixed by the family where the path is fixed
    (conservative to aggressive, None: the path's own order, which a path of millions of
    settings need not spell out; cheapest first for a budget), else Pareto testing's: the
    non-dominated candidates on the path samples, by increasing estimated risk."""
    n = len(path)
    if not pareto:
        if target.risk != "cost":
            return None
        # Fixed families get cheaper along the path; the cost is tested cheapest first.
        return np.arange(n)[::-1].copy()
    costs = path.mean_costs
    if target.risk == "cost":
        keep = non_dominated(costs, path.accuracies) if data.labels is not None else np.arange(n)
        return keep[np.argsort(costs[keep], kind="stable")]
    safety = _safety_estimates(path, target)
    # Non-dominated in (cost, risk): cheaper or less risky; tested from the least risky,
    # then the dearest.
    keep = non_dominated(costs, safety)
    return keep[np.lexsort((-costs[keep], -safety[keep]))]


def _losses(
    path: Candidates,
    indices: np.ndarray,
    data: ExitData,
    target: Certified,
    tally: dict | None = None,
) -> np.ndarray:
    """Per-sample losses ``(len(indices), n_samples)`` of candidates on ``data`` (a path whose
    candidates score alike computes the scores once); ``tally[i]`` gets candidate i's exit
    counts and correct count on ``data``."""
    out = np.empty((indices.shape[0], data.n_samples))
    final_wrong = ~data.correct[:, -1] if target.risk == "accuracy-gap" else None
    for row, exits in enumerate(_exits_of(path, indices, data)):
        if tally is not None:
            right = 0 if data.labels is None else _n_right(data, exits)
            tally[int(indices[row])] = (np.bincount(exits, minlength=data.n_exits), right)
        if target.risk == "cost":
            out[row] = data.costs[exits]
            continue
        wrong = engine.at_exit(data.predictions, exits) != data.labels
        if final_wrong is None:
            out[row] = wrong
        elif target.positive_part:
            out[row] = wrong & ~final_wrong
        else:
            out[row] = wrong.astype(np.float64) - final_wrong
    return out


def _exits_of(path: Candidates, indices: np.ndarray, data: ExitData):
    """Each given candidate's exit per sample of ``data``, in turn (a path whose candidates
    score alike computes the scores once)."""
    scores = None
    for i in indices:
        policy = path.policy(int(i))
        if scores is None or not path.shared_scores:
            scores = policy.compute_scores(data)
        yield engine.first_exit(scores, policy.thresholds_)


def _test(
    path: Candidates,
    order: np.ndarray | None,
    part: _Part,
    target: Certified,
    random_state: Any,
    fixed: bool,
    same_rule: tuple[Candidates, Callable] | None = None,
    tally: dict | None = None,
) -> risk.Certification:
    """Fixed-sequence testing (or CRC) of the ordered path on the samples of ``part``
    (``order`` None: the path's own order). Settings evaluated one by one leave their
    outcome in ``tally``.

    The certificate is that of the tested prefix of the path (its ``n_settings``): the test
    stops at the first setting it keeps, and a path of millions of settings is not spelled
    out beyond it. ``same_rule``: the same rule's path on those samples and the map from this
    path's settings to its (:func:`_same_rule`), which gives every mean exactly.
    """
    costs = part.whole.costs
    loss_range = (costs[0], costs[-1]) if target.risk == "cost" else target.loss_range
    if target.guarantee == "expectation":
        # Running maxima along the whole path, or of a cost, which only rises along its
        # order; or of the thresholds tested, falling (a grid's, Pareto testing's on a split:
        # its non-dominated thresholds by increasing risk are its falling ones).
        if path.parameter == "threshold" and (
            (fixed and (order is None or target.risk == "cost"))
            or (target.risk != "cost" and _increasing(order))
        ):
            return _crc_threshold(
                path, order, part.whole, target, loss_range[1], own=fixed, rows=part.rows
            )
        if same_rule is not None and _replays(path):
            replayed = same_rule[0].sweep  # with each test sample's first positions
            n_tested = len(path) if order is None else order.shape[0]
            return _crc_replayed(replayed, n_tested, part.data, target, loss_range[1])
        head = _head(order, len(path))
        return _crc_lazily(path, head, part.data, target, loss_range[1], tally)
    if target.bound in risk.MEAN_BOUNDS and fixed and _counts_risk(path, target):
        # The path was built on these very samples: its exact counts give every mean.
        blocks = _exact_mean_blocks(path, order, target)
        return _certify_means_lazily(blocks, part.n_samples, target, loss_range)
    if target.bound in risk.MEAN_BOUNDS and same_rule is not None:
        other, mapped = same_rule
        head = _head(order, len(path))
        means_of = _exact_means(other, target)  # the counts once, read block by block
        blocks = (
            means_of(mapped(head[lo : lo + _FIRST_MEANS]))
            for lo in range(0, head.shape[0], _FIRST_MEANS)
        )
        return _certify_means_lazily(blocks, part.n_samples, target, loss_range)
    head = _head(order, len(path))
    return _certify_lazily(path, head, part.data, target, loss_range, random_state, tally)


def _counts_risk(path: Candidates, target: Certified) -> bool:
    """Whether the path's sweep counts the target's loss (the positive part needs its flags)."""
    return not target.positive_part or path.sweep.counts_lost


def _same_rule(
    spec: Any,
    settings: dict,
    path: Candidates,
    part: _Part,
    target: Certified,
    order: np.ndarray | None = None,
):
    """For a path of one global threshold, the same rule's path on other samples (``part``)
    and ``mapped(indices)``: the setting of that path that decides every one of those
    samples as each given setting of ``path`` does (a threshold decides as the last
    candidate there at least as high: no score of theirs lies in between). One threshold
    sweep of them instead of an evaluation per setting.

    For a path of per-exit thresholds (BEEM's and the per-exit error-rate rule's levels), the
    same policies replayed on those samples (:meth:`eeopt.methods.beem.LevelSweep.on`: only the
    samples whose exit changes between consecutive policies move) and the identity map,
    where the test reads exact means (``"hb"``, ``"binomial"``), or conformal risk control
    each sample's first wrong position along ``order`` (for a cost, its first position at or
    past each exit; tracked in the same replay). None for other paths."""
    if part.whole.labels is None or spec.candidates is None:
        return None
    exact_means = target.guarantee == "probability" and target.bound in risk.MEAN_BOUNDS
    if _replays(path) and (exact_means or target.guarantee == "expectation"):
        rank = None
        if target.guarantee == "expectation":
            rank = np.full(len(path), np.iinfo(np.int64).max)
            head = _head(order, len(path))
            rank[head] = np.arange(head.shape[0])
        data = part.data
        scores = path.policy(0).compute_scores(data)  # every policy of the path scores alike
        reach = rank is not None and target.risk == "cost"
        n_jobs = settings.get("n_jobs")  # BEEM's threads, where the method has them
        sweep = path.sweep.on(scores, data.correct, data.costs, rank, reach, n_jobs)
        replayed = replace(path, sweep=sweep)
        return replayed, lambda indices: np.asarray(indices, dtype=np.int64)
    if path.parameter != "threshold":
        return None
    other = part.candidates(spec, settings)
    if not (other.parameter == "threshold" and _counts_risk(other, target)):
        return None

    def mapped(indices: np.ndarray) -> np.ndarray:
        return other.sweep.deciding_alike(path.parameters[indices])

    return other, mapped


@dataclass
class _OnTest:
    """The certified settings' outcomes on the test samples: ``n_correct`` and
    ``mean_costs`` (running sums where a sweep gives them) of each, in the certified order,
    and ``exit_counts(positions)``, the exact counts of some of them."""

    n_correct: np.ndarray
    mean_costs: np.ndarray
    exit_counts: Callable[[np.ndarray], np.ndarray]


def _outcomes_on_test(certified: np.ndarray, same_rule, tally: dict, costs) -> _OnTest:
    """The certified settings' outcomes on the test samples: from the same rule's path
    there, else from the settings' evaluations during the test (the certified settings are
    among the tested)."""
    if same_rule is not None:
        other, mapped = same_rule
        on_other = mapped(certified)
        return _OnTest(
            other.sweep.n_correct[on_other],
            other.sweep.mean_costs[on_other],
            lambda positions: other.sweep.exit_counts(on_other[positions]),
        )
    counts = np.array([tally[i][0] for i in certified.tolist()])
    n_correct = np.array([tally[i][1] for i in certified.tolist()], dtype=np.int64)
    return _OnTest(
        n_correct, engine.mean_cost_from_counts(counts, costs), lambda positions: counts[positions]
    )


def _n_right(data: ExitData, exits: np.ndarray) -> int:
    return int(np.count_nonzero(engine.at_exit(data.predictions, exits) == data.labels))


def _exact_means(path: Candidates, target: Certified) -> Callable[[np.ndarray], np.ndarray]:
    """``means(indices)``: the mean loss of given settings of a path on its own samples, from
    its exact counts (the positive part's counted once, whatever the number of calls)."""
    sweep = path.sweep
    if target.risk == "cost":
        return sweep.exact_mean_costs
    n = sweep.n_samples
    if target.positive_part:
        lost = sweep.n_lost()
        return lambda indices: lost[indices] / n
    return lambda indices: (n - sweep.n_correct[indices]) / n


def _head(order: np.ndarray | None, n: int) -> np.ndarray:
    """The first ``n`` settings of a testing order (None: the path's own)."""
    return np.arange(n) if order is None else order[:n]


def _exact_mean_blocks(path: Candidates, order: np.ndarray | None, target: Certified):
    """Each setting's mean loss from the path's exact counts, in blocks along the testing
    order, each prefix four times the last: a test that stops early never counts the rest
    (millions of settings). The positive part is counted over the whole prefix each time
    (running sums from the first move), at most 4/3 of the work of the last prefix."""
    sweep = path.sweep
    if order is not None:  # a budget (cheapest first, every setting) or a grid's few settings
        yield _exact_means(path, target)(order)
        return
    start, stop = 0, min(len(path), _FIRST_MEANS)
    while start < stop:
        if target.positive_part:  # 1[exit wrong and final right], counted by the same sweep
            n_wrong = sweep.n_lost(stop)[start:]
        else:
            n_wrong = sweep.n_samples - sweep.n_correct[start:stop]
        yield n_wrong / sweep.n_samples
        start, stop = stop, min(len(path), 4 * stop)


#: Settings whose mean losses the first block of :func:`_exact_mean_blocks` holds.
_FIRST_MEANS = 1 << 16


def _certify_means_lazily(blocks, n_samples, target, loss_range) -> risk.Certification:
    """:func:`eeopt.risk.certify_means` of the means that ``blocks`` yields in testing order,
    up to the first setting the test keeps, made once of that prefix (with every tested
    setting's upper bound)."""
    p_value = risk.binomial_p_value if target.bound == "binomial" else risk.hb_p_value

    def p_values_of(means: np.ndarray) -> np.ndarray:
        return p_value(means, n_samples, target.epsilon, loss_range=loss_range)

    means = _up_to_first_kept(blocks, p_values_of, target.delta)
    return risk.certify_means(
        means, n_samples, target.epsilon, target.delta, bound=target.bound, loss_range=loss_range
    )


def _up_to_first_kept(blocks, p_values_of, delta: float) -> np.ndarray:
    """The settings (rows) that ``blocks`` yields in testing order, up to and including the
    first whose p-value is above ``delta``: all that fixed-sequence testing looks at."""
    kept = []
    for block in blocks:
        # p-values in pieces: a block can be millions of settings past the first kept one.
        for lo in range(0, max(len(block), 1), _P_VALUE_ROWS):
            piece = block[lo : lo + _P_VALUE_ROWS]
            failed = np.flatnonzero(~(np.atleast_1d(p_values_of(piece)) <= delta))
            if failed.size:
                kept.append(block[: lo + failed[0] + 1])
                return np.concatenate(kept) if len(kept) > 1 else kept[0]
        kept.append(block)
    return np.concatenate(kept) if len(kept) > 1 else kept[0]


#: Settings whose p-values :func:`_up_to_first_kept` computes at a time.
_P_VALUE_ROWS = 1 << 16


def _loss_blocks(path: Candidates, order: np.ndarray, data: ExitData, target: Certified, tally):
    """The losses of the ordered path in doubling blocks of settings: a test that stops early
    never computes the rest (a path has up to n (K - 1) settings). A block holds at most
    ``_LOSS_BLOCK`` losses (at least one setting): memory stays bounded whatever n."""
    start, size = 0, 64
    largest = max(1, _LOSS_BLOCK // max(data.n_samples, 1))
    while start < order.shape[0]:
        stop = min(order.shape[0], start + min(size, largest))
        yield _losses(path, order[start:stop], data, target, tally)
        start, size = stop, 2 * size


#: Losses per block of :func:`_loss_blocks` (float64: 128 MB).
_LOSS_BLOCK = 1 << 24


def _crc_lazily(path, order, data, target, loss_bound: float, tally=None) -> risk.Certification:
    """Conformal risk control of the ordered path, its losses computed until the first
    setting that fails: CRC's bound of the running maximum never falls along the path."""
    sums, carry, bound = [], None, (data.n_samples + 1) * target.epsilon - loss_bound
    for block in _loss_blocks(path, order, data, target, tally):
        if carry is not None:
            np.maximum(block[0], carry, out=block[0])
        np.maximum.accumulate(block, axis=0, out=block)  # each sample's running maximum
        carry = block[-1].copy()
        sums.append(block.sum(axis=1))
        if sums[-1][-1] > bound:  # the sums never fall: a later setting cannot pass
            break
    return risk.conformal_risk_control_from_sums(
        np.concatenate(sums), data.n_samples, target.epsilon, loss_bound=loss_bound
    )


def _replays(path: Candidates) -> bool:
    """Whether the path is a level path whose policies score alike: replayable on other
    samples (:class:`eeopt.methods.beem.LevelSweep`)."""
    from eeopt.methods.beem import LevelSweep  # beem registers through this module's caller

    return isinstance(path.sweep, LevelSweep) and path.shared_scores


def _crc_replayed(replayed, n_tested: int, data, target, loss_bound: float) -> risk.Certification:
    """Conformal risk control of a level path (BEEM's, the per-exit rule's) along its testing
    order on other samples ``data``, without a per-sample loss per setting: a 0/1 loss's
    running maximum is 1 from the sample's first position in the order at which its exit is
    wrong (``replayed.first_wrong``: :meth:`eeopt.methods.beem.LevelSweep.on` with the
    order's ranks); the accuracy gap's is that less the samples the last exit gets wrong (-1
    until their exit is wrong too). A cost's running maximum is the cost of the latest exit
    the sample has reached along the order: ``costs[0]`` plus, for each later exit k, the
    step ``costs[k] - costs[k - 1]`` from its first position at or past k
    (``replayed.first_reach``). The sums up to the first setting past the bound."""
    n, bound = data.n_samples, (data.n_samples + 1) * target.epsilon - loss_bound
    positions = np.arange(n_tested)
    if target.risk == "cost":
        costs = data.costs
        sums = np.full(n_tested, n * costs[0])
        for k in range(1, costs.shape[0]):  # rounding only rises with the counts: monotone
            reached = np.sort(replayed.first_reach[:, k - 1])
            sums += (costs[k] - costs[k - 1]) * np.searchsorted(reached, positions, "right")
    else:
        first = np.sort(replayed.first_wrong)
        shift = int(np.count_nonzero(~data.correct[:, -1])) if target.risk == "accuracy-gap" else 0
        sums = np.searchsorted(first, positions, side="right") - shift
    failed = np.flatnonzero(sums > bound)
    sums = sums[: failed[0] + 1] if failed.size else sums
    return risk.conformal_risk_control_from_sums(
        sums.astype(float), n, target.epsilon, loss_bound=loss_bound
    )


def _increasing(order: np.ndarray | None) -> bool:
    """Whether a testing order takes the path's settings in strictly increasing index."""
    return order is not None and bool(np.all(order[1:] > order[:-1]))


def _crc_threshold(
    path, order, data, target, loss_bound: float, own: bool = True, rows=None
) -> risk.Certification:
    """Conformal risk control of a shared threshold's path (or, for a cost, a grid of it),
    without a per-sample loss per setting: on its own samples along the whole path (``order``
    None), or along the settings of ``order`` (increasing indices: falling thresholds) on
    any samples (``own`` False: not those that made the path; ``rows``: the samples of
    ``data`` tested, read where they lie).

    Lowering the threshold only moves a sample to earlier exits, at its records (its running
    maximum score). A 0/1 loss's running maximum along the path is 1 from the first setting
    at or below the sample's *first lost value*: +inf if it is lost at the last exit, else its
    highest record whose exit loses it; along some of the thresholds, or on other samples,
    the first tested threshold at which it is lost (:func:`eeopt.targets.first_lost_values`
    ``among=``). So the sums are counts of those values at or above each threshold, up to
    the first setting past the bound (the accuracy gap's, less a constant: below). A cost,
    tested cheapest first, only rises along that order: its running maximum is the cost
    itself, whose sums are the path's exact mean costs.
    """
    n = data.n_samples if rows is None else rows.shape[0]
    bound = (n + 1) * target.epsilon - loss_bound
    sweep = path.sweep
    if target.risk == "cost":  # compared with the bound as their exact values are
        means = sweep.mean_costs_near(_head(order, len(path)), bound / n)
        n_tested = min(len(path), int(np.searchsorted(means, bound / n, side="right")) + 1)
        sums = np.maximum.accumulate(means[:n_tested]) * n
    else:
        # The gap's running maximum: a sample the last exit gets right is 1 from the first
        # setting its exit gets wrong (its first lost value), else 0; one it gets wrong is -1
        # until then (exit right, last exit wrong), else 0: the sums count first values of
        # "exit wrong" less those samples. (Along the whole path from +inf, they are at their
        # last exit, wrong, from the start.) The error and the disagreement count first values.
        lost = ~data.correct
        shift = 0
        if target.risk == "accuracy-gap":
            final = lost[:, -1] if rows is None else lost[rows, -1]
            shift = int(np.count_nonzero(final))
        bound += shift  # compared with the counts, less the shift
        # Falling thresholds: the path's own order, or the tested ones.
        parameters = sweep.parameters if order is None else sweep.parameters[order]
        scores = data.score(path.method)
        if own and order is None:
            values = first_lost_values(scores, lost, rows=rows)
            sums = _counts_at_or_above(values, parameters, bound)
        else:
            # Among the first m tested thresholds the first lost values are exact for those
            # m settings; the test usually fails early, so m grows until it does (a search
            # in a short array, in cache, instead of one in millions of thresholds).
            m = min(parameters.shape[0], _FIRST_CRC_SETTINGS)
            while True:
                values = first_lost_values(scores, lost, among=parameters[:m], rows=rows)
                sums = _counts_at_or_above(values, parameters[:m], bound)
                if m == parameters.shape[0] or sums.shape[0] < m or sums[-1] > bound:
                    break
                m = min(parameters.shape[0], 8 * m)
        sums -= shift
    return risk.conformal_risk_control_from_sums(sums, n, target.epsilon, loss_bound=loss_bound)


#: Tested thresholds whose first lost values conformal risk control on other samples finds
#: first (then eight times as many, until a setting fails). 32,768 float64 (256 KB) still
#: search in cache; at 10^7 tokens the test fails past 4,096 (7,461 certified), where a first
#: pass over 4,096 was wasted: 6.1 -> 5.2 s (numpy: 11.8 -> 9.7 s); 10^5 and 10^6 fail
#: within either, at the same time (numpy at 10^6: 0.78 -> 0.80 s).
_FIRST_CRC_SETTINGS = 32768


def _counts_at_or_above(values: np.ndarray, thresholds: np.ndarray, bound: float) -> np.ndarray:
    """For falling ``thresholds``, the number of ``values`` at or above each (float), up to
    the first count above ``bound`` (included; all of them if none is). ``values`` may be
    reordered."""
    n = values.shape[0]
    if bound < 0:  # the first setting already fails
        return np.array([np.count_nonzero(values >= thresholds[0])], dtype=float)
    if bound >= n:  # every setting passes: every count is needed
        values.sort()
        return (n - np.searchsorted(values, thresholds, side="left")).astype(float)
    # A count of at least c = floor(bound) + 1 is reached at the thresholds up to the c-th
    # largest value: the settings above it pass, counted among the c largest values alone;
    # the first setting at or below it fails, counted among all.
    c = int(np.floor(bound)) + 1
    top = np.sort(np.partition(values, n - c)[n - c :])
    n_settings = thresholds.shape[0]
    n_pass = min(n_settings, int(np.searchsorted(-thresholds, -top[0])))
    sums = np.empty(min(n_settings, n_pass + 1))
    sums[:n_pass] = c - np.searchsorted(top, thresholds[:n_pass], side="left")
    if n_pass < n_settings:
        sums[n_pass] = np.count_nonzero(values >= thresholds[n_pass])
    return sums


def _certify_lazily(
    path, order, data, target, loss_range, random_state, tally=None
) -> risk.Certification:
    """Fixed-sequence testing that computes the candidates' losses in doubling blocks and stops
    at the first non-rejection (the losses after it are never needed); then the certificate,
    with the upper bound of every tested setting, from the tested prefix. Mean-only bounds keep
    each setting's mean loss only (:func:`eeopt.risk.certify_means`)."""
    if target.bound in risk.MEAN_BOUNDS:
        blocks = (block.mean(axis=1) for block in _loss_blocks(path, order, data, target, tally))
        return _certify_means_lazily(blocks, data.n_samples, target, loss_range)
    if isinstance(random_state, np.random.Generator):  # one order: the test's = certify's
        random_state = int(random_state.integers(2**63 - 1))
    permutation = risk.sample_order(data.n_samples, random_state)
    losses = _up_to_first_kept(
        _loss_blocks(path, order, data, target, tally),
        lambda block: risk.wsr_p_value(
            block[:, permutation], target.epsilon, target.delta, loss_range=loss_range
        ),
        target.delta,
    )
    return risk.certify(
        losses,
        target.epsilon,
        target.delta,
        bound="wsr",
        loss_range=loss_range,
        random_state=random_state,
    )


def _choose(
    path: Candidates,
    certified: np.ndarray,
    data: ExitData,
    target: Certified,
    on_test: _OnTest | None,
):
    """Among the certified settings (all certified at once), the cheapest for a risk target,
    the most accurate for a budget, on all the samples: the path's own outcomes where it was
    built on all of them (``on_test`` None), else its outcomes on its samples added to
    ``on_test``'s (the test samples'). Running-sum costs narrow the field; exact counts are
    added up only for the settings within rounding of the cheapest (as
    :meth:`eeopt.targets.Sweep.cheapest`; hundreds of thousands are certified at 10^7).

    Returns
    -------
    index, outcome
        The setting, and after a split its exit counts and correct count on all the samples
        (None without a split: the path's own)."""
    sweep = path.sweep
    if on_test is None:  # the path's exact outcomes on these samples; exact costs near the best
        pool = certified
        if target.risk == "cost":
            pool = pool[sweep.n_correct[pool] == sweep.n_correct[pool].max()]
        pool = sweep.cheapest(pool)
        return int(pool[np.argmax(sweep.n_correct[pool])]), None
    # Exit counts, correct counts and costs add up over the two parts of the samples.
    correct = sweep.n_correct[certified] + on_test.n_correct
    pool = np.arange(certified.shape[0])  # positions among the certified
    if target.risk == "cost":  # the most accurate first
        pool = pool[correct == correct.max()]
    n_test = data.n_samples - sweep.n_samples
    approx = sweep.mean_costs[certified[pool]] * sweep.n_samples
    approx += on_test.mean_costs[pool] * n_test
    approx /= data.n_samples
    pool = pool[near_cheapest(approx)]
    counts = sweep.exit_counts(certified[pool]) + on_test.exit_counts(pool)
    costs = engine.mean_cost_from_counts(counts, data.costs)
    best = np.lexsort((-correct[pool], costs))[0]  # the cheapest, then the most accurate
    return int(certified[pool[best]]), (counts[best], int(correct[pool[best]]))


def _fallback(path: Candidates, target: Certified, cert: risk.Certification):
    """Nothing certified: no early exit for a risk (loss 0 on every sample for the gap and
    consistency), every sample at the first exit for a budget (cost ``costs[0] <= B`` surely)."""
    policy, info = path.make_policy(0)
    thresholds = np.full_like(policy.thresholds_, np.inf if target.risk != "cost" else -np.inf)
    thresholds[-1] = -np.inf
    policy.thresholds_ = thresholds
    what = "no early exit" if target.risk != "cost" else "every sample at the first exit"
    warnings.warn(
        f"no setting of {path.method!r} is certified at {_level(target)}: returning {what}. "
        f"These data certify the first setting tested from "
        f"{_name(target)}={cert.smallest_certifiable_epsilon:.4g}; ask for that, or calibrate "
        f"on more samples.",
        UserWarning,
        stacklevel=4,
    )
    return policy, {"fallback": what}


def _name(target: Certified) -> str:
    return "budget" if target.risk == "cost" else "tolerance"


def _level(target: Certified) -> str:
    if target.guarantee == "expectation":
        return f"{_name(target)}={target.epsilon:g} (conformal risk control)"
    return f"{_name(target)}={target.epsilon:g}, delta={target.delta:g}"


#: The most tested settings :func:`_record` lists (a path tested over millions of settings
#: would make a policy file of hundreds of MB and cost seconds of bound inversions).
RECORD_ROWS = 1000


def _recorded_positions(n_tested: int, n_certified: int) -> np.ndarray:
    """Positions in the testing order that the record lists: all of them, or
    ``RECORD_ROWS`` evenly spaced ones with the last certified and the last tested."""
    if n_tested <= RECORD_ROWS:
        return np.arange(n_tested)
    spaced = np.rint(np.linspace(0, n_tested - 1, RECORD_ROWS)).astype(np.int64)
    return np.unique(np.r_[spaced, max(n_certified - 1, 0), n_tested - 1])


def _record(cert, target, path, order, certified, split, n_path, n_test, grid_of) -> dict:
    """``policy.guarantee_``: the statement, its terms, and the evidence along the path."""
    what = "mean cost" if target.risk == "cost" else f"{target.risk} risk"
    if not cert.certified:
        statement = cert.statement()
    elif target.guarantee == "expectation":
        statement = (
            f"Averaged over calibration sets of {cert.n_samples} samples (conformal risk "
            f"control), the expected {what} of this policy on a new sample is at most "
            f"{target.epsilon:g}."
        )
    else:
        statement = (
            f"With probability at least {1 - target.delta:g} over the {cert.n_samples} "
            f"calibration samples, this policy's {what} on new data exchangeable with them is at "
            f"most {target.epsilon:g} ({cert.bound} bound, fixed-sequence testing"
            + (", path built on a separate split" if split is not None else "")
            + ")."
        )
    positions = _recorded_positions(cert.n_tested, certified.shape[0])
    tested = positions if order is None else order[positions]
    parameters = path.parameters[tested] if grid_of is None else [grid_of[int(i)] for i in tested]
    record = {
        "statement": statement,
        "certified": bool(cert.certified),
        "risk": target.risk,
        "loss": target.loss,
        "epsilon": target.epsilon,
        "delta": target.delta,
        "bound": cert.bound,
        "guarantee": target.guarantee,
        "n_calibration": int(n_test),
        "n_path": int(n_path),
        "calibration_split": split,
        "parameter": path.parameter,
        "n_tested": int(cert.n_tested),
        # The rows below: every tested setting, or RECORD_ROWS of millions (their positions in
        # the testing order), with the last certified and the last tested.
        "tested_positions": positions.tolist(),
        "tested_parameters": np.asarray(parameters, dtype=np.float64).tolist(),
        "tested_mean_costs": path.mean_costs[tested].astype(np.float64).tolist(),
        "upper_bounds": cert.upper_bounds_at(positions).astype(np.float64).tolist(),
        "n_certified": int(certified.shape[0]),
        "smallest_certifiable_epsilon": float(cert.smallest_certifiable_epsilon),
    }
    if grid_of is not None:
        record["grid_size"] = int(target.grid.shape[0])
    return record
