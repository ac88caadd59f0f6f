"""Make the figures of the gallery page (``docs/gallery.md``) from eeopt's shipped data.

    python docs/gallery/make_gallery.py [--out docs/gallery] [--fast]

Every policy is fitted on a dataset's validation split and drawn on its test split. The SVG
files are byte-identical from run to run (fixed ``random_state``, fixed SVG hash salt, no
date). ``--fast`` (for the tests) keeps 600 samples per split and three methods.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import eeopt  # noqa: E402
from eeopt import datasets, plot, theory  # noqa: E402
from eeopt.report import heldout_fronts_figure  # noqa: E402
from eeopt.units import cost_unit  # noqa: E402

FAST_METHODS = ["maxprob", "msdnet", "beem-a"]


def _save(fig, path: Path) -> None:
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


def _splits(name: str, fast: bool) -> tuple[eeopt.ExitData, eeopt.ExitData]:
    return datasets.load_both(name, n_samples=600 if fast else None)


def fronts_figure(name: str, methods: list[str], fast: bool, out: Path) -> None:
    val, test = _splits(name, fast)
    fig = heldout_fronts_figure(
        val, test, methods, random_state=0, title=f"{name}: test set", verbose=False
    )
    _save(fig, out / f"fronts-{name}.svg")


def mnist1d_figures(methods: list[str], fast: bool, out: Path) -> None:
    val, test = _splits("mnist1d", fast)
    budget = float(val.costs[0] + 0.35 * (val.costs[-1] - val.costs[0]))
    results = {}
    for method in methods:
        policy = eeopt.fit(val, method=method, budget=budget, random_state=0, verbose=False)
        results[method] = policy.evaluate(test)
    unit = cost_unit(test.costs, test.metadata.get("cost_units"))
    fig, ax = plt.subplots(figsize=(6.5, 0.42 * len(results) + 1.3), constrained_layout=True)
    plot.plot_exit_distribution(results, ax=ax, title=f"mnist1d, budget {unit.format(budget)}")
    _save(fig, out / "exits-mnist1d.svg")

    fig, axes = plt.subplots(
        1, test.n_exits, figsize=(13, 2.4), constrained_layout=True, squeeze=False
    )
    plot.plot_score_separation(test, "maxprob", scale="log", axes=axes[0])
    _save(fig, out / "separation-mnist1d.svg")

    report = theory.theorem_3_1(eeopt.fit(val, method="beem-a"), test)
    fig, ax = plt.subplots(figsize=(7.4, 3.4), constrained_layout=True)
    plot.plot_theorem(report, ax=ax, title="BEEM-A on mnist1d (test set)")
    _save(fig, out / "theorem-mnist1d.svg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--fast", action="store_true", help="small and quick (for the tests)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    plt.rcParams["svg.hashsalt"] = "eeopt-gallery"
    methods = FAST_METHODS if args.fast else eeopt.method_names()
    for name in ["mnist1d"] if args.fast else ["mnist1d", "digits", "minilm-reviews"]:
        fronts_figure(name, methods, args.fast, args.out)
    mnist1d_figures(methods, args.fast, args.out)


if __name__ == "__main__":
    main()
