"""RC-EENN's risk control for early exit (Jazbec et al., NeurIPS 2024), re-implemented.

    python benchmarks/rc_eenn.py [--dataset mnist1d] [--trials 200] [--n-cal 1000]
                                 [--epsilon 0.02] [--delta 0.1] [--risk gap]

Written from the paper's description, for comparing eeopt's certification with it; not part of
the package. The procedure:

- One threshold ``lam`` shared by every early exit, on the grid ``1.00, 0.99, ..., 0.00``
  ordered from the most conservative (index 0) to the most aggressive. A sample leaves at the
  first exit whose max-probability is ``> lam`` (strictly, as in the authors' code), else at
  the last exit.
- Per-sample losses of each ``lam``: ``"gap"``, ``1[exit wrong] - 1[final wrong]`` (their
  "prediction-gt-gap"), or ``"consistency"``, ``1[exit prediction != final prediction]``.
- ``procedure="ucb-wsr"``: the WSR upper confidence bound of RCPS (Bates et al. 2021, bets
  ``min(1, sqrt(2 log(1/delta) / (n var_{i-1})))``, capital ``prod (1 - nu_i (L_i - R))``,
  bound searched for ``R >= 0``) on the raw losses; the chosen ``lam`` is the last of the
  prefix of the grid whose bounds are ``< epsilon``.
- ``procedure="ltt"``: Learn then Test with Hoeffding-Bentkus p-values on ``max(loss, 0)``
  (as their code clips the losses), fixed-sequence along the grid. The correct choice is the
  last rejected ``lam``; ``first_non_rejected=True`` reproduces their code, which returns the
  first ``lam`` that is *not* rejected (one step past what the test allows, so its family-wise
  error is not controlled). The self-check below shows the difference.
- ``procedure="crc"``: their conformal risk control: the most aggressive ``lam`` anywhere on the
  grid with ``mean loss <= ((n + 1) epsilon - B) / n`` on the raw losses (no monotone
  envelope; eeopt's :func:`eeopt.risk.conformal_risk_control` takes the running maximum).

When no ``lam`` is certified the corrected procedures return ``threshold = inf`` (no early
exit) and ``index = -1``.

The script's main loop draws calibration sets from a shipped dataset (val and test splits
pooled), chooses ``lam`` by each procedure, and measures the risk on the remaining samples
(the stand-in for the true risk): the share of trials whose held-out risk exceeds epsilon, and
the mean held-out cost. ``--self-check`` runs the toy case only.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np

GRID = np.round(np.arange(100, -1, -1) / 100, 2)  # 1.00, 0.99, ..., 0.00
PROCEDURES = ("ucb-wsr", "ltt", "crc")
RISKS = ("gap", "consistency")


@dataclass(frozen=True)
class Choice:
    """The threshold a procedure chose: ``threshold`` (``inf``: no early exit) and its grid
    ``index`` (-1: none certified); ``statistics`` are the per-``lam`` p-values or bounds."""

    threshold: float
    index: int
    statistics: np.ndarray


def exits_on_grid(confidence: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """Exit index of every sample for every ``lam``: ``(n_grid, n)``, first exit with
    ``confidence > lam``, else the last."""
    n, n_exits = confidence.shape
    fires = confidence[None, :, :-1] > grid[:, None, None]
    any_fires = fires.any(axis=2)
    return np.where(any_fires, fires.argmax(axis=2), n_exits - 1)


def grid_losses(
    confidence: np.ndarray,
    predictions: np.ndarray,
    labels: np.ndarray | None,
    risk: str = "gap",
    grid: np.ndarray = GRID,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample losses ``(n_grid, n)`` and exits ``(n_grid, n)`` along the grid."""
    if risk not in RISKS:
        raise ValueError(f"risk must be one of {RISKS}, got {risk!r}.")
    exits = exits_on_grid(confidence, grid)
    exit_predictions = np.take_along_axis(predictions.T, exits, axis=0)
    final = predictions[:, -1]
    if risk == "consistency":
        return (exit_predictions != final[None, :]).astype(np.float64), exits
    if labels is None:
        raise ValueError("risk='gap' needs labels.")
    exit_wrong = exit_predictions != labels[None, :]
    final_wrong = (final != labels)[None, :]
    return exit_wrong.astype(np.float64) - final_wrong.astype(np.float64), exits


