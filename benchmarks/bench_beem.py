"""BEEM benchmark: per-exit threshold fitting against one exit-engine evaluation, in one process.

    python benchmarks/bench_beem.py [--n 1000000] [--exits 12] [--classes 10]

Builds float32 probabilities (n, exits, classes) whose exits improve with depth (the core
benchmark's generator), computes the BEEM-A score once, then reports, as ratios measured in the
same run:
- the paper's per-exit error-rate rule (``exit_error_thresholds``: one sort per exit, cumulative
  counts, O(K N log N)) against one engine evaluation (``first_exit`` + metrics) on the same
  scores;
- the whole ``eeopt.fit(data, method="beem-a")`` on an ExitData whose derived arrays are cached
  (adds the weights and the score);
- a brute-force search (every candidate alpha tried with a numpy pass over the remaining
  samples: O(K N^2)) on a subset, scaled quadratically to N;
- the exact level sweep behind ``budget=`` / ``target="accuracy"`` on smaller N, to show how it
  scales (its cost is O(K N) per distinct policy).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import eeopt
from eeopt import engine
from eeopt.methods.beem import accuracy_weights, beem_scores, exit_error_thresholds, level_sweep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import best_of, make_probs  # noqa: E402


def brute_force_thresholds(scores: np.ndarray, correct: np.ndarray, level: float) -> np.ndarray:
    """The rule by trying every candidate alpha, lowest first, with a full pass each."""
    n_samples, n_exits = scores.shape
    remaining = np.ones(n_samples, dtype=bool)
    out = np.full(n_exits, -np.inf)
    for k in range(n_exits - 1):
        exit_scores, wrong = scores[remaining, k], ~correct[remaining, k]
        out[k] = np.inf
        for alpha in np.unique(exit_scores):
            leaving = exit_scores >= alpha
            if np.count_nonzero(wrong & leaving) / np.count_nonzero(leaving) <= level:
                out[k] = alpha
                break
        remaining &= ~(scores[:, k] >= out[k])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--exits", type=int, default=12)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--brute-subset", type=int, default=20_000)
    parser.add_argument("--sweep-sizes", type=int, nargs="*", default=[2_500, 5_000, 10_000])
    args = parser.parse_args()

    probs, labels = make_probs(args.n, args.exits, args.classes)
    costs = np.arange(1, args.exits + 1, dtype=np.float64)
    print(f"probs {probs.shape} {probs.dtype}, {probs.nbytes / 2**20:.0f} MiB")
    data = eeopt.ExitData(probs, labels, costs)
    correct = data.correct
    print("per-exit accuracy:", np.round(data.exit_accuracy, 3).tolist())
    weights = accuracy_weights(correct)
    scores = beem_scores(data.predictions, data.maxprob, weights)
    level = float(np.mean(~correct[:, -1]))

    thresholds = exit_error_thresholds(scores, correct, level)
    fractions = np.bincount(engine.first_exit(scores, thresholds), minlength=args.exits) / args.n
    print("fitted exit fractions:", np.round(fractions, 3).tolist())

    def evaluate_once() -> None:
        exits = engine.first_exit(scores, thresholds)
        engine.evaluate_exits(exits, data.predictions, labels, costs)

    evaluation = best_of(evaluate_once)
    rule = best_of(lambda: exit_error_thresholds(scores, correct, level), repeats=2)
    fit = best_of(lambda: eeopt.fit(data, method="beem-a"), repeats=2)

    m = args.brute_subset
    brute = best_of(lambda: brute_force_thresholds(scores[:m], correct[:m], level), repeats=1)
    brute_scaled = brute * (args.n / m) ** 2
    fast_subset = best_of(lambda: exit_error_thresholds(scores[:m], correct[:m], level))
    same = np.array_equal(
        brute_force_thresholds(scores[:m], correct[:m], level),
        exit_error_thresholds(scores[:m], correct[:m], level),
    )

    print(f"one engine evaluation (first_exit + metrics)   {evaluation:8.3f} s")
    print(
        f"per-exit rule (exit_error_thresholds)          {rule:8.3f} s  = "
        f"{rule / evaluation:5.1f}x one evaluation"
    )
    print(
        f"fit(data, method='beem-a'), derived cached     {fit:8.3f} s  = "
        f"{fit / evaluation:5.1f}x one evaluation"
    )
    print(
        f"brute force on {m} samples                   {brute:8.3f} s  (rule: "
        f"{fast_subset:.4f} s, same thresholds: {same})"
    )
    print(
        f"brute force scaled to N = {args.n} (x (N/m)^2)  {brute_scaled:8.0f} s  = "
        f"{brute_scaled / rule:8.0f}x the rule"
    )

    for n in args.sweep_sizes:
        sub_scores, sub_correct = scores[:n], correct[:n]
        start = time.perf_counter()
        sweep = level_sweep(sub_scores, sub_correct, costs)
        seconds = time.perf_counter() - start
        print(
            f"level sweep (budget/accuracy targets), N = {n:6d}: {seconds:7.2f} s, "
            f"{sweep.parameters.size} distinct policies"
        )


if __name__ == "__main__":
    main()
