"""Core benchmark: evaluation and fitting cost as ratios against a floor, in one process.

    python benchmarks/bench_core.py [--n 1000000] [--exits 12] [--classes 10]

Builds float32 probabilities (n, exits, classes) of a synthetic model whose exits sharpen with
depth, then reports, as ratios measured in the same run:
- evaluating a fitted policy on the raw array (validation + scores + exit rule + metrics)
  against the floor of one ``argmax`` pass over the array (target <= 3x);
- fitting a budget threshold against evaluating one fixed threshold (target <= 10x);
- the per-sample reference loop of the tests (on a subset, scaled) against evaluation;
- peak extra memory of evaluation against the input array's size (target < 2x).
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

import eeopt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference import ref_evaluate  # noqa: E402


def make_probs(n: int, n_exits: int, n_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n)
    probs = np.empty((n, n_exits, n_classes), dtype=np.float32)
    strength = np.linspace(0.3, 4.0, n_exits, dtype=np.float32)
    difficulty = rng.uniform(0.2, 2.0, size=n).astype(np.float32)
    for k in range(n_exits):  # one exit at a time keeps the peak memory low
        logits = rng.standard_normal((n, n_classes), np.float32)
        logits[np.arange(n), labels] += strength[k] / difficulty
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        probs[:, k] = logits
    return probs, labels


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--exits", type=int, default=12)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--loop-subset", type=int, default=5_000)
    args = parser.parse_args()

    probs, labels = make_probs(args.n, args.exits, args.classes)
    costs = np.arange(1, args.exits + 1, dtype=np.float64)
    print(f"probs {probs.shape} {probs.dtype}, {probs.nbytes / 2**20:.0f} MiB")

    floor = best_of(lambda: probs.argmax(axis=2))
    policy = eeopt.fit(eeopt.ExitData(probs, labels, costs), method="maxprob", threshold=0.9)
    evaluate = best_of(lambda: policy.evaluate(probs, labels))

    data = eeopt.ExitData(probs, labels, costs)
    data.correct  # noqa: B018  (derived arrays cached, as in a real fit)
    one_threshold = best_of(lambda: policy.evaluate(data))
    budget = float(costs[0] + 0.4 * (costs[-1] - costs[0]))
    fit = best_of(lambda: eeopt.fit(data, method="maxprob", budget=budget), repeats=2)
    fit_cold = best_of(
        lambda: eeopt.fit(probs, labels, costs, method="maxprob", budget=budget), repeats=1
    )

    m = args.loop_subset
    sub = eeopt.ExitData(probs[:m], labels[:m], costs)
    loop = (
        best_of(
            lambda: ref_evaluate(sub.probs, sub.labels, costs, sub.maxprob, policy.thresholds_),
            repeats=1,
        )
        * args.n
        / m
    )

    tracemalloc.start()
    policy.evaluate(probs, labels)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    print(f"floor: one argmax pass           {floor:8.3f} s")
    print(
        f"evaluate (raw array)             {evaluate:8.3f} s  = {evaluate / floor:5.2f}x floor "
        "(target <= 3x)"
    )
    print(f"evaluate (ExitData, cached)      {one_threshold:8.3f} s")
    print(
        f"fit budget threshold (cached)    {fit:8.3f} s  = {fit / one_threshold:5.2f}x one "
        "evaluation (target <= 10x)"
    )
    print(
        f"fit budget threshold (raw array) {fit_cold:8.3f} s  = {fit_cold / evaluate:5.2f}x "
        "one raw evaluation"
    )
    print(f"reference loop (scaled from {m})  {loop:8.1f} s  = {loop / evaluate:6.0f}x evaluate")
    print(
        f"evaluate peak extra memory       {peak / 2**20:8.0f} MiB = "
        f"{peak / probs.nbytes:4.2f}x input (target < 2x)"
    )


if __name__ == "__main__":
    main()
