"""Scale benchmark: the exact sweeps on token-level, score-only data, as ratios in one process.

    python benchmarks/bench_scale.py [--sizes 100000 1000000 10000000] [--exits 24]
        [--data-dir /tmp/eeopt-tokens] [--beem-max-n N] [--beem-front-max-n N] [--beem-only]
        [--skip-memory] [--json out.json]

For each N, the synthetic token source of ``benchmarks/tokens.py`` (K = 24 exits, score-only:
int32 predictions and float32 max-probability confidences, 32,000 classes) is generated once
into ``--data-dir`` as ``.npy`` files and loaded into memory. Each measurement is the best of a
few runs (one for BEEM and at 10^7), as a ratio to one cached evaluation timed next to it
(``first_exit`` on the confidence scores with a fixed threshold + ``evaluate_exits``), with
the peak memory the measurement allocates (tracemalloc, a separate run) as a ratio to the
input arrays:

- ``maxprob budget fit``: ``threshold_sweep`` + ``select_for_budget`` (with the engine's exact
  check), what ``fit(method="maxprob", budget=B)`` does on cached scores;
- ``BEEM accuracy target``: BEEM-A's per-exit level sweep up to the final exit's error rate +
  ``select_for_accuracy`` (``fit(method="beem-a", target="accuracy")`` on cached scores);
- ``BEEM front``: the whole per-exit level sweep + the non-dominated points;
- ``msdnet budget fit``: ``solve_q`` and the thresholds of its q;
- ``oracle front``: the computation of ``eeopt.oracle_front`` on the arrays (score-only
  ``ExitData`` is not on this branch yet, so the function itself cannot take them).

The functions that time one thing are small so that they can be switched to the public API
(``ExitData.from_predictions``, ``eeopt.fit``) once score-only data lands.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from eeopt import engine
from eeopt._accel import HAVE_NUMBA
from eeopt.frontier import non_dominated
from eeopt.methods.beem import accuracy_weights, beem_scores, level_sweep
from eeopt.methods.msdnet import _solve
from eeopt.targets import select_for_accuracy, select_for_budget, threshold_sweep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tokens import load_tokens, make_tokens  # noqa: E402

#: Budget of the budget fits: 30% of the way from the first exit's cost to the last's.
BUDGET_SHARE = 0.3


# -- the data --------------------------------------------------------------------------------
def load(n: int, n_exits: int, data_dir: Path) -> dict[str, np.ndarray]:
    """The token arrays of size n, generated once into data_dir, loaded into memory."""
    folder = data_dir / f"tokens_n{n}_k{n_exits}"
    if not (folder / "costs.npy").exists():
        make_tokens(n, n_exits, out=folder, verbose=True)
    arrays = {name: np.array(array) for name, array in load_tokens(folder).items()}
    arrays["correct"] = arrays["predictions"] == arrays["labels"][:, None]  # cached, as ExitData
    return arrays


def input_bytes(data: dict[str, np.ndarray]) -> int:
    return sum(data[name].nbytes for name in ("predictions", "confidence", "labels"))


# -- what is timed ------------------------------------------------------------------------
def evaluation(data, thresholds):
    exits = engine.first_exit(data["confidence"], thresholds)
    return engine.evaluate_exits(exits, data["predictions"], data["labels"], data["costs"])


def maxprob_budget_fit(data, budget):
    scores, costs = data["confidence"], data["costs"]
    sweep = threshold_sweep(scores, data["correct"], costs)

    def exact_cost(i: int) -> float:
        thresholds = np.full(costs.shape[0], sweep.parameters[i])
        thresholds[-1] = -np.inf
        return engine.mean_cost(engine.first_exit(scores, thresholds), costs)

    return sweep.parameters[select_for_budget(sweep, budget, exact_cost)]


def beem_accuracy_fit(data, beem):
    correct = data["correct"]
    final_error = float(np.count_nonzero(~correct[:, -1]) / correct.shape[0])
    sweep = level_sweep(beem, correct, data["costs"], max_level=final_error)
    index = select_for_accuracy(sweep, np.count_nonzero(correct[:, -1]))
    return sweep.thresholds[index], sweep.parameters.shape[0]


def beem_front(data, beem):
    sweep = level_sweep(beem, data["correct"], data["costs"])
    keep = non_dominated(sweep.mean_costs, sweep.accuracies)
    return keep.shape[0], sweep.parameters.shape[0]


def msdnet_budget_fit(data, budget):
    return _solve(data["confidence"], data["costs"], budget)


def oracle_front_arrays(data):
    """``eeopt.oracle_front``'s computation on the arrays (frontier.py, lines for lines)."""
    correct, costs = data["correct"], data["costs"]
    n = correct.shape[0]
    has_correct = correct.any(axis=1)
    first_correct = correct.argmax(axis=1)
    gains = np.sort(costs[first_correct[has_correct & (first_correct > 0)]] - costs[0])
    base = int(np.count_nonzero(correct[:, 0]))
    point_costs = costs[0] + np.r_[0.0, np.cumsum(gains)] / n
    point_accuracies = (base + np.arange(gains.size + 1)) / n
    return non_dominated(point_costs, point_accuracies)


