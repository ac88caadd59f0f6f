"""Comparison benchmark: repeated splits in parallel, and the report, as ratios in one process.

    python benchmarks/bench_compare.py [--dataset mnist1d] [--splits 20] [--repeats 3]
                                       [--skip-report]

- ``eeopt.compare`` over every method on a shipped dataset (val and test pooled, re-split
  ``--splits`` times, budgets at 25/50/75% of the final exit's cost), with ``n_jobs=1`` and
  ``n_jobs=2`` (the first ``n_jobs=2`` call starts joblib's worker processes; the best of
  ``--repeats`` interleaved runs of each is kept): the wall-time ratio (target <= 0.6) and
  whether the two tables are identical;
- the time of the two-stage paired bootstrap inside it (the summary), for scale;
- ``eeopt report DATASET`` as a user runs it (a subprocess, the default five budgets, the given
  split): its wall time (target < 60 s on 2 cores).

Prints the machine, the load average before and after, and a Markdown table for
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

import eeopt
from eeopt import resampling


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--skip-report", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs; best kept")
    args = parser.parse_args()

    val, test = eeopt.datasets.load_both(args.dataset)
    print(
        f"{args.dataset}: {val.n_samples} + {test.n_samples} samples pooled, {args.splits} splits"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; numpy {np.__version__}; "
        f"load average before: {load()}"
    )
    kwargs = dict(
        cost_fractions=[0.25, 0.5, 0.75], n_splits=args.splits, random_state=0, verbose=False
    )
    # Interleaved repeats; the best of each is the least disturbed by other work on the machine.
    t_ones, t_twos = [], []
    for _ in range(args.repeats):
        one, t = timed(lambda: eeopt.compare((val, test), None, n_jobs=1, **kwargs))
        t_ones.append(t)
        two, t = timed(lambda: eeopt.compare((val, test), None, n_jobs=2, **kwargs))
        t_twos.append(t)
        print(f"n_jobs=1 {t_ones[-1]:.1f} s, n_jobs=2 {t_twos[-1]:.1f} s (load {load()})")
    t_one, t_two = min(t_ones), min(t_twos)
    same = one.to_csv() == two.to_csv() and one.to_csv(level="summary") == two.to_csv(
        level="summary"
    )
    n_fits = len(one.runs)

    # The summary's bootstrap alone, on the same per-sample arrays (for scale).
    columns = [r for r in one.runs if r["accuracy"] is not None]
    n_test = columns[0]["n_test"]
    values = np.zeros((args.splits, n_test, 2 * len(columns) // args.splits))
    _, t_boot = timed(lambda: resampling.split_bootstrap(values, 1000, np.random.default_rng(0)))

    rows = [
        ("`compare`, every method, n_jobs=1", f"{t_one:.1f} s", "1", f"{n_fits} fits"),
        (
            "`compare`, every method, n_jobs=2",
            f"{t_two:.1f} s",
            f"{t_two / t_one:.2f}",
            "target <= 0.6: " + ("met" if t_two / t_one <= 0.6 else "**not met**"),
        ),
        ("same table with n_jobs=2", "", "", "yes" if same else "**no**"),
        (
            "two-stage bootstrap of the summary (1000 resamples)",
            f"{t_boot:.1f} s",
            f"{t_boot / t_one:.2f}",
            "",
        ),
    ]
    if not args.skip_report:
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, "-m", "eeopt.cli", "report", args.dataset, "-o", out, "-q"]
            done, t_report = timed(
                lambda: subprocess.run(command, capture_output=True, text=True, check=False)
            )
        verdict = "met" if done.returncode == 0 and t_report < 60 else "**not met**"
        rows.append(
            (f"`eeopt report {args.dataset}`", f"{t_report:.1f} s", "", f"target < 60 s: {verdict}")
        )
    print(f"load average after: {load()}\n")
    print("| measurement | time | ratio | note |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
