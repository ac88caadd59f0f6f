"""Publication figures: Pareto fronts, exit distributions, score separation, Theorem 3.1.

Every function draws on an Axes (a new one if none is given) and returns it, so figures compose
and save to vector formats (``fig.savefig("front.pdf")``). Each method has one colour and marker
in every figure (:func:`method_style`; Okabe-Ito colours, distinguishable with the common
colour-vision deficiencies). Costs are shown in engineering units chosen from the data
(:mod:`eeopt.units`) and exits are numbered from 0, as in the API.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eeopt import _validation as v
from eeopt.data import ExitData, as_exit_data
from eeopt.engine import EvaluationResult
from eeopt.frontier import Front
from eeopt.units import CostUnit, cost_unit

#: Okabe & Ito (2008), "Color Universal Design".
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass(frozen=True)
class Style:
    """How one method is drawn in every figure of eeopt."""

    color: str
    marker: str | None
    linestyle: str = "-"

    def line(self, markers: bool = True) -> dict[str, Any]:
        """Keyword arguments for ``Axes.plot``."""
        out: dict[str, Any] = {"color": self.color, "linestyle": self.linestyle}
        if markers and self.marker:
            # A dark edge keeps the light colours (yellow, sky blue) visible on white.
            out.update(marker=self.marker, markeredgecolor="#333333", markeredgewidth=0.5)
        return out


#: One colour and marker per method, the same in every figure (Okabe-Ito colours, with the
#: grey of R's ``palette.colors("Okabe-Ito")``); the oracle and the final exit in black.
METHOD_STYLES: dict[str, Style] = {
    "maxprob": Style("#0072B2", "o"),
    "entropy": Style("#56B4E9", "v"),
    "margin": Style("#009E73", "D"),
    "patience": Style("#999999", "X"),
    "msdnet": Style("#E69F00", "^"),
    "eenet": Style("#CC79A7", "s"),
    "beem-a": Style("#D55E00", "P"),
    "beem-c": Style("#F0E442", "h"),
    "oracle": Style("#000000", None, "--"),
    "final-exit": Style("#000000", "*", "none"),
}
#: Markers left for names without a style of their own (dashed, so they never pass for one).
_SPARE_MARKERS = ("<", ">", "d", "p", "H", "8")
#: Right and wrong predictions in the score histograms.
RIGHT_COLOR, WRONG_COLOR = "#0072B2", "#D55E00"


def method_style(name: str) -> Style:
    """The style of ``name``: fixed for eeopt's methods; any other name gets one chosen by a
    hash of the name (CRC-32), so it too is the same in every figure and every run."""
    if name in METHOD_STYLES:
        return METHOD_STYLES[name]
    code = zlib.crc32(str(name).encode("utf-8"))
    colors = [s.color for k, s in METHOD_STYLES.items() if k not in ("oracle", "final-exit")]
    return Style(
        colors[code % len(colors)],
        _SPARE_MARKERS[(code // len(colors)) % len(_SPARE_MARKERS)],
        "--",
    )


def _axes(ax: Any = None, figsize: tuple[float, float] = (4.5, 3.2)) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return ax


def _unit(values: Any, cost_units: str | None, unit: CostUnit | None) -> CostUnit:
    return unit if unit is not None else cost_unit(values, cost_units)


def plot_fronts(
    fronts: Front | Sequence[Front] | Mapping[str, Front],
    *,
    oracle: Front | None = None,
    final: tuple[float, float] | None = None,
    cost_units: str | None = None,
    unit: CostUnit | None = None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Accuracy against mean cost for several methods, with the oracle and the final exit.

    Parameters
    ----------
    fronts : Front, list of Front, or dict label -> Front
        Each drawn in its method's style (:func:`method_style` of the label if it has one,
        else of ``front.method``).
    oracle : Front, optional
        Drawn as a dashed black staircase: the limit no policy can pass.
    final : (cost, accuracy), optional
        The final exit alone, marked with a star.
    cost_units : str, optional
        Units of the costs ("FLOPs", "s", ...): the axis is shown in an engineering unit
        chosen from the largest cost drawn (MFLOPs, ms, ...).
    unit : CostUnit, optional
        The unit to show costs in, instead of choosing one.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    if isinstance(fronts, Front):
        fronts = [fronts]
    items = list(fronts.items()) if isinstance(fronts, Mapping) else [(f.method, f) for f in fronts]
    drawn = [f.mean_costs for _, f in items] + ([oracle.mean_costs] if oracle is not None else [])
    if final is not None:
        drawn.append(np.array([final[0]]))
    unit = _unit(np.concatenate(drawn) if drawn else [], cost_units, unit)
    for label, front in items:
        style = method_style(label if label in METHOD_STYLES else front.method)
        ax.plot(
            unit.scale(front.mean_costs),
            100 * front.accuracies,
            drawstyle="steps-post",
            markersize=3.5,
            linewidth=1.4,
            label=label,
            **style.line(markers=len(front) <= 40),
        )
    if oracle is not None:
        ax.plot(
            unit.scale(oracle.mean_costs),
            100 * oracle.accuracies,
            drawstyle="steps-post",
            linewidth=1.0,
            label="oracle",
            **METHOD_STYLES["oracle"].line(),
        )
    if final is not None:
        ax.plot(
            unit.scale([final[0]]),
            [100 * final[1]],
            markersize=11,
            label="final exit",
            **METHOD_STYLES["final-exit"].line(),
        )
    ax.set_xlabel(unit.axis_label())
    ax.set_ylabel("Accuracy (%)")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3, linewidth=0.5)
    ax.legend(frameon=False, fontsize="small")
    return ax


def plot_comparison(
    table: Any,
    *,
    dataset: str | None = None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Mean test accuracy against mean test cost of each method at each budget of a
    comparison, with the intervals as error bars and the final exit as a star.

    Parameters
    ----------
    table : ComparisonTable
        From :func:`eeopt.compare`.
    dataset : str, optional
        Needed when the table holds several datasets.

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax, figsize=(5.5, 3.6))
    name = table.dataset_name(dataset)
    unit = table.unit(name)
    rows = [r for r in table.summary if r["dataset"] == name and r["accuracy"] is not None]
    for method in table.methods:
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["mean_cost"])
        if not mine:
            continue
        cost = np.array([r["mean_cost"] for r in mine])
        accuracy = np.array([r["accuracy"] for r in mine])
        error = np.abs(
            np.array([[r["accuracy_low"], r["accuracy_high"]] for r in mine]).T - accuracy
        )
        style = method_style(method)
        ax.errorbar(
            unit.scale(cost),
            100 * accuracy,
            yerr=100 * error,
            capsize=2,
            markersize=4,
            linewidth=1.2,
            label=method,
            **style.line(),
        )
    final = table.final(name)
    ax.plot(
        unit.scale([final["mean_cost"]]),
        [100 * final["accuracy"]],
        markersize=11,
        label="final exit",
        **METHOD_STYLES["final-exit"].line(),
    )
    ax.set_xlabel(unit.axis_label("Mean test cost per sample"))
    ax.set_ylabel("Test accuracy (%)")
    ax.set_title(title if title is not None else name)
    ax.grid(True, alpha=0.3, linewidth=0.5)
    ax.legend(frameon=False, fontsize="small", ncols=2)
    return ax


def plot_exit_distribution(
    results: Mapping[str, EvaluationResult | Sequence[float]],
    *,
    kind: str = "stacked",
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """The share of samples leaving at each exit, per method.

    Parameters
    ----------
    results : dict label -> EvaluationResult (or exit fractions of shape (n_exits,))
    kind : {"stacked", "grouped"}, default="stacked"
        ``"stacked"``: one horizontal bar per method, a segment per exit (exit 0 on the
        left, shaded light to dark), labelled with its percentage where it is wide enough.
        ``"grouped"``: bars per exit, one per method in its colour.

    Returns
    -------
    matplotlib Axes
    """
    v.check_choice(kind, "kind", ("stacked", "grouped"))
    labels = list(results)
    fractions = [np.asarray(getattr(r, "exit_fractions", r), dtype=float) for r in results.values()]
    if kind == "grouped":
        return _grouped_exits(labels, fractions, ax, title)
    ax = _axes(ax, figsize=(6.0, 0.45 * len(labels) + 1.1))
    n_exits = fractions[0].shape[0]
    import matplotlib

    shades = matplotlib.colormaps["viridis_r"](np.linspace(0.08, 0.92, n_exits))
    rows = np.arange(len(labels))[::-1]  # the first method on top
    left = np.zeros(len(labels))
    for k in range(n_exits):
        width = 100 * np.array([f[k] for f in fractions])
        bars = ax.barh(rows, width, left=left, color=shades[k], height=0.7, label=f"exit {k}")
        dark = np.dot(shades[k][:3], [0.299, 0.587, 0.114]) < 0.5
        texts = [f"{w:.0f}%" if w >= 7 else "" for w in width]
        ax.bar_label(
            bars, texts, label_type="center", fontsize="x-small", color="white" if dark else "black"
        )
        left += width
    ax.set_yticks(rows, labels)
    ax.set_xlim(0, 100)
    ax.set_xlabel("Samples leaving at each exit (%)")
    if title:
        ax.set_title(title)
    ax.legend(
        frameon=False,
        fontsize="x-small",
        ncols=min(n_exits, 8),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.35 if len(labels) < 4 else -0.18),
    )
    return ax


def _grouped_exits(labels: list[str], fractions: list[np.ndarray], ax: Any, title: Any) -> Any:
    ax = _axes(ax)
    n_exits = fractions[0].shape[0]
    width = 0.8 / max(len(labels), 1)
    exits = np.arange(n_exits)
    for i, (label, f) in enumerate(zip(labels, fractions, strict=True)):
        ax.bar(
            exits + (i - (len(labels) - 1) / 2) * width,
            100 * f,
            width=width,
            color=method_style(label).color,
            label=label,
        )
    ax.set_xticks(exits, [str(k) for k in exits])
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
    scale: str = "density",
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
        Which exits (0-based, as in the API); default all.
    scale : {"density", "log", "count"}, default="density"
        ``"density"``: each group's histogram has area 1, so the rare wrong answers of a late
        exit show as clearly as the many right ones; ``"log"``: counts on a log axis;
        ``"count"``: plain counts (the wrong answers may vanish).
    axes : array of Axes, optional

    Returns
    -------
    ndarray of matplotlib Axes
    """
    v.check_choice(scale, "scale", ("density", "log", "count"))
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
            1, len(exits), figsize=(2.4 * len(exits), 2.4), constrained_layout=True, squeeze=False
        )
        axes = axes[0]
    axes = np.atleast_1d(axes)
    edges = np.linspace(scores.min(), scores.max(), bins + 1)
    for ax, k in zip(axes, exits, strict=True):
        for group, color, label in (
            (correct[:, k], RIGHT_COLOR, "right"),
            (~correct[:, k], WRONG_COLOR, "wrong"),
        ):
            ax.hist(
                scores[group, k],
                bins=edges,
                color=color,
                alpha=0.6,
                label=label,
                density=scale == "density" and group.any(),
                log=scale == "log",
            )
        ax.set_title(f"Exit {k}  ({100 * correct[:, k].mean():.0f}% right)", fontsize="small")
        ax.set_xlabel(score_label or "score")
    axes[0].set_ylabel({"density": "Density", "log": "Samples (log)", "count": "Samples"}[scale])
    axes[0].legend(frameon=False, fontsize="small")
    return axes


