"""Certified targets on the shipped data: validity, certified speedup, hindsight, RC-EENN.

    python benchmarks/bench_guarantee.py [--splits 100] [--wsr-splits 30] [--n-cal 100 1000]
        [--epsilons 0.005 0.01 0.02 0.05] [--delta 0.1] [--datasets digits mnist1d ...]
        [--methods "maxprob grid" ...] [--no-rc-eenn] [--out guarantee.csv]

For each shipped dataset (val and test pooled), calibration size and random split: fit every
method's certified accuracy-gap target (``eeopt.fit(cal, method=M, tolerance=eps, delta=0.1,
bound=b)``; "maxprob grid" tests RC-EENN's grid of 101 thresholds, ``grid=101``) for each
bound, and measure on the rest of the samples

- whether the held-out accuracy gap exceeds epsilon (a violation; the certificate allows a
  share of at most delta of them),
- the certified speedup ``costs[-1] / held-out mean cost``,
- the speedup of the best setting in hindsight: the cheapest setting of the method's family,
  built and evaluated on the held-out samples, whose held-out gap is at most epsilon,

and, on the same splits, RC-EENN's procedure (``benchmarks/rc_eenn.py``: one shared
max-probability threshold on a 0.01 grid, UCB-WSR, and LTT as their code returns it), given the
calibration samples in a random order (their code takes the order given; the WSR bound is valid
for an order unrelated to the samples, and the pooled files are ordered val then test). The
output is one row per (dataset, n_cal, method, bound, epsilon) with the violation frequency, the
mean certified and hindsight speedups; ``--out`` writes the CSV, and a summary prints.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

import eeopt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rc_eenn import rc_eenn_threshold  # noqa: E402

METHODS = (
    ("maxprob", {}),
    ("maxprob grid", {"grid": 101}),
    ("maxprob per-exit", {"per_exit": True}),
    ("entropy", {}),
    ("margin", {}),
    ("patience", {}),
    ("beem-c", {"per_exit": False}),
    ("beem-a", {}),
)


def pooled(name: str) -> eeopt.ExitData:
    val, test = eeopt.datasets.load_both(name)
    return eeopt.ExitData(
        np.concatenate([val.probs, test.probs]),
        np.concatenate([val.labels, test.labels]),
        val.costs,
        input="probs",
    )


def gap(policy_or_exits, data: eeopt.ExitData) -> float:
    predictions = (
        policy_or_exits.predict(data)
        if hasattr(policy_or_exits, "predict")
        else np.take_along_axis(data.predictions, policy_or_exits[:, None], axis=1)[:, 0]
    )
    return float(np.mean(predictions != data.labels) - np.mean(~data.correct[:, -1]))


def hindsight(test: eeopt.ExitData, method: str, options: dict, epsilon: float) -> float:
    """Speedup of the cheapest setting of the family with held-out gap <= epsilon."""
    family = {k: v for k, v in options.items() if k != "grid"}  # a grid's family: every threshold
    path = eeopt.candidates(test, method=method.split()[0], verbose=False, **family)
    final_correct = np.count_nonzero(test.correct[:, -1])
    gaps = (final_correct - path.sweep.n_correct) / test.n_samples
    ok = np.flatnonzero(gaps <= epsilon + 1e-12)
    return float(test.costs[-1] / path.sweep.exact_mean_costs(ok).min())


def one_split(pool, n_cal, seed, epsilons, delta, bounds, rows, methods, rc_eenn=True):
    order = np.random.default_rng(seed).permutation(pool.n_samples)
    cal, test = pool.subset(np.sort(order[:n_cal])), pool.subset(np.sort(order[n_cal:]))
    for method, options in METHODS:
        if method not in methods:
            continue
        best = {eps: hindsight(test, method, options, eps) for eps in epsilons}
        for bound in bounds:
            for eps in epsilons:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    policy = eeopt.fit(
                        cal,
                        method=method.split()[0],
                        tolerance=eps,
                        delta=delta,
                        bound=bound,
                        random_state=seed,
                        verbose=False,
                        **options,
                    )
                result = policy.evaluate(test)
                rows[(method, bound, eps)].append(
                    (gap(policy, test) > eps, test.costs[-1] / result.mean_cost, best[eps])
                )
    if not rc_eenn:
        return
    # RC-EENN's code takes the samples in the order given; the WSR bound needs them in an
    # order unrelated to their values (the shipped files' order is not: val then test), so
    # they are shuffled as eeopt's certify does, with the split's seed.
    shuffle = np.random.default_rng(seed).permutation(cal.n_samples)
    conf, preds = cal.maxprob[shuffle], cal.predictions[shuffle]
    labels = cal.labels[shuffle]
    for name, kwargs in (
        ("rc-eenn ucb-wsr", {"procedure": "ucb-wsr"}),
        ("rc-eenn ltt (their code)", {"procedure": "ltt", "first_non_rejected": True}),
    ):
        for eps in epsilons:
            choice = rc_eenn_threshold(conf, preds, labels, eps, delta, "gap", **kwargs)
            fires = test.maxprob[:, :-1] > choice.threshold
            exits = np.where(fires.any(axis=1), fires.argmax(axis=1), test.n_exits - 1)
            speed = test.costs[-1] / test.costs[exits].mean()
            rows[(name, "-", eps)].append((gap(exits, test) > eps, speed, np.nan))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=eeopt.datasets.names())
    parser.add_argument("--n-cal", nargs="+", type=int, default=[100, 1000])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[0.005, 0.01, 0.02, 0.05])
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--splits", type=int, default=100)
    parser.add_argument("--wsr-splits", type=int, default=30, help="fewer: WSR bounds are slow")
    parser.add_argument(
        "--methods", nargs="+", default=[m for m, _ in METHODS], help="a subset of the methods"
    )
    parser.add_argument("--no-rc-eenn", action="store_true", help="skip RC-EENN's procedure")
    parser.add_argument("--out", default="guarantee.csv")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.methods) - {m for m, _ in METHODS})
    if unknown:
        parser.error(f"unknown --methods {unknown}; choose from {[m for m, _ in METHODS]}")
    table = []
    for name in args.datasets:
        pool = pooled(name)
        for n_cal in args.n_cal:
            if n_cal >= pool.n_samples:
                print(f"{name}: n_cal={n_cal} needs more than its {pool.n_samples} samples")
                continue
            rows = defaultdict(list)
            start = time.perf_counter()
            for seed in range(args.splits):
                bounds = ["hb", "binomial"] + (["wsr"] if seed < args.wsr_splits else [])
                one_split(
                    pool,
                    n_cal,
                    seed,
                    args.epsilons,
                    args.delta,
                    bounds,
                    rows,
                    args.methods,
                    not args.no_rc_eenn,
                )
            for (method, bound, eps), values in sorted(rows.items()):
                arr = np.array(values, dtype=float)
                table.append(
                    {
                        "dataset": name,
                        "n_cal": n_cal,
                        "method": method,
                        "bound": bound,
                        "epsilon": eps,
                        "splits": len(values),
                        "violation_frequency": arr[:, 0].mean(),
                        "certified_speedup": arr[:, 1].mean(),
                        "hindsight_speedup": np.nanmean(arr[:, 2]) if bound != "-" else np.nan,
                    }
                )
            print(f"{name} n_cal={n_cal}: {time.perf_counter() - start:.0f} s", flush=True)
    with open(args.out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    summarise(table, args.delta)


def summarise(table, delta) -> None:
    worst = max(table, key=lambda r: r["violation_frequency"])
    print(f"largest violation frequency: {worst['violation_frequency']:.3f} ({worst})")
    print("dataset  n_cal  eps    best eeopt (method, bound)       certified  hindsight  ratio")
    keys = sorted({(r["dataset"], r["n_cal"], r["epsilon"]) for r in table})
    for dataset, n_cal, eps in keys:
        here = [
            r
            for r in table
            if (r["dataset"], r["n_cal"], r["epsilon"]) == (dataset, n_cal, eps)
            and r["bound"] != "-"
        ]
        best = max(here, key=lambda r: r["certified_speedup"])
        ratio = best["certified_speedup"] / best["hindsight_speedup"]
        rc = [
            r
            for r in table
            if (r["dataset"], r["n_cal"], r["epsilon"]) == (dataset, n_cal, eps)
            and r["bound"] == "-"
        ]
        rc_text = "  ".join(
            f"{r['method']}: {r['certified_speedup']:.2f}x viol {r['violation_frequency']:.2f}"
            for r in rc
        )
        print(
            f"{dataset:8s} {n_cal:5d}  {eps:<5g}  {best['method'] + ', ' + best['bound']:30s}"
            f"  {best['certified_speedup']:.2f}x     {best['hindsight_speedup']:.2f}x     "
            f"{ratio:.2f}   {rc_text}"
        )


if __name__ == "__main__":
    main()
