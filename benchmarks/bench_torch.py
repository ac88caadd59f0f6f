"""Torch adapter benchmark: measured early-exit speedup against the cost model's prediction.

    python benchmarks/bench_torch.py [--model cnn|mlp] [--width 48] [--batch-size 64[,256]]
        [--device cpu|cuda] [--exit-rules host,device] [--refill]

Trains a multi-exit model on scikit-learn's digits (``tests/digits_model.py``, float
arithmetic): by default a CNN of four 3x3 conv blocks with ``--width`` channels, or
(``--model mlp``) the MLP of the tests with ``--width`` units per layer; then, for each batch
size, measures per-exit latency costs with ``measure_exit_costs`` at that batch size, collects
validation outputs with those costs and fits ``maxprob`` at three budgets. For each budget it
reports, on the test samples:

- predicted speedup: ``costs[-1] / mean_cost`` of the policy's exits, latency costs;
- measured speedup: wall time of a full forward pass (every stage and head, what ``costs[-1]``
  covers) over wall time of ``run_early_exit``, same pre-made batches on the device, repeats
  interleaved (full pass, then each exit rule in turn): the median over repeats of the ratio
  within a repeat (the passes of one repeat run back to back, under the same load of a shared
  machine) and, in brackets, the ratio of the best times; on the CPU also, in square
  brackets, the median ratio of the thread's CPU times (``time.thread_time``: not counting
  the time the process waited for a core, the steadiest figure on a busy machine);
- their ratio (target >= 0.8 at batch size 64), for each exit rule: ``device`` (the policy's
  torch rule on the model's device, the default) and ``host`` (numpy on the host, the runtime
  before issue 17: the baseline, in the same run);
- the speedup FLOPs costs predict.

The last row sends every sample to the last exit: the runtime's pure overhead, also given in
microseconds per stage call. Runs with one torch thread unless ``--threads``. On a CUDA machine
``python benchmarks/bench_torch.py --device cuda --batch-size 64,256`` gives the GPU table.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import eeopt
import eeopt.torch as et
from eeopt.torch._batch import synchronize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from digits_model import build_digits_cnn, build_digits_model, digits_splits  # noqa: E402


def timed(function, device) -> tuple[float, float]:
    """Wall-clock and this thread's CPU seconds of ``function()``, the device synchronised."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.thread_time()
    out = function()
    synchronize(device)
    return time.perf_counter() - wall, time.thread_time() - cpu, out


def full_forward(model, batches):
    with torch.inference_mode():
        for x in batches:
            model(x)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def load() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


