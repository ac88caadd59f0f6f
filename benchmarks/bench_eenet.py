"""EENet benchmark: fit time and accuracy at N = 50,000, K = 6, C = 100, as ratios, in one process.

    python benchmarks/bench_eenet.py [--n 50000] [--exits 6] [--classes 100] [--budget-share 0.3]

Builds float32 probabilities of a synthetic model whose exits sharpen with depth (the generator
of ``bench_core.py``), a fitting split and a held-out split of n samples each, then reports:
- the fit time of ``eenet`` (learned distribution, defaults) and of ``eenet`` with the LP
  distribution, against the fit time of ``msdnet`` at the same budget;
- the LP on EENet's utility scores: the exact Lagrangian path against cvxpy (time ratio and
  the gap between their optimal values);
- fitting and held-out accuracy and mean cost of the three policies at the budget.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

import eeopt
from eeopt.methods.eenet import lp_exit_assignment, lp_exit_assignment_cvxpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import make_probs  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--exits", type=int, default=6)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--budget-share", type=float, default=0.3)
    parser.add_argument("--skip-cvxpy", action="store_true", help="time the exact LP path only")
    args = parser.parse_args()

    costs = np.linspace(1.0, 6.0, args.exits) ** 1.2
    probs, labels = make_probs(2 * args.n, args.exits, args.classes, seed=0)
    fit_data = eeopt.ExitData(probs[: args.n], labels[: args.n], costs, input="probs")
    held_out = eeopt.ExitData(probs[args.n :], labels[args.n :], costs, input="probs")
    budget = float(costs[0] + args.budget_share * (costs[-1] - costs[0]))
    print(
        f"N={args.n} K={args.exits} C={args.classes} budget={budget:.4g} "
        f"(costs {np.round(costs, 3).tolist()}); exit accuracy "
        f"{np.round(fit_data.exit_accuracy, 3).tolist()}"
    )
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; numpy {np.__version__}")
    for data in (fit_data, held_out):  # cache the scores so that every fit starts equal
        _ = data.maxprob, data.entropy, data.vote, data.correct

    msdnet, t_msdnet = timed(lambda: eeopt.fit(fit_data, method="msdnet", budget=budget))
    learned, t_learned = timed(
        lambda: eeopt.fit(fit_data, method="eenet", budget=budget, random_state=0, verbose=False)
    )
    lp, t_lp = timed(
        lambda: eeopt.fit(
            fit_data,
            method="eenet",
            budget=budget,
            distribution="lp",
            random_state=0,
            verbose=False,
        )
    )
    rows = [
        ("msdnet", msdnet, t_msdnet),
        ("eenet (learned)", learned, t_learned),
        ("eenet (lp, exact)", lp, t_lp),
    ]
    print(
        "\n| policy | fit time | vs msdnet | fit accuracy | fit cost | held-out accuracy "
        "| held-out cost |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, policy, seconds in rows:
        fit_result, test_result = policy.evaluate(fit_data), policy.evaluate(held_out)
        print(
            f"| {name} | {seconds:.2f} s | {seconds / t_msdnet:.0f}x | "
            f"{fit_result.accuracy:.4f} | {fit_result.mean_cost:.6f} | "
            f"{test_result.accuracy:.4f} | {test_result.mean_cost:.4f} |"
        )
    print("\nEENet history (learned):", learned.fit_info_["history"])

    scores = learned.compute_scores(fit_data)
    (x_exact, v_exact), t_exact = timed(lambda: lp_exit_assignment(scores, costs, budget))
    if args.skip_cvxpy:
        print(f"\nexact LP path: {t_exact:.3f} s, value / N {v_exact / args.n:.8f}")
        return
    (x_cvxpy, v_cvxpy), t_cvxpy = timed(lambda: lp_exit_assignment_cvxpy(scores, costs, budget))
    print("\n| LP solver | time | ratio | optimal value / N | exit distribution |")
    print("|---|---|---|---|---|")
    for name, seconds, value, x in (
        ("exact (Lagrangian)", t_exact, v_exact, x_exact),
        ("cvxpy", t_cvxpy, v_cvxpy, x_cvxpy),
    ):
        print(
            f"| {name} | {seconds:.3f} s | {seconds / t_exact:.0f}x | {value / args.n:.8f} | "
            f"{np.round(x.mean(axis=0), 4).tolist()} |"
        )
    print(f"\nrelative value gap (cvxpy - exact) / exact: {(v_cvxpy - v_exact) / v_exact:.2e}")


if __name__ == "__main__":
    main()