def rcps_wsr_upper_bounds(losses: np.ndarray, delta: float, steps: int = 60) -> np.ndarray:
    """RCPS's WSR upper bound of each row's mean (rows in the given sample order).

    Bets ``nu_i = min(1, sqrt(2 log(1/delta) / (n var_{i-1})))`` with WSR's running mean and
    variance (priors 1/2 and 1/4); the bound is the smallest ``R`` in ``[0, 1]`` with
    ``max_i prod_{j <= i} (1 - nu_j (L_j - R)) > 1/delta`` (1 if none), by bisection.
    """
    n = losses.shape[1]
    steps_t = np.arange(2, n + 2)
    running_mean = (0.5 + np.cumsum(losses, axis=1)) / steps_t
    running_var = (0.25 + np.cumsum((losses - running_mean) ** 2, axis=1)) / steps_t
    previous = np.concatenate([np.full((losses.shape[0], 1), 0.25), running_var[:, :-1]], axis=1)
    bets = np.minimum(1.0, np.sqrt(2 * math.log(1 / delta) / (n * previous)))

    def rejected(r: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            log_capital = np.cumsum(np.log(1 - bets * (losses - r[:, None])), axis=1)
        return log_capital.max(axis=1) > math.log(1 / delta)

    low, high = np.zeros(losses.shape[0]), np.ones(losses.shape[0])
    reachable = rejected(high)
    for _ in range(steps):
        mid = 0.5 * (low + high)
        hit = rejected(mid)
        high, low = np.where(hit, mid, high), np.where(hit, low, mid)
    return np.where(reachable, high, 1.0)


def hb_p_values(means: np.ndarray, n: int, epsilon: float) -> np.ndarray:
    """LTT's Hoeffding-Bentkus p-values of H: mean > epsilon (losses in [0, 1])."""
    from scipy import special

    a = np.minimum(means, epsilon)
    kl = special.rel_entr(a, epsilon) + special.rel_entr(1 - a, 1 - epsilon)
    bentkus = math.e * special.bdtr(np.ceil(np.round(n * means, 9)), n, epsilon)
    return np.minimum(1.0, np.minimum(np.exp(-n * kl), bentkus))


def rc_eenn_threshold(
    confidence: np.ndarray,
    predictions: np.ndarray | None,
    labels: np.ndarray | None,
    epsilon: float,
    delta: float,
    risk: str = "gap",
    procedure: str = "ltt",
    first_non_rejected: bool = False,
    grid: np.ndarray = GRID,
) -> Choice:
    """RC-EENN's choice of the shared threshold on the calibration samples given.

    Parameters
    ----------
    confidence : ndarray of shape (n, K), or probabilities of shape (n, K, C)
        Max-probability per exit (or the probabilities, whose max and argmax are taken).
    predictions : ndarray of shape (n, K) or None
        Argmax per exit (None when ``confidence`` holds the probabilities).
    labels : ndarray of shape (n,) or None
        Needed for ``risk="gap"``.
    epsilon, delta : float
        Risk level and error probability.
    risk : {"gap", "consistency"}
    procedure : {"ltt", "ucb-wsr", "crc"}
    first_non_rejected : bool, default=False
        ``procedure="ltt"`` only: return the first ``lam`` not rejected, as the authors' code
        does (wrong), instead of the last rejected one.

    Returns
    -------
    Choice
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    if confidence.ndim == 3:
        predictions = confidence.argmax(axis=2)
        confidence = confidence.max(axis=2)
    if procedure not in PROCEDURES:
        raise ValueError(f"procedure must be one of {PROCEDURES}, got {procedure!r}.")
    if first_non_rejected and procedure != "ltt":
        raise ValueError(
            "first_non_rejected reproduces the off-by-one of RC-EENN's LTT code; their UCB-WSR "
            "and CRC code have no such step."
        )
    losses, _ = grid_losses(confidence, np.asarray(predictions), labels, risk, grid)
    n = losses.shape[1]
    if procedure == "crc":
        bound = 1.0
        passing = np.flatnonzero(losses.mean(axis=1) <= ((n + 1) * epsilon - bound) / n)
        index = int(passing.max()) if passing.size else -1
        return Choice(_threshold(grid, index), index, losses.mean(axis=1))
    if procedure == "ucb-wsr":
        statistics = rcps_wsr_upper_bounds(losses, delta)
        passed = statistics < epsilon
    else:
        statistics = hb_p_values(np.maximum(losses, 0.0).mean(axis=1), n, epsilon)
        passed = statistics <= delta
    first_failure = int(np.argmin(passed)) if not passed.all() else len(grid)
    if first_non_rejected:
        # Their code: the smallest index whose p-value exceeds delta; -1 (the last lam, in
        # Python indexing) when every p-value is at most delta.
        index = first_failure if first_failure < len(grid) else len(grid) - 1
    else:
        index = first_failure - 1
    return Choice(_threshold(grid, index), index, statistics)


def _threshold(grid: np.ndarray, index: int) -> float:
    return float(grid[index]) if index >= 0 else math.inf


def self_check() -> None:
    """A toy path where the corrected LTT returns the last rejected lam and the authors' code
    the first non-rejected one."""
    # Two exits; 2000 samples. The early exit is right for the samples with confidence > 0.7
    # and wrong (while the final exit is right) for the samples with confidence in (0.5, 0.7].
    n = 2000
    rng = np.random.default_rng(0)
    confidence = np.column_stack([rng.uniform(0.0, 1.0, n), np.ones(n)])
    labels = np.zeros(n, dtype=int)
    early = np.where(confidence[:, 0] > 0.7, 0, np.where(confidence[:, 0] > 0.5, 1, 0))
    predictions = np.column_stack([early, labels])
    corrected = rc_eenn_threshold(confidence, predictions, labels, 0.05, 0.1)
    flawed = rc_eenn_threshold(confidence, predictions, labels, 0.05, 0.1, first_non_rejected=True)
    assert flawed.index == corrected.index + 1, (corrected, flawed)
    assert corrected.statistics[corrected.index] <= 0.1 < flawed.statistics[flawed.index]
    print(
        f"self-check: corrected LTT chooses lam = {corrected.threshold:.2f} (last rejected), "
        f"the authors' code lam = {flawed.threshold:.2f} (first non-rejected, p = "
        f"{flawed.statistics[flawed.index]:.3f} > delta)."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--n-cal", type=int, default=1000)
    parser.add_argument("--epsilon", type=float, default=0.02)
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--risk", default="gap", choices=RISKS)
    parser.add_argument("--self-check", action="store_true")
    args = parser.parse_args(argv)
    self_check()
    if args.self_check:
        return

    from eeopt import datasets, risk

    val, test = datasets.load_both(args.dataset)
    confidence = np.concatenate([val.maxprob, test.maxprob])
    predictions = np.concatenate([val.predictions, test.predictions])
    labels = np.concatenate([val.labels, test.labels])
    costs = val.costs
    losses, exits = grid_losses(confidence, predictions, labels, args.risk)
    n_total = labels.shape[0]
    rng = np.random.default_rng(0)
    rows = {
        "RC-EENN ucb-wsr": [],
        "RC-EENN ltt (their code: first non-rejected)": [],
        "RC-EENN ltt (corrected)": [],
        "eeopt certify hb": [],
        "eeopt certify wsr": [],
        "eeopt certify binomial (positive part if gap)": [],
    }
    for _ in range(args.trials):
        cal = rng.choice(n_total, args.n_cal, replace=False)
        rest = np.setdiff1d(np.arange(n_total), cal)
        common = (confidence[cal], predictions[cal], labels[cal], args.epsilon, args.delta)
        picks = {
            "RC-EENN ucb-wsr": rc_eenn_threshold(*common, args.risk, "ucb-wsr").index,
            "RC-EENN ltt (their code: first non-rejected)": rc_eenn_threshold(
                *common, args.risk, "ltt", first_non_rejected=True
            ).index,
            "RC-EENN ltt (corrected)": rc_eenn_threshold(*common, args.risk, "ltt").index,
        }
        cal_losses = losses[:, cal]
        loss_range = (-1.0, 1.0) if args.risk == "gap" else (0.0, 1.0)
        for bound in ("hb", "wsr"):
            picks[f"eeopt certify {bound}"] = risk.certify(
                cal_losses, args.epsilon, args.delta, bound=bound, loss_range=loss_range
            ).index
        picks["eeopt certify binomial (positive part if gap)"] = risk.certify(
            cal_losses, args.epsilon, args.delta, bound="binomial", loss_range=loss_range,
            positive_part=args.risk == "gap",
        ).index  # fmt: skip
        for name, index in picks.items():
            held_out_risk = losses[max(index, 0), rest].mean() if index >= 0 else 0.0
            held_out_cost = costs[exits[index, rest]].mean() if index >= 0 else costs[-1]
            rows[name].append((held_out_risk > args.epsilon, held_out_cost / costs[-1]))
    print(
        f"{args.dataset}, risk={args.risk}, epsilon={args.epsilon}, delta={args.delta}, "
        f"n_cal={args.n_cal}, {args.trials} trials; held-out risk on the other "
        f"{n_total - args.n_cal} samples"
    )
    print(f"{'procedure':48s} {'P(risk > eps)':>14s} {'cost / full':>12s}")
    for name, values in rows.items():
        violated, cost = np.asarray(values).T
        print(f"{name:48s} {violated.mean():14.3f} {cost.mean():12.3f}")


if __name__ == "__main__":
    main()
