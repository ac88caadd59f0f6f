"""Publication figures: Pareto fronts, exit distributions, score separation, Theorem 3.1.

Every function draws on an Axes (a new one if none is given) and returns it, so figures compose
and save to vector formats (``fig.savefig("front.pdf")``). Colours are the Okabe-Ito palette,
distinguishable with the common colour-vision deficiencies; lines also differ in marker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eeopt import _validation as v
from eeopt.data import ExitData, as_exit_data
from eeopt.engine import EvaluationResult
from eeopt.frontier import Front

#: Okabe & Ito (2008), "Color Universal Design".
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _axes(ax: Any = None, figsize: tuple[float, float] = (4.5, 3.2)) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return ax


def _cost_label(cost_units: str | None) -> str:
    return f"Mean cost per sample ({cost_units})" if cost_units else "Mean cost per sample"


def plot_fronts(
    fronts: Front | Sequence[Front] | Mapping[str, Front],
    *,
    oracle: Front | None = None,
    final: tuple[float, float] | None = None,
    cost_units: str | None = None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Accuracy against mean cost for several methods, with the oracle and the final exit.

    Parameters
    ----------
    fronts : Front, list of Front, or dict label -> Front
    oracle : Front, optional
        Drawn as a dashed black staircase: the limit no policy can pass.
    final : (cost, accuracy), optional
        The final exit alone, marked with a star.
    cost_units : str, optional
        Unit of the cost axis ("FLOPs", "ms", ...).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    if isinstance(fronts, Front):
        fronts = [fronts]
    items = list(fronts.items()) if isinstance(fronts, Mapping) else [(f.method, f) for f in fronts]
    for i, (label, front) in enumerate(items):
        many = len(front) > 40
        ax.plot(
            front.mean_costs,
            100 * front.accuracies,
            drawstyle="steps-post",
            color=PALETTE[i % len(PALETTE)],
            marker=None if many else MARKERS[i % 8],
            markersize=3.5,
            linewidth=1.4,
            label=label,
        )
    if oracle is not None:
        ax.plot(
            oracle.mean_costs,
            100 * oracle.accuracies,
            drawstyle="steps-post",
            color="black",
            linestyle="--",
            linewidth=1.0,
            label="oracle",
        )
    if final is not None:
        ax.plot(
            [final[0]],
            [100 * final[1]],
            marker="*",
            markersize=11,
            color="black",
            linestyle="none",
            label="final exit",
        )
    ax.set_xlabel(_cost_label(cost_units))
    ax.set_ylabel("Accuracy (%)")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3, linewidth=0.5)
    ax.legend(frameon=False, fontsize="small")
    return ax


def plot_exit_distribution(
    results: Mapping[str, EvaluationResult | Sequence[float]],
    *,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Grouped bars: the share of samples leaving at each exit, per method.

    Parameters
    ----------
    results : dict label -> EvaluationResult (or exit fractions of shape (n_exits,))
    """
    ax = _axes(ax)
    labels = list(results)
    fractions = [np.asarray(getattr(r, "exit_fractions", r), dtype=float) for r in results.values()]
    n_exits = fractions[0].shape[0]
    width = 0.8 / max(len(labels), 1)
    exits = np.arange(n_exits)
    for i, (label, f) in enumerate(zip(labels, fractions, strict=True)):
        ax.bar(
            exits + (i - (len(labels) - 1) / 2) * width,
            100 * f,
            width=width,
            color=PALETTE[i % len(PALETTE)],
            label=label,
        )
    ax.set_xticks(exits, [str(k + 1) for k in exits])
    ax.set_xlabel("Exit")
    ax.set_ylabel("Samples leaving (%)")
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, fontsize="small")
    ax.grid(True, axis="y", alpha=0.3, linewidth=0.5)
    return ax


def plot_score_separation(
    data: ExitData | Any,
    scores: str | np.ndarray = "maxprob",
    *,
    exits: Sequence[int] | None = None,
    bins: int = 30,
    axes: Any = None,
    score_label: str | None = None,
) -> np.ndarray:
    """Histograms of a score for correct and wrong predictions, one panel per exit.

    A score that separates the two well makes a good exit criterion (EENet, figure 3).

    Parameters
    ----------
    data : ExitData with labels
    scores : str or ndarray of shape (n_samples, n_exits)
        A score name (``maxprob``, ``entropy``, ...) or precomputed scores (e.g. a policy's
        ``compute_scores(data)``).
    exits : sequence of int, optional
        Which exits (0-based); default all.
    axes : array of Axes, optional

    Returns
    -------
    ndarray of matplotlib Axes
    """
    data = as_exit_data(data, name="data")
    correct = data.correct
    if isinstance(scores, str):
        score_label = score_label or scores
        scores = data.score(scores)
    else:
        scores = v.check_float_array(scores, "scores", ndim=2)
        if scores.shape != correct.shape:
            raise ValueError(f"scores must have shape {correct.shape}, got {scores.shape}.")
    exits = list(range(data.n_exits)) if exits is None else list(exits)
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(
            1,
            len(exits),
            figsize=(2.4 * len(exits), 2.4),
            sharey=False,
            constrained_layout=True,
            squeeze=False,
        )
        axes = axes[0]
    axes = np.atleast_1d(axes)
    edges = np.linspace(scores.min(), scores.max(), bins + 1)
    for ax, k in zip(axes, exits, strict=True):
        ax.hist(scores[correct[:, k], k], bins=edges, color=PALETTE[0], alpha=0.7, label="correct")
        ax.hist(scores[~correct[:, k], k], bins=edges, color=PALETTE[1], alpha=0.7, label="wrong")
        ax.set_title(f"Exit {k + 1}")
        ax.set_xlabel(score_label or "score")
    axes[0].set_ylabel("Samples")
    axes[0].legend(frameon=False, fontsize="small")
    return axes


def plot_theorem(report: Any, *, ax: Any = None, title: str | None = None) -> Any:
    """BEEM's Theorem 3.1 per early exit: the bound on q against the measured errors.

    Parameters
    ----------
    report : eeopt.theory.TheoremReport
        From :func:`eeopt.theory.theorem_3_1`.

    Draws, per early exit i (1-based), the exit's error rate ``q_i`` against the largest
    ``q_i`` the theorem allows (``max_exit_error``), the measured error of the samples that
    leave at i, and the final exit's error rate ``p`` as a horizontal line. The condition holds
    where the ``q`` marker is below the bound marker.
    """
    ax = _axes(ax, figsize=(5.0, 3.2))
    exits = np.asarray(report.exit_number)
    ax.plot(
        exits,
        100 * np.asarray(report.bound),
        marker="v",
        color=PALETTE[0],
        linestyle="-",
        label="bound on $q_i$",
    )
    ax.plot(
        exits,
        100 * np.asarray(report.q),
        marker="o",
        color=PALETTE[1],
        linestyle="--",
        label="$q_i$: error rate of exit $i$",
    )
    ax.plot(
        exits,
        100 * np.asarray(report.measured_error),
        marker="s",
        color=PALETTE[2],
        linestyle=":",
        label="error of samples leaving at $i$",
    )
    ax.axhline(100 * report.p, color="black", linewidth=1.0, label="$p$: final exit error")
    ax.set_xticks(exits, [str(int(i)) for i in exits])
    ax.set_xlabel("Exit $i$")
    ax.set_ylabel("Error rate (%)")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3, linewidth=0.5)
    ax.legend(frameon=False, fontsize="small")
    return ax