def plot_theorem(
    report: Any, *, ax: Any = None, title: str | None = None, clip: bool = True
) -> Any:
    """BEEM's Theorem 3.1 per early exit: the bound on an exit's error rate against the
    measured errors.

    Parameters
    ----------
    report : eeopt.theory.TheoremReport
        From :func:`eeopt.theory.theorem_3_1`.
    clip : bool, default=True
        Clip the error axis a little above the measured errors, so that a bound near 100%
        (where few samples leave) does not flatten everything else; a clipped bound is
        drawn at the top edge with an upward triangle and its value.

    Draws, per early exit k (0-based as in the API; the paper's i = k + 1), the exit's error
    rate ``q`` against the largest the theorem allows (``max_exit_error``), the measured error
    of the samples that leave at k, and the final exit's error rate ``p`` as a horizontal line.
    The condition holds where the ``q`` marker is below the bound marker.
    """
    ax = _axes(ax, figsize=(5.0, 3.2))
    exits = np.asarray(report.exit_number) - 1
    bound = 100 * np.asarray(report.bound, dtype=float)
    measured = [100 * np.asarray(report.q), 100 * np.asarray(report.measured_error)]
    top = 100.0
    if clip:
        seen = np.concatenate([m[np.isfinite(m)] for m in measured] + [[100 * report.p]])
        top = min(100.0, max(1.25 * float(seen.max()), 1.0))
    _draw_clipped(ax, exits, bound, top, label="bound on q")
    ax.plot(
        exits,
        measured[0],
        marker="o",
        color=WRONG_COLOR,
        linestyle="--",
        label="q: error rate of the exit",
    )
    ax.plot(
        exits,
        measured[1],
        marker="s",
        color="#009E73",
        linestyle=":",
        label="error of samples leaving there",
    )
    ax.axhline(100 * report.p, color="black", linewidth=1.0, label="p: final exit's error")
    ax.set_ylim(0, top * 1.02)
    ax.set_xticks(exits, [str(int(k)) for k in exits])
    ax.set_xlabel("Early exit (the paper's i = exit + 1)")
    ax.set_ylabel("Error rate (%)")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3, linewidth=0.5)
    ax.legend(frameon=False, fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


def _draw_clipped(ax: Any, x: np.ndarray, y: np.ndarray, top: float, label: str) -> None:
    """``y`` against ``x``, cut at ``top``; each value above it is marked on the top edge
    with an upward triangle and written next to it."""
    ax.plot(x, np.minimum(y, top), marker="v", color=RIGHT_COLOR, label=label)
    over = y > top
    if not over.any():
        return
    ax.plot(
        x[over],
        np.full(over.sum(), top),
        marker="^",
        linestyle="none",
        color=RIGHT_COLOR,
        markersize=7,
        clip_on=False,
    )
    for k, value in zip(x[over], y[over], strict=True):
        ax.annotate(
            f"{value:.0f}%",
            (k, top),
            xytext=(-6, -4),
            textcoords="offset points",
            ha="right",
            va="top",
            fontsize="x-small",
            color=RIGHT_COLOR,
        )
