"""The exit rule and its metrics: the one place that maps scores and thresholds to exits.

Every policy exits at the first exit whose rule fires (``score >= threshold``); the last exit
always fires. A sample's cost is ``costs[exit]`` and its prediction the argmax at that exit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def first_exit(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Index of the first exit whose score reaches its threshold.

    Parameters
    ----------
    scores : ndarray of shape (n_samples, n_exits)
    thresholds : ndarray of shape (n_exits,)
        ``+inf`` disables an exit; the last exit fires whatever its threshold.

    Returns
    -------
    exit_index : ndarray of shape (n_samples,), int64, in ``[0, n_exits)``
    """
    n_exits = scores.shape[1]
    if n_exits == 1:
        return np.zeros(scores.shape[0], dtype=np.int64)
    fires = scores[:, :-1] >= thresholds[:-1]
    # argmax finds the first True; rows with none get n_exits - 1 (the last exit).
    exit_index = fires.argmax(axis=1)
    exit_index[~fires[np.arange(fires.shape[0]), exit_index]] = n_exits - 1
    return exit_index


def at_exit(values: np.ndarray, exit_index: np.ndarray) -> np.ndarray:
    """``values[n, exit_index[n]]`` for a per-exit array of shape (n_samples, n_exits)."""
    return np.take_along_axis(values, exit_index[:, None], axis=1)[:, 0]


def mean_cost(exit_index: np.ndarray, costs: np.ndarray) -> float:
    """Mean of ``costs[exit_index]``, summed per exit so that it is exact and order-free."""
    return float(mean_cost_from_counts(np.bincount(exit_index, minlength=costs.shape[0]), costs))


