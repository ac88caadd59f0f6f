"""Torch adapter benchmark: measured early-exit speedup against the cost model's prediction.

    python benchmarks/bench_torch.py [--model cnn|mlp] [--width 48] [--batch-size 64] [--refill]

Trains a multi-exit model on scikit-learn's digits (``tests/digits_model.py``, float
arithmetic): by default a CNN of four 3x3 conv blocks with ``--width`` channels, or
(``--model mlp``) the MLP of the tests with ``--width`` units per layer; measures per-exit
latency costs
with ``measure_exit_costs`` at the batch size, collects validation outputs with those costs and
fits ``maxprob`` at three budgets. For each budget it reports, on the test samples:

- predicted speedup: ``costs[-1] / mean_cost`` of the policy's exits, latency costs;
- measured speedup: wall time of a full forward pass (every stage and head, what ``costs[-1]``
  covers) over wall time of ``run_early_exit``, same pre-made batches, interleaved repeats;
  as a ratio of medians and as a ratio of best times (the latter is less sensitive to other
  processes on a shared machine);
- their ratio (target >= 0.8 at batch size 64); and the speedup FLOPs costs predict.

Also the pure overhead of the runtime (a policy that sends every sample to the last exit, against
the full forward pass). Runs on the CPU with one torch thread unless ``--device``/``--threads``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import eeopt
import eeopt.torch as et

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from digits_model import build_digits_cnn, build_digits_model, digits_splits  # noqa: E402


def full_forward_seconds(model, batches, device) -> float:
    from eeopt.torch._batch import synchronize

    with torch.inference_mode():
        start = time.perf_counter()
        for x in batches:
            model(x)
        synchronize(device)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    parser.add_argument("--width", type=int, default=48, help="channels (cnn) or units (mlp)")
    parser.add_argument("--steps", type=int, default=200, help="training steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--tile", type=int, default=4, help="repeat the test set for timing")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fractions", default="0.3,0.45,0.6", help="budgets / costs[-1]")
    parser.add_argument(
        "--refill",
        action="store_true",
        help="run_early_exit(refill=True): later stages on full batches",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    train, val, test = digits_splits(seed=0)
    start = time.perf_counter()
    if args.model == "cnn":
        model = build_digits_cnn(
            train, head_channels=(4, 8, 16, args.width), channels=args.width, steps=args.steps
        )
        train, val, test = [(x.reshape(-1, 1, 8, 8), y) for x, y in (train, val, test)]
    else:
        model = build_digits_model(train, hidden=args.width, steps=args.steps, exact=False)
    model = model.to(device).eval()
    print(f"trained in {time.perf_counter() - start:.1f}s")
    bs = args.batch_size
    costs = et.measure_exit_costs(model, val[0][:bs], repeats=100, warmup=10)
    print(costs)
    val_data = et.collect_logits(
        model,
        [(val[0][i : i + bs], val[1][i : i + bs]) for i in range(0, len(val[1]), bs)],
        progress=False,
        costs=costs.seconds,
    )
    print(f"exit accuracies (validation): {np.round(val_data.exit_accuracy, 3).tolist()}")
    x_test = torch.cat([test[0]] * args.tile).to(device)
    y_test = test[1].repeat(args.tile)
    batches = [x_test[i : i + bs] for i in range(0, len(y_test), bs)]
    test_data = et.collect_logits(model, batches, progress=False, costs=costs.seconds)

    policies = {}
    for fraction in [float(f) for f in args.fractions.split(",")]:
        budget = max(fraction * costs.seconds[-1], costs.seconds[0])
        policies[f"maxprob, budget {fraction:.2f} x costs[-1]"] = eeopt.fit(
            val_data.with_costs(costs.seconds), val_data.labels, method="maxprob", budget=budget
        )
    policies["all samples at the last exit (overhead)"] = eeopt.fit(
        val_data, method="maxprob", threshold=np.inf
    )

    print(
        f"\ndevice {device} ({platform.processor() or platform.machine()}), torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread(s), batch size {bs}, "
        f"{len(y_test)} test samples ({args.tile}x the {len(test[1])} digits test samples), "
        f"{args.model} of width {args.width}, {args.repeats} interleaved repeats, "
        f"refill={args.refill}"
    )
    print(
        "| policy | test accuracy | exit fractions | predicted speedup (latency costs) | "
        "measured, medians | measured / predicted | measured, best of | measured / predicted "
        "| predicted from FLOPs |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    all_full = []
    for name, policy in policies.items():
        result = policy.evaluate(test_data, y_test.numpy(), costs=costs.seconds)
        by_flops = policy.evaluate(test_data, costs=costs.flops).speedup
        full, early = [], []
        for _ in range(args.repeats):
            full.append(full_forward_seconds(model, batches, device))
            early.append(et.run_early_exit(model, policy, batches, refill=args.refill).seconds)
        all_full += full
        median = np.median(full) / np.median(early)
        best = np.min(full) / np.min(early)
        fractions = ", ".join(f"{f:.2f}" for f in result.exit_fractions)
        print(
            f"| {name} | {result.accuracy:.4f} | {fractions} | {result.speedup:.2f}x | "
            f"{median:.2f}x | {median / result.speedup:.2f} | {best:.2f}x | "
            f"{best / result.speedup:.2f} | {by_flops:.2f}x |"
        )
    print(
        f"\nfull forward pass: {np.median(all_full) / len(y_test) * 1e6:.1f} us per sample "
        f"(median), {np.min(all_full) / len(y_test) * 1e6:.1f} (best); costs[-1] from "
        f"measure_exit_costs: {costs.seconds[-1] * 1e6:.1f} us"
    )


if __name__ == "__main__":
    main()
