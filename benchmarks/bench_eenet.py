"""EENet benchmark: held-out accuracy against its baselines, stability, fit time at scale.

    python benchmarks/bench_eenet.py heldout [--seeds 5] [--optimizers lbfgs,adam] [--swap]
    python benchmarks/bench_eenet.py stability [--datasets mnist1d] [--optimizer lbfgs]
    python benchmarks/bench_eenet.py scale [--n 50000] [--exits 6] [--classes 100] [--adam]
    python benchmarks/bench_eenet.py million [--n 1000000] [--exits 12] [--classes 10]
    python benchmarks/bench_eenet.py lp [--n 50000] [--skip-cvxpy]

- ``heldout``: on every shipped dataset (``eeopt.datasets.load_both``), fitted on ``val`` and
  evaluated on ``test`` (``--swap``: the other way round) at budgets 5% / 15% / 30% of the way
  from ``costs[0]`` to ``costs[-1]``: held-out accuracy (and held-out mean cost / budget) of
  msdnet, maxprob, EENet with the LP distribution, and the learned EENet with each optimiser
  over ``--seeds`` seeds (mean, min, max), plus the L-BFGS fit at the authors' ``alpha_cost``
  (``1e-2``, an exact penalty: the paper's optimum at the budget). Fit times per fit.
- ``stability``: 11 budgets within +-0.1% of each budget and 5 seeds: the spread of held-out
  accuracy.
- ``scale``: synthetic data (the generator of ``bench_core.py``), n fitting and n held-out
  samples: fit time and held-out accuracy of msdnet, EENet (L-BFGS on the default training
  subsample, and on all samples) and, with ``--adam``, the Adam recipe.
- ``million``: the same at N = 10^6 (K = 12, C = 10): EENet L-BFGS with its default subsample
  cap; the Adam recipe's time per epoch.
- ``lp``: the exact LP path against cvxpy on EENet's utility scores.

Every fit runs with one BLAS thread (EENet sets it itself); the figures, the command, the
machine and its load go in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import eeopt
from eeopt import datasets
from eeopt.methods.eenet import lp_exit_assignment, lp_exit_assignment_cvxpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import make_probs  # noqa: E402

SHARES = (0.05, 0.15, 0.30)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load {load:.2f}; "
        f"numpy {np.__version__}"
    )


def budget_at(costs: np.ndarray, share: float) -> float:
    return float(costs[0] + share * (costs[-1] - costs[0]))


def heldout_row(fit, held, budget, method, **options):
    policy, seconds = timed(lambda: eeopt.fit(fit, method=method, budget=budget, **options))
    result = policy.evaluate(held)
    return result.accuracy, result.mean_cost / budget, seconds, policy


def paired_difference(policy, reference, held) -> str:
    """Held-out accuracy of ``policy`` minus ``reference``, in points, with a 95% interval over
    the held-out samples (paired: the same samples, normal approximation)."""
    labels = held.labels
    diff = (policy.predict(held) == labels).astype(float) - (reference.predict(held) == labels)
    mean, half = 100 * diff.mean(), 196 * diff.std(ddof=1) / np.sqrt(diff.size)
    return f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]"


def cmd_heldout(args) -> None:
    optimizers = args.optimizers.split(",")
    print(machine())
    direction = "test -> val" if args.swap else "val -> test"
    print(f"fitted and evaluated {direction}; seeds 0..{args.seeds - 1}")
    header = ["dataset", "budget", "msdnet", "maxprob", "eenet lp", "eenet lbfgs a_cost=1e-2"]
    header += [f"eenet {o} (mean [min, max])" for o in optimizers]
    header += ["lbfgs seed 0 - msdnet, points [95% CI]"]
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    wins = {o: {} for o in optimizers}
    for name in args.datasets.split(","):
        val, test = datasets.load_both(name)
        fit, held = (test, val) if args.swap else (val, test)
        for share in SHARES:
            budget = budget_at(fit.costs, share)
            quiet = {"verbose": False, "random_state": 0}
            cells, msdnet_acc, msdnet = [], None, None
            for method, options in (
                ("msdnet", {}),
                ("maxprob", {}),
                ("eenet", {**quiet, "distribution": "lp"}),
                ("eenet", {**quiet, "alpha_cost": 1e-2}),
            ):
                acc, cost, seconds, policy = heldout_row(fit, held, budget, method, **options)
                if msdnet is None:
                    msdnet_acc, msdnet = acc, policy
                cells.append(f"{acc:.4f} ({cost:.3f}, {seconds:.1f} s)")
            for optimizer in optimizers:
                runs = [
                    heldout_row(
                        fit, held, budget, "eenet", verbose=False, random_state=seed,
                        optimizer=optimizer,
                    )
                    for seed in range(args.seeds)
                ]  # fmt: skip
                acc = np.array([r[0] for r in runs])
                cost = np.mean([r[1] for r in runs])
                seconds = np.mean([r[2] for r in runs])
                wins[optimizer][(name, share)] = (acc >= msdnet_acc).mean()
                cells.append(
                    f"{acc.mean():.4f} [{acc.min():.4f}, {acc.max():.4f}] ({cost:.3f}, "
                    f"{seconds:.1f} s)"
                )
                if optimizer == "lbfgs":
                    difference = paired_difference(runs[0][3], msdnet, held)
            if "lbfgs" in optimizers:
                cells.append(difference)
            print(f"| {name} | {share:.0%} | " + " | ".join(cells) + " |", flush=True)
    print("\n(in brackets: held-out mean cost / budget, fit time per fit)")
    for optimizer, table in wins.items():
        for name in args.datasets.split(","):
            shares = [table[(name, s)] for s in SHARES]
            print(
                f"eenet {optimizer} >= msdnet on {name}: share of seeds per budget "
                f"{[round(s, 2) for s in shares]}"
            )


def cmd_stability(args) -> None:
    print(machine())
    print("\n| dataset | budget | optimiser | 11 budgets within +-0.1%: held-out accuracy "
          "[min, max] | 5 seeds: [min, max] |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name in args.datasets.split(","):
        val, test = datasets.load_both(name)
        for share in SHARES:
            base = budget_at(val.costs, share)
            options = {"verbose": False, "optimizer": args.optimizer}
            by_budget = [
                eeopt.fit(val, method="eenet", budget=base * (1 + rel), random_state=0, **options)
                .evaluate(test)
                .accuracy
                for rel in np.linspace(-1e-3, 1e-3, 11)
            ]
            by_seed = [
                eeopt.fit(val, method="eenet", budget=base, random_state=seed, **options)
                .evaluate(test)
                .accuracy
                for seed in range(5)
            ]
            print(
                f"| {name} | {share:.0%} | {args.optimizer} | [{min(by_budget):.4f}, "
                f"{max(by_budget):.4f}] spread {max(by_budget) - min(by_budget):.4f} | "
                f"[{min(by_seed):.4f}, {max(by_seed):.4f}] spread "
                f"{max(by_seed) - min(by_seed):.4f} |",
                flush=True,
            )


def synthetic(n: int, n_exits: int, n_classes: int):
    costs = np.linspace(1.0, 6.0, n_exits) ** 1.2
    probs, labels = make_probs(2 * n, n_exits, n_classes, seed=0)
    fit = eeopt.ExitData(probs[:n], labels[:n], costs, input="probs")
    held = eeopt.ExitData(probs[n:], labels[n:], costs, input="probs")
    for data in (fit, held):  # cache the scores so that every fit starts equal
        _ = data.maxprob, data.entropy, data.vote, data.correct
    return fit, held, costs


def cmd_scale(args) -> None:
    fit, held, costs = synthetic(args.n, args.exits, args.classes)
    budget = budget_at(costs, args.budget_share)
    print(f"N={args.n} K={args.exits} C={args.classes} budget={budget:.6g}; {machine()}")
    print(f"exit accuracy {np.round(fit.exit_accuracy, 3).tolist()}")
    rows = [("msdnet", "msdnet", {})]
    rows += [
        (f"eenet lbfgs, max_samples={m}", "eenet", {"max_samples": m}) for m in args.max_samples
    ]
    if args.adam:
        rows.append(("eenet adam (the authors' recipe)", "eenet", {"optimizer": "adam"}))
    print(
        "\n| policy | fit time | vs msdnet | fit accuracy | held-out accuracy | held-out cost / B |"
    )
    print("|---|---|---|---|---|---|")
    t_ref = None
    for label, method, options in rows:
        if method == "eenet":
            options = {**options, "verbose": False, "random_state": 0}
        policy, seconds = timed(lambda: eeopt.fit(fit, method=method, budget=budget, **options))  # noqa: B023
        t_ref = seconds if t_ref is None else t_ref
        result = policy.evaluate(held)
        print(
            f"| {label} | {seconds:.1f} s | {seconds / t_ref:.0f}x | "
            f"{policy.evaluate(fit).accuracy:.4f} | {result.accuracy:.4f} | "
            f"{result.mean_cost / budget:.4f} |",
            flush=True,
        )
        if "epochs" in policy.fit_info_.get("history", [{}])[0]:
            record = policy.fit_info_["history"][0]
            n_epochs = len(record["epochs"]["total"])
            print(f"  adam: {n_epochs} epochs, {seconds / n_epochs:.2f} s per epoch")


def cmd_million(args) -> None:
    fit, held, costs = synthetic(args.n, args.exits, args.classes)
    budget = budget_at(costs, args.budget_share)
    print(f"N={args.n} K={args.exits} C={args.classes} budget={budget:.6g}; {machine()}")
    msdnet, t_msdnet = timed(lambda: eeopt.fit(fit, method="msdnet", budget=budget))
    print(f"msdnet: {t_msdnet:.1f} s, held-out accuracy {msdnet.evaluate(held).accuracy:.4f}")
    policy, seconds = timed(
        lambda: eeopt.fit(fit, method="eenet", budget=budget, random_state=0, verbose=False)
    )
    result = policy.evaluate(held)
    print(
        f"eenet lbfgs (default cap, {policy.fit_info_['n_train_samples']} training samples): "
        f"{seconds:.1f} s, fit accuracy {policy.evaluate(fit).accuracy:.4f}, held-out accuracy "
        f"{result.accuracy:.4f}, held-out cost / B {result.mean_cost / budget:.4f}"
    )
    epochs = args.adam_epochs
    policy, seconds = timed(
        lambda: eeopt.fit(
            fit, method="eenet", budget=budget, random_state=0, verbose=False,
            optimizer="adam", max_iter=epochs,
        )
    )  # fmt: skip
    print(
        f"eenet adam, {epochs} epochs on all {args.n} samples: {seconds:.1f} s "
        f"({seconds / epochs:.1f} s per epoch), held-out accuracy "
        f"{policy.evaluate(held).accuracy:.4f}"
    )


def cmd_lp(args) -> None:
    fit, _, costs = synthetic(args.n, args.exits, args.classes)
    budget = budget_at(costs, args.budget_share)
    learned = eeopt.fit(fit, method="eenet", budget=budget, random_state=0, verbose=False)
    scores = learned.compute_scores(fit)
    (x_exact, v_exact), t_exact = timed(lambda: lp_exit_assignment(scores, costs, budget))
    print(f"N={args.n}; {machine()}")
    if args.skip_cvxpy:
        print(f"exact LP path: {t_exact:.3f} s, value / N {v_exact / args.n:.8f}")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("heldout")
    p.add_argument("--datasets", default=",".join(datasets.names()))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--optimizers", default="lbfgs,adam")
    p.add_argument("--swap", action="store_true", help="fit on test, evaluate on val")
    p.set_defaults(run=cmd_heldout)
    p = sub.add_parser("stability")
    p.add_argument("--datasets", default=",".join(datasets.names()))
    p.add_argument("--optimizer", default="lbfgs")
    p.set_defaults(run=cmd_stability)
    for name, run, n, exits, classes in (
        ("scale", cmd_scale, 50_000, 6, 100),
        ("million", cmd_million, 1_000_000, 12, 10),
        ("lp", cmd_lp, 50_000, 6, 100),
    ):
        p = sub.add_parser(name)
        p.add_argument("--n", type=int, default=n)
        p.add_argument("--exits", type=int, default=exits)
        p.add_argument("--classes", type=int, default=classes)
        p.add_argument("--budget-share", type=float, default=0.3)
        p.set_defaults(run=run)
        if name == "scale":
            p.add_argument(
                "--max-samples",
                type=lambda s: None if s == "none" else int(s),
                nargs="+",
                default=[10_000, None],
                help="training subsample caps to compare ('none' = every sample)",
            )
            p.add_argument("--adam", action="store_true", help="also the Adam recipe")
        if name == "million":
            p.add_argument("--adam-epochs", type=int, default=2)
        if name == "lp":
            p.add_argument("--skip-cvxpy", action="store_true")
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