def mean_cost_from_counts(counts: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Mean cost per sample from the number of samples leaving at each exit.

    This is eeopt's one mean-cost formula: evaluation, sweeps, BEEM's level sweep and EENet's
    calibration all call it, so that a figure a sweep reports is the figure
    ``policy.evaluate`` gives, bit for bit.

    The sum ``S = sum_k counts_k * costs_k`` is carried in double-double arithmetic (each
    product split exactly, each addition's rounding error kept) and divided by ``n`` once, so
    the result is the exact mean rounded to the nearest float in all but pathological cases.
    In particular every sample at exit k gives exactly ``costs[k]`` and equal costs give
    exactly that cost, so a budget equal to an exit's cost is reachable; and a row gives the
    same float whether it is computed alone or among many.

    Parameters
    ----------
    counts : array-like of shape (..., n_exits), int
        Samples per exit; each row is divided by its own total.
    costs : ndarray of shape (n_exits,)

    Returns
    -------
    ndarray of shape (...)
    """
    counts = np.asarray(counts, dtype=np.float64)  # exact: counts are below 2^53
    costs = np.asarray(costs, dtype=np.float64)
    high = np.zeros(counts.shape[:-1])
    low = np.zeros(counts.shape[:-1])
    for k in range(costs.shape[0]):
        product, product_error = _two_product(counts[..., k], costs[k])
        high, sum_error = _two_sum(high, product)
        low = low + (sum_error + product_error)
    n = counts.sum(axis=-1)
    quotient = high / n
    back, back_error = _two_product(quotient, n)
    remainder = ((high - back) - back_error) + low
    return quotient + remainder / n


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a + b`` and its rounding error, exactly (Knuth)."""
    total = a + b
    b_virtual = total - a
    return total, (a - (total - b_virtual)) + (b - b_virtual)


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a`` as a sum of two floats of 26 significant bits each (Dekker)."""
    c = 134217729.0 * a  # 2^27 + 1
    high = c - (c - a)
    return high, a - high


def _two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a * b`` and its rounding error, exactly (Dekker, without a fused multiply-add)."""
    product = a * b
    a_high, a_low = _split(a)
    b_high, b_low = _split(np.asarray(b))
    error = ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low
    return product, error


@dataclass
class EvaluationResult:
    """Accuracy and cost of a policy on a set of samples.

    Attributes
    ----------
    accuracy : float or None
        ``mean(prediction == label)``; None without labels.
    mean_cost : float
        ``mean(costs[exit_index])``, in the units of ``costs``.
    speedup : float
        ``costs[-1] / mean_cost``.
    exit_fractions : ndarray of shape (n_exits,)
        Share of samples leaving at each exit; sums to 1.
    exit_index : ndarray of shape (n_samples,)
    predictions : ndarray of shape (n_samples,)
    costs : ndarray of shape (n_exits,)
    intervals : dict
        Percentile bootstrap intervals, filled by ``evaluate(..., n_bootstrap=...)``.
    """

    accuracy: float | None
    mean_cost: float
    speedup: float
    exit_fractions: np.ndarray
    exit_index: np.ndarray
    predictions: np.ndarray
    costs: np.ndarray
    intervals: dict = field(default_factory=dict)

    def to_dict(self, include_samples: bool = False) -> dict[str, Any]:
        """Plain-Python summary; per-sample arrays only with ``include_samples=True``."""
        out: dict[str, Any] = {
            "accuracy": self.accuracy,
            "mean_cost": self.mean_cost,
            "speedup": self.speedup,
            "exit_fractions": self.exit_fractions.tolist(),
            "costs": self.costs.tolist(),
        }
        if self.intervals:
            out["intervals"] = {k: list(v) for k, v in self.intervals.items()}
        if include_samples:
            out["exit_index"] = self.exit_index.tolist()
            out["predictions"] = self.predictions.tolist()
        return out

    def __repr__(self) -> str:
        acc = "n/a" if self.accuracy is None else f"{self.accuracy:.4f}"
        fractions = ", ".join(f"{f:.3f}" for f in self.exit_fractions)
        return (
            f"EvaluationResult(accuracy={acc}, mean_cost={self.mean_cost:.6g}, "
            f"speedup={self.speedup:.3f}x, exit_fractions=[{fractions}])"
        )


def evaluate_exits(
    exit_index: np.ndarray,
    predictions: np.ndarray,
    labels: np.ndarray | None,
    costs: np.ndarray,
) -> EvaluationResult:
    """Metrics of section 1 for given exits.

    Parameters
    ----------
    exit_index : ndarray of shape (n_samples,)
    predictions : ndarray of shape (n_samples, n_exits)
        Every exit's predicted class; the one at each sample's exit is its prediction.
    labels : ndarray of shape (n_samples,) or None
    costs : ndarray of shape (n_exits,)
    """
    n_exits = costs.shape[0]
    chosen = at_exit(predictions, exit_index)
    counts = np.bincount(exit_index, minlength=n_exits)
    avg_cost = float(mean_cost_from_counts(counts, costs))
    accuracy = None if labels is None else float(np.mean(chosen == labels))
    return EvaluationResult(
        accuracy=accuracy,
        mean_cost=avg_cost,
        speedup=float(costs[-1] / avg_cost),
        exit_fractions=counts / exit_index.shape[0],
        exit_index=exit_index,
        predictions=chosen,
        costs=costs,
    )


def bootstrap_intervals(
    per_sample: dict[str, np.ndarray],
    n_bootstrap: int,
    confidence: float,
    rng: np.random.Generator,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of the means of per-sample quantities.

    Parameters
    ----------
    per_sample : dict of name -> ndarray of shape (n_samples,)
        E.g. ``{"accuracy": correct, "mean_cost": costs[exit_index]}``.
    n_bootstrap : int
        Number of resamples (with replacement, of the samples).
    confidence : float
        Coverage in (0, 1), e.g. 0.95 for the 2.5 and 97.5 percentiles.
    """
    names = list(per_sample)
    n = next(iter(per_sample.values())).shape[0]
    stacked = np.stack([np.asarray(per_sample[k], dtype=np.float64) for k in names])
    means = np.empty((len(names), n_bootstrap))
    # Chunks keep the index matrix around 8 MB whatever n is.
    chunk = max(1, min(n_bootstrap, 1_000_000 // max(n, 1)))
    for start in range(0, n_bootstrap, chunk):
        stop = min(start + chunk, n_bootstrap)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[:, start:stop] = stacked[:, idx].mean(axis=2)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail], axis=1)
    return {k: (float(lo), float(hi)) for k, lo, hi in zip(names, low, high, strict=True)}