def bench_batch_size(args, model, splits, device, bs: int, rules: list[str]) -> None:
    _, val, test = splits
    costs = et.measure_exit_costs(model, val[0][:bs], device=device, repeats=100, warmup=10)
    print(costs)
    val_data = et.collect_logits(
        model,
        [(val[0][i : i + bs], val[1][i : i + bs]) for i in range(0, len(val[1]), bs)],
        verbose=False,
        costs=costs.seconds,
    )
    print(f"exit accuracies (validation): {np.round(val_data.exit_accuracy, 3).tolist()}")
    x_test = torch.cat([test[0]] * args.tile).to(device)
    y_test = test[1].repeat(args.tile)
    batches = [x_test[i : i + bs] for i in range(0, len(y_test), bs)]
    test_data = et.collect_logits(model, batches, verbose=False, costs=costs.seconds)

    policies = {}
    for fraction in [float(f) for f in args.fractions.split(",")]:
        budget = max(fraction * costs.seconds[-1], costs.seconds[0])
        policies[f"maxprob, budget {fraction:.2f} x costs[-1]"] = eeopt.fit(
            val_data.with_costs(costs.seconds), val_data.labels, method="maxprob", budget=budget
        )
    overhead_name = "all samples at the last exit (overhead)"
    policies[overhead_name] = eeopt.fit(val_data, method="maxprob", threshold=np.inf)

    print(
        f"\ndevice {device_name(device)}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), batch size {bs}, {len(y_test)} test samples "
        f"({args.tile}x the {len(test[1])} digits test samples), {args.model} of width "
        f"{args.width}, {args.repeats} interleaved repeats, refill={args.refill}, "
        f"load average {load()} (1/5/15 min), {datetime.date.today()}"
    )
    head = "| policy | test accuracy | exit fractions | predicted speedup (latency costs) |"
    cpu = " [CPU time]" if device.type == "cpu" else ""
    rule_head = "".join(
        f" {rule}: measured, median (best){cpu} | {rule}: measured / predicted |" for rule in rules
    )
    print(head + rule_head + " predicted from FLOPs |")
    print("|---" * (5 + 2 * len(rules)) + "|")
    all_full = []
    overhead = {}
    n_calls = len(batches) * model.n_exits
    for name, policy in policies.items():
        result = policy.evaluate(test_data, y_test.numpy(), costs=costs.seconds)
        by_flops = policy.evaluate(test_data, costs=costs.flops).speedup
        full, early = [], {rule: [] for rule in rules}
        for _ in range(args.repeats):
            full.append(timed(lambda: full_forward(model, batches), device)[:2])
            for rule in rules:
                wall, cpu, run = timed(
                    lambda rule=rule, policy=policy: et.run_early_exit(
                        model, policy, batches, refill=args.refill, exit_rule=rule
                    ),
                    device,
                )
                if run.exit_rule != rule:
                    raise RuntimeError(f"asked for exit_rule={rule!r}, ran {run.exit_rule!r}")
                early[rule].append((wall, cpu))
        full = np.array(full)
        all_full += list(full[:, 0])
        fractions = ", ".join(f"{f:.2f}" for f in result.exit_fractions)
        cells = ""
        for rule in rules:
            times = np.array(early[rule])
            median = float(np.median(full[:, 0] / times[:, 0]))
            best = np.min(full[:, 0]) / np.min(times[:, 0])
            cpu = float(np.median(full[:, 1] / times[:, 1]))
            cpu_cell = f" [{cpu:.2f}x]" if device.type == "cpu" else ""
            cpu_ratio = f" [{cpu / result.speedup:.2f}]" if device.type == "cpu" else ""
            cells += (
                f" {median:.2f}x ({best:.2f}x){cpu_cell} | {median / result.speedup:.2f} "
                f"({best / result.speedup:.2f}){cpu_ratio} |"
            )
            if name == overhead_name:
                extra = np.median(times - full, axis=0) / n_calls
                overhead[rule] = (extra[0], np.min(times[:, 0]) - np.min(full[:, 0]), extra[1])
        print(
            f"| {name} | {result.accuracy:.4f} | {fractions} | {result.speedup:.2f}x |"
            f"{cells} {by_flops:.2f}x |"
        )
    print(
        f"\nfull forward pass: {np.median(all_full) / len(y_test) * 1e6:.1f} us per sample "
        f"(median), {np.min(all_full) / len(y_test) * 1e6:.1f} (best); costs[-1] from "
        f"measure_exit_costs: {costs.seconds[-1] * 1e6:.1f} us"
    )
    per_call = ", ".join(
        f"{rule} {median * 1e6:.1f} us ({best / n_calls * 1e6:.1f})"
        + (f" [{cpu * 1e6:.1f}]" if device.type == "cpu" else "")
        for rule, (median, best, cpu) in overhead.items()
    )
    print(
        f"runtime overhead per stage call (all at the last exit; median of paired differences, "
        f"in brackets from the best times, in square brackets from CPU time; {n_calls} stage "
        f"calls): {per_call}; load average now {load()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    parser.add_argument("--width", type=int, default=48, help="channels (cnn) or units (mlp)")
    parser.add_argument("--steps", type=int, default=200, help="training steps")
    parser.add_argument("--batch-size", default="64", help="one or more, comma-separated")
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--tile", type=int, default=4, help="repeat the test set for timing")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fractions", default="0.3,0.45,0.6", help="budgets / costs[-1]")
    parser.add_argument(
        "--exit-rules",
        default="host,device",
        help="run_early_exit(exit_rule=...) values to time side by side; host is the baseline",
    )
    parser.add_argument(
        "--refill",
        action="store_true",
        help="run_early_exit(refill=True): later stages on full batches",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device on this machine.")
    rules = [r.strip() for r in args.exit_rules.split(",")]

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
    for bs in [int(b) for b in args.batch_size.split(",")]:
        bench_batch_size(args, model, (train, val, test), device, bs, rules)


if __name__ == "__main__":
    main()
