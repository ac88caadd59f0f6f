"""Comparison benchmark: repeated splits in parallel, and the report, as ratios in one process.

    python benchmarks/bench_compare.py [--dataset mnist1d] [--splits 20] [--repeats 3]
                                       [--skip-report]

- ``eeopt.compare`` over every method on a shipped dataset (val and test pooled, re-split
  ``--splits`` times, budgets at 25/50/75% of the final exit's cost), with ``n_jobs=1`` and
  ``n_jobs=2`` (the first ``n_jobs=2`` call starts joblib's worker processes; the best of
  ``--repeats`` interleaved runs of each is kept): the wall-time ratio (target <= 0.6) and
  whether the two tables are identical;
- the CPU time of each (joblib's workers included): on a shared machine the wall-time ratio
  says more about the other work than about eeopt, the CPU time does not;
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
import resource
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


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (joblib's workers, once shut
    down), user + system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_accounted(call, n_jobs: int) -> tuple[float, float]:
    """``(wall, cpu)`` of ``call(n_jobs)``, the workers' CPU included (they are shut down
    after the call so that the system accounts for them)."""
    from joblib.externals.loky import get_reusable_executor

    cpu = cpu_seconds()
    _, wall = timed(lambda: call(n_jobs))
    if n_jobs != 1:
        get_reusable_executor().shutdown(wait=True)
    return wall, cpu_seconds() - cpu


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
    tables = {}

    def call(n_jobs: int) -> None:
        tables[n_jobs] = eeopt.compare((val, test), None, n_jobs=n_jobs, **kwargs)

    # Interleaved repeats, each n_jobs=2 run with freshly started workers; the best of each is
    # the least disturbed by other work on the machine. CPU seconds count the workers too.
    walls, cpus = {1: [], 2: []}, {1: [], 2: []}
    for _ in range(args.repeats):
        for n_jobs in (1, 2):
            wall, cpu = run_accounted(call, n_jobs)
            walls[n_jobs].append(wall)
            cpus[n_jobs].append(cpu)
            print(f"n_jobs={n_jobs}: {wall:.1f} s wall, {cpu:.1f} s CPU (load {load()})")
    one, two = tables[1], tables[2]
    t_one, t_two = min(walls[1]), min(walls[2])
    c_one, c_two = min(cpus[1]), min(cpus[2])
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
            "CPU time (all processes), n_jobs=1 / n_jobs=2",
            f"{c_one:.1f} s / {c_two:.1f} s",
            f"{c_two / c_one:.2f}",
            f"idle 2 cores would give ~{(c_two / 2) / c_one:.2f}",
        ),
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