# -- measuring -------------------------------------------------------------------------------
def seconds(fn, repeats: int, keep: list | None = None) -> float:
    """Best time of ``repeats`` calls; the last result is appended to ``keep``."""
    best = np.inf
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    if keep is not None:
        keep.append(result)
    return best


def peak_bytes(fn) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(n: int, args) -> list[dict]:
    data = load(n, args.exits, args.data_dir)
    costs = data["costs"]
    budget = float(costs[0] + BUDGET_SHARE * (costs[-1] - costs[0]))
    size = input_bytes(data)
    repeats = 3 if n <= 1_000_000 else 1
    fixed = np.full(args.exits, 0.6)
    fixed[-1] = -np.inf
    rows = []
    base = seconds(lambda: evaluation(data, fixed), 5)

    def record(name, fn, note_of=None, once=False):
        # The machine is shared: the evaluation is timed again next to each measurement, and
        # the ratio is to that (best of 3), so that both saw about the same load.
        local = min(base, seconds(lambda: evaluation(data, fixed), 3))
        results: list = []
        took = seconds(fn, 1 if once else repeats, results)
        note = "" if note_of is None else note_of(results[-1])
        local = min(local, seconds(lambda: evaluation(data, fixed), 3))
        peak = None if args.skip_memory else peak_bytes(fn)
        row = {
            "n": n,
            "measurement": name,
            "seconds": took,
            "evaluation_seconds": local,
            "ratio": took / local,
            "load": os.getloadavg()[0],
            "peak_bytes": peak,
            "memory_ratio": None if peak is None else peak / size,
            "note": note,
        }
        rows.append(row)
        memory = "" if peak is None else f", peak {peak / 2**20:.0f} MiB ({peak / size:.2f}x)"
        print(
            f"  {name}: {took:.3f} s = {took / local:.1f}x (evaluation {local:.4f} s){memory} "
            f"{note} [load {os.getloadavg()[0]:.1f}]",
            flush=True,
        )

    print(f"N = {n:,}: input {size / 2**20:.0f} MiB; one evaluation {base:.4f} s", flush=True)
    if not args.beem_only:
        record("evaluation", lambda: evaluation(data, fixed))
        record("maxprob budget fit", lambda: maxprob_budget_fit(data, budget))
        record("msdnet budget fit", lambda: msdnet_budget_fit(data, budget))
        record("oracle front (array computation)", lambda: oracle_front_arrays(data))
    if n <= args.beem_max_n:
        weights = accuracy_weights(data["correct"])
        beem = beem_scores(data["predictions"], data["confidence"], weights)  # cached, as fit

        level_sweep(beem[:200], data["correct"][:200], costs)  # compiles the kernel (numba)

        def policies(result):
            return f"{result[1]} policies"

        record("BEEM accuracy target", lambda: beem_accuracy_fit(data, beem), policies, True)
        if n <= args.beem_front_max_n:
            record("BEEM front", lambda: beem_front(data, beem), policies, True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--max-n", type=int, default=None, help="stop after this size")
    parser.add_argument("--exits", type=int, default=24)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/eeopt-tokens"))
    default_beem = 1_000_000 if HAVE_NUMBA else 10_000
    parser.add_argument("--beem-max-n", type=int, default=default_beem)
    parser.add_argument("--beem-front-max-n", type=int, default=default_beem)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--beem-only", action="store_true", help="only the BEEM measurements")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    print(f"numba: {HAVE_NUMBA}; load: {os.getloadavg()}", flush=True)
    rows = []
    for n in args.sizes:
        if args.max_n is not None and n > args.max_n:
            break
        rows += measure(n, args)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    print(f"load at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
