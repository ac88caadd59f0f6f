"""Scale benchmark: eeopt's public API on token-level, score-only data, as ratios in one process.

    python benchmarks/bench_scale.py [--sizes 100000 1000000 10000000] [--exits 24]
        [--data-dir /tmp/eeopt-tokens] [--beem-max-n N] [--beem-front-max-n N] [--beem-only]
        [--beem-levels 256] [--beem-levels-max-n N]
        [--mmap] [--skip-memory] [--only certified ...] [--json out.json]

For each N, the synthetic token source of ``benchmarks/tokens.py`` (K = 24 exits, score-only:
int32 predictions and float32 max-probability confidences, 32,000 classes) is generated once
into ``--data-dir`` as a folder of ``.npy`` files and read with ``eeopt.ExitData.load`` (into
memory, or memory-mapped with ``--mmap``): an ``ExitData.from_predictions`` of O(n K) memory.
Each measurement is the best of a few runs (three; two at 10^7; one for BEEM), as a ratio to
one cached evaluation timed next to it (``policy.evaluate(data)`` of a shared max-probability
threshold; the first run's ratio is printed too), with the peak memory the measurement allocates
(tracemalloc, a separate run) as a ratio to the input arrays:

- ``maxprob budget fit``: ``eeopt.fit(data, method="maxprob", budget=B)``;
- ``msdnet budget fit``: ``eeopt.fit(data, method="msdnet", budget=B)``;
- ``oracle front``: ``eeopt.oracle_front(data)``;
- ``certified maxprob``: ``eeopt.fit(data, method="maxprob", tolerance=0.02, delta=0.1)``
  (the accuracy gap, Hoeffding-Bentkus, fixed-sequence testing along the whole threshold path)
  and the same for the consistency risk; the consistency again with ``calibration_split=0.5``
  (Pareto testing: the path on one half, tested on the other), and the accuracy gap with
  ``guarantee="expectation"`` (conformal risk control), alone and with the same split;
- ``BEEM accuracy target``: ``eeopt.fit(data, method="beem-a", target="accuracy")``;
- ``BEEM front``: ``eeopt.pareto_front(data, method="beem-a")``;
- the same accuracy target and front with ``levels=256`` (``--beem-levels``: the rule at 256
  evenly spaced error levels instead of every level that changes a decision; the note gives
  the fitted mean cost against the exact target's where both ran), the accuracy target again
  with ``n_jobs=-1`` (the exits sorted in threads, on every core), and one evaluation of the
  fitted BEEM-A policy (its scores, then its exits: BEEM's own baseline);
- ``BEEM certified consistency``: ``eeopt.fit(data, method="beem-a", risk="consistency",
  tolerance=0.05, delta=0.1)`` (its level path built on half the samples, replayed on the
  other half); ``BEEM certified accuracy gap (crc, split)``: ``tolerance=0.02,
  guarantee="expectation"`` (conformal risk control along the replay), and ``BEEM certified
  budget (crc, split)``: ``budget=B, guarantee="expectation"``.

Each fit's ratio includes ``fit``'s own evaluation of the fitted policy (``fit_info_``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

import eeopt
from eeopt._accel import HAVE_NUMBA

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tokens import make_tokens  # noqa: E402

#: Budget of the budget fits: 30% of the way from the first exit's cost to the last's.
BUDGET_SHARE = 0.3


# -- the data --------------------------------------------------------------------------------
def load(n: int, n_exits: int, data_dir: Path, mmap: bool) -> eeopt.ExitData:
    """The tokens of size n, generated once into data_dir, read as score-only ExitData."""
    folder = data_dir / f"tokens_n{n}_k{n_exits}"
    if not (folder / "costs.npy").exists():
        make_tokens(n, n_exits, out=folder, verbose=True)
    data = eeopt.ExitData.load(folder, mmap=mmap)
    _ = data.correct  # cached, as after a first fit
    return data


def input_bytes(data: eeopt.ExitData) -> int:
    return sum(a.nbytes for a in (data.predictions, data.maxprob, data.labels))


# -- what is timed ------------------------------------------------------------------------
def quiet_fit(data, method, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return eeopt.fit(data, method=method, verbose=False, **options)


# -- measuring -------------------------------------------------------------------------------
def seconds(fn, repeats: int, keep: list | None = None, times: list | None = None) -> float:
    """Best time of ``repeats`` calls; the last result is appended to ``keep``, every time
    to ``times``."""
    best = np.inf
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        took = time.perf_counter() - start
        best = min(best, took)
        if times is not None:
            times.append(took)
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
    data = load(n, args.exits, args.data_dir, args.mmap)
    costs = data.costs
    budget = float(costs[0] + BUDGET_SHARE * (costs[-1] - costs[0]))
    size = input_bytes(data)
    # At 10^7 the first fit in the process pays for memory the VM has never given it (see
    # benchmarks/README.md); the second reuses it, as any later fit of a session does.
    repeats = 3 if n <= 1_000_000 else 2
    fixed = quiet_fit(data, "maxprob", threshold=0.6)
    # Compiles (numba) or loads the sweep's kernels, as the first fit of a session does once.
    quiet_fit(data.subset(slice(0, 2000)), "maxprob", tolerance=0.02, delta=0.1)
    rows = []
    base = seconds(lambda: fixed.evaluate(data), 5)

    def record(name, fn, note_of=None, once=False):
        """Time ``fn`` and measure its peak memory; returns its last result (None if skipped)."""
        if args.only and not any(word in name for word in args.only):
            return None
        # The machine is shared: the evaluation is timed again next to each measurement, and
        # the ratio is to that (best of 3), so that both saw about the same load.
        local = min(base, seconds(lambda: fixed.evaluate(data), 3))
        results: list = []
        times: list = []
        took = seconds(fn, 1 if once else repeats, results, times)
        note = "" if note_of is None else note_of(results[-1])
        local = min(local, seconds(lambda: fixed.evaluate(data), 3))
        peak = None if args.skip_memory else peak_bytes(fn)
        row = {
            "n": n,
            "measurement": name,
            "seconds": took,
            "evaluation_seconds": local,
            "ratio": took / local,
            "first_seconds": times[0],
            "load": os.getloadavg()[0],
            "peak_bytes": peak,
            "memory_ratio": None if peak is None else peak / size,
            "note": note,
        }
        rows.append(row)
        memory = "" if peak is None else f", peak {peak / 2**20:.0f} MiB ({peak / size:.2f}x)"
        print(
            f"  {name}: {took:.3f} s = {took / local:.1f}x (first {times[0] / local:.1f}x; "
            f"evaluation {local:.4f} s){memory} "
            f"{note} [load {os.getloadavg()[0]:.1f}]",
            flush=True,
        )
        return results[-1]

    print(f"N = {n:,}: input {size / 2**20:.0f} MiB; one evaluation {base:.4f} s", flush=True)
    if not args.beem_only:
        record("evaluation", lambda: fixed.evaluate(data))
        record("maxprob budget fit", lambda: quiet_fit(data, "maxprob", budget=budget))
        record("msdnet budget fit", lambda: quiet_fit(data, "msdnet", budget=budget))
        record("oracle front", lambda: eeopt.oracle_front(data))
        record(
            "certified maxprob (accuracy gap, hb)",
            lambda: quiet_fit(data, "maxprob", tolerance=0.02, delta=0.1),
            lambda p: f"{p.guarantee_['n_certified']} certified",
        )
        record(
            "certified maxprob (consistency, hb)",
            lambda: quiet_fit(data, "maxprob", tolerance=0.05, delta=0.1, risk="consistency"),
            lambda p: f"{p.guarantee_['n_certified']} certified",
        )
        record(
            "certified maxprob (consistency, hb, split)",
            lambda: quiet_fit(
                data,
                "maxprob",
                tolerance=0.05,
                delta=0.1,
                risk="consistency",
                calibration_split=0.5,
                random_state=0,
            ),
            lambda p: f"{p.guarantee_['n_certified']} certified",
        )
        record(
            "certified maxprob (accuracy gap, crc)",
            lambda: quiet_fit(data, "maxprob", tolerance=0.02, guarantee="expectation"),
            lambda p: f"{p.guarantee_['n_certified']} certified",
        )
        record(
            "certified maxprob (accuracy gap, crc, split)",
            lambda: quiet_fit(
                data,
                "maxprob",
                tolerance=0.02,
                guarantee="expectation",
                calibration_split=0.5,
                random_state=0,
            ),
            lambda p: f"{p.guarantee_['n_certified']} certified",
        )
    beem_wanted = not args.only or any("BEEM" in w for w in args.only)
    exact_cost = {}  # the exact accuracy target's mean cost, to compare levels= with

    def exact_level(policy):
        exact_cost["exact"] = policy.fit_info_["fit_mean_cost"]
        return f"level {policy.fit_info_['level']:.4g}"

    def levels(policy):
        note = f"level {policy.fit_info_['level']:.4g}"
        if "exact" in exact_cost:
            gap = policy.fit_info_["fit_mean_cost"] / exact_cost["exact"] - 1
            note += f", mean cost {gap:+.3%} against exact"
        return note

    if n <= args.beem_max_n and beem_wanted:
        quiet_fit(data.subset(slice(0, 200)), "beem-a", target="accuracy")  # compiles (numba)
        record(
            "BEEM accuracy target",
            lambda: quiet_fit(data, "beem-a", target="accuracy"),
            exact_level,
            True,
        )
        # Compile the replay too (a split certificate of a level path).
        quiet_fit(data.subset(slice(0, 400)), "beem-a", tolerance=0.3, delta=0.1)
        record(
            "BEEM certified consistency (hb, split)",
            lambda: quiet_fit(
                data, "beem-a", tolerance=0.05, delta=0.1, risk="consistency", random_state=0
            ),
            lambda p: f"{p.guarantee_['n_tested']} tested",
            True,
        )
        record(
            "BEEM certified budget (crc, split)",
            lambda: quiet_fit(
                data, "beem-a", budget=budget, guarantee="expectation", random_state=0
            ),
            lambda p: f"{p.guarantee_['n_tested']} tested",
            True,
        )
        record(
            "BEEM certified accuracy gap (crc, split)",
            lambda: quiet_fit(
                data, "beem-a", tolerance=0.02, guarantee="expectation", random_state=0
            ),
            lambda p: f"{p.guarantee_['n_tested']} tested",
            True,
        )
        if n <= args.beem_front_max_n:
            record(
                "BEEM front",
                lambda: eeopt.pareto_front(data, method="beem-a", verbose=False),
                lambda front: f"{len(front)} front points",
                True,
            )
    if n <= args.beem_levels_max_n and beem_wanted:
        grid = args.beem_levels
        quiet_fit(data.subset(slice(0, 200)), "beem-a", target="accuracy", levels=grid)
        policy = record(
            f"BEEM accuracy target (levels={grid})",
            lambda: quiet_fit(data, "beem-a", target="accuracy", levels=grid),
            levels,
            True,
        )
        record(
            f"BEEM accuracy target (levels={grid}, n_jobs=-1)",
            lambda: quiet_fit(data, "beem-a", target="accuracy", levels=grid, n_jobs=-1),
            levels,
            True,
        )
        if policy is not None:  # BEEM's own evaluation (its scores, then the exits): a baseline
            record(f"BEEM-A policy evaluation (levels={grid})", lambda: policy.evaluate(data))
        record(
            f"BEEM front (levels={grid})",
            lambda: eeopt.pareto_front(data, method="beem-a", levels=grid, verbose=False),
            lambda front: f"{len(front)} front points",
            True,
        )
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
    parser.add_argument(
        "--beem-levels-max-n", type=int, default=10_000_000 if HAVE_NUMBA else default_beem
    )
    parser.add_argument("--beem-levels", type=int, default=256, help="BEEM's levels= rows")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--mmap", action="store_true", help="memory-map the token arrays")
    parser.add_argument("--beem-only", action="store_true", help="only the BEEM measurements")
    parser.add_argument(
        "--only", nargs="+", default=None, help="only measurements whose name has one of these"
    )
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
