"""Why a method wins or loses: score quality per exit, the gap to the oracle, recall.

- :func:`score_auroc`: how well each confidence score tells a right exit from a wrong one
  (scikit-learn's ``roc_auc_score`` of the score for "this exit is right"), per exit.
- :func:`static_accuracy`: the best accuracy at a mean cost without looking at the input (a
  fixed random mix of two exits); with the oracle it brackets every policy, and
  ``ComparisonTable.pivot("gap_closed")`` reports the share of the gap between the two that
  each method closes.
- :func:`recall_accuracy`: what a policy's exits would give if each sample could answer with
  any exit it has already passed (recall, as in T-Tamer, 2025): with the most confident of them,
  and with the right one when any is right (the recall ceiling at those exits).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from eeopt.data import as_exit_data
from eeopt.engine import at_exit
from eeopt.pivot import Pivot


def score_auroc(data: Any, scores: Sequence[str] | None = None) -> Pivot:
    """AUROC of each score for "this exit's prediction is right", per exit.

    Parameters
    ----------
    data : ExitData with labels
    scores : sequence of str, optional
        Names from ``eeopt.scores.SCORE_NAMES``; default ``maxprob``, ``entropy``, ``margin``.

    Returns
    -------
    Pivot
        Rows: scores; columns: exits (0-based, as in the API). 0.5 is chance, 1 a perfect
        separation; NaN where an exit is always right or always wrong (AUROC undefined).

    Examples
    --------
    >>> import eeopt
    >>> from eeopt.diagnostics import score_auroc
    >>> auroc = score_auroc(eeopt.datasets.load("mnist1d", "test"), ["maxprob"])
    >>> [f"{x:.2f}" for x in auroc.mean[0]]
    ['0.80', '0.87', '0.94', '0.95', '0.95', '0.96', '0.96']
    """
    from sklearn.metrics import roc_auc_score

    data = as_exit_data(data, name="data")
    data.require_labels("score_auroc")
    names = ["maxprob", "entropy", "margin"] if scores is None else list(scores)
    if not names:
        raise ValueError("scores must name at least one score, e.g. ['maxprob'].")
    correct = data.correct
    values = np.full((len(names), data.n_exits), np.nan)
    for i, name in enumerate(names):
        score = data.score(name)
        for k in range(data.n_exits):
            if 0 < correct[:, k].sum() < data.n_samples:
                values[i, k] = roc_auc_score(correct[:, k], score[:, k])
    return Pivot(
        rows=names,
        columns=[str(k) for k in range(data.n_exits)],
        mean=values,
        kinds=["auroc"] * data.n_exits,
        title="AUROC of each score for 'this exit is right'",
        column_title="Exit",
        row_title="score",
        notes=["0.5 is chance, 1 separates right from wrong perfectly."]
        + (["n/a: the exit is always right or always wrong."] if np.isnan(values).any() else []),
    )


def static_accuracy(costs: Any, exit_accuracy: Any, mean_cost: Any) -> np.ndarray:
    """Best accuracy at ``mean_cost`` of a policy that does not look at the input.

    Such a policy sends a fixed share of samples to each exit; the best mix at a given mean
    cost uses at most two exits, so the answer is the upper concave envelope of the points
    ``(costs[k], exit_accuracy[k])`` (and the best single exit within the cost beyond the last
    point). NaN below ``costs[0]``.

    Parameters
    ----------
    costs : array-like of shape (n_exits,)
        Cumulative exit costs, non-decreasing.
    exit_accuracy : array-like of shape (n_exits,)
    mean_cost : float or array-like

    Returns
    -------
    ndarray of the shape of ``mean_cost``
    """
    c = np.asarray(costs, dtype=np.float64)
    a = np.asarray(exit_accuracy, dtype=np.float64)
    x = np.asarray(mean_cost, dtype=np.float64)
    flat = x.ravel()
    best = np.full(flat.shape, np.nan)
    for i in range(c.size):
        alone = np.where(flat >= c[i], a[i], np.nan)
        best = np.fmax(best, alone)
        for j in range(i + 1, c.size):
            if c[j] == c[i]:
                continue
            share = (flat - c[i]) / (c[j] - c[i])  # share of samples sent to exit j
            mixed = np.where((share >= 0) & (share <= 1), a[i] + share * (a[j] - a[i]), np.nan)
            best = np.fmax(best, mixed)
    return best.reshape(x.shape)


def recall_accuracy(
    data: Any, exit_index: Any, score: str = "maxprob"
) -> tuple[float, float, float]:
    """Accuracy at given exits without and with recall of the exits passed on the way.

    Parameters
    ----------
    data : ExitData with labels
    exit_index : array-like of shape (n_samples,)
        Each sample's exit (a policy's ``exit_index(data)``).
    score : str, default="maxprob"
        The confidence that picks the answer among the exits passed.

    Returns
    -------
    (at_exit, most_confident, ceiling) : tuple of float
        Accuracy answering with the exit's own prediction (the policy as it is); with the
        most confident of exits ``0 .. exit`` (recall by a rule that needs no labels); and the
        share of samples that some exit in ``0 .. exit`` gets right (recall with an oracle's
        choice: no answer rule at these exits can do better).
    """
    data = as_exit_data(data, name="data")
    correct = data.correct
    exits = np.asarray(exit_index)
    if exits.shape != (data.n_samples,):
        raise ValueError(f"exit_index must have shape ({data.n_samples},), got {exits.shape}.")
    confidence = data.score(score)
    best = _running_argmax(confidence)
    passed_right = np.maximum.accumulate(correct, axis=1)
    rows = np.arange(data.n_samples)
    return (
        float(at_exit(correct, exits).mean()),
        float(correct[rows, at_exit(best, exits)].mean()),
        float(at_exit(passed_right, exits).mean()),
    )


def _running_argmax(values: np.ndarray) -> np.ndarray:
    """``out[n, k]`` = the first index of the largest of ``values[n, :k + 1]``."""
    out = np.zeros(values.shape, dtype=np.int64)
    best = values[:, 0].copy()
    for k in range(1, values.shape[1]):
        better = values[:, k] > best
        best = np.where(better, values[:, k], best)
        out[:, k] = np.where(better, k, out[:, k - 1])
    return out
