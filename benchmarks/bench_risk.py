"""Certification cost (eeopt.risk) as ratios measured in one run.

    python benchmarks/bench_risk.py [--settings 1000000] [--n 5000] [--wsr-settings 200]

- ``certify_means`` on a path of S settings that are all rejected (the worst case: every
  p-value and every upper bound is computed), at S / 10 and S: the time should grow about
  linearly (ratio ~10), and is compared with one evaluation of the p-values of the S means
  (``hb_p_value`` or ``binomial_p_value``): the rest is the upper bounds.
- The same path with a failure at 1% of its length: what stopping at the first non-rejection
  saves.
- ``certify(bound="wsr")`` on a ``(wsr_settings, n)`` loss matrix, all rejected, against one
  pass of the capital process over the matrix (``wsr_p_value``): the upper bounds' root finding
  costs a number of such passes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from eeopt import risk


def timed(function, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", type=int, default=1_000_000)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--wsr-settings", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, big = args.n, args.settings

    def path(size: int, binary: bool) -> np.ndarray:
        means = np.sort(rng.random(size)) * 0.05  # every setting well below epsilon = 0.1
        return np.round(means * n) / n if binary else means

    print(f"n = {n} calibration samples, epsilon = 0.1, delta = 0.1")
    for bound, binary in (("hb", False), ("binomial", True)):
        small_path, big_path = path(big // 10, binary), path(big, binary)
        small = timed(lambda p=small_path, b=bound: risk.certify_means(p, n, 0.1, 0.1, bound=b))
        full = timed(lambda p=big_path, b=bound: risk.certify_means(p, n, 0.1, 0.1, bound=b))
        p_value = risk.hb_p_value if bound == "hb" else risk.binomial_p_value
        floor = timed(lambda p=big_path, f=p_value: f(p, n, 0.1))
        failing = big_path.copy()
        failing[big // 100] = 0.5
        lazy = timed(lambda p=failing, b=bound: risk.certify_means(p, n, 0.1, 0.1, bound=b))
        print(
            f"certify_means {bound:8s} S = {big:,}: {full:.3f} s "
            f"({full / floor:.1f}x the p-values alone); S / 10: {small:.3f} s "
            f"(scaling {full / small:.1f}x for 10x); failure at 1%: {lazy:.3f} s "
            f"({full / lazy:.0f}x faster)"
        )
    losses = (rng.random((args.wsr_settings, n)) < 0.05).astype(np.float64)
    one_pass = timed(lambda: risk.wsr_p_value(losses, 0.1, 0.1))
    certified = timed(lambda: risk.certify(losses, 0.1, 0.1, bound="wsr"), repeat=2)
    print(
        f"certify wsr on ({args.wsr_settings}, {n}): {certified:.3f} s = "
        f"{certified / one_pass:.1f} capital passes ({one_pass:.3f} s each)"
    )


if __name__ == "__main__":
    main()
