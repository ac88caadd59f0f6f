"""Certified targets: which setting of a path has a risk at most epsilon on new data.

A method's candidate settings form a path ordered from the most conservative (index 0, no early
exit) to the most aggressive. For each setting ``j`` and calibration sample ``i`` a bounded loss
``losses[j, i]`` says what exiting early cost that sample (a wrong answer, a disagreement with
the final exit, a cost). The *risk* ``R_j`` of a setting is its mean loss on new data drawn like
the calibration samples. This module answers: which is the most aggressive setting with
``R_j <= epsilon``, such that the answer is right with probability at least ``1 - delta`` over
the draw of the calibration set?

**Fixed-sequence testing** (Learn then Test, Angelopoulos et al. 2021). Test the null hypotheses
``H_j: R_j > epsilon`` in path order, ``j = 0, 1, ...``; reject ``H_j`` while its p-value is at
most ``delta`` and stop at the first setting that is not rejected. The certified setting is the
*last rejected* one (-1 if ``H_0`` stands). A wrong certificate needs a true ``H_j`` rejected;
the first true null on the path is reached only if everything before it was rejected, and it is
rejected with probability at most ``delta``, so the family-wise error is at most ``delta`` with no
union bound over the settings. (RC-EENN's code returns the first *non*-rejected setting, one step
past what the procedure allows; :func:`certify` never does.)

**Bounds.** Each is a p-value for ``H: mean > epsilon`` and, inverted, an upper confidence bound
(UCB) at level ``delta``: ``p(epsilon) <= delta`` exactly when ``epsilon >= UCB``. Losses in
``[a, b]`` (``loss_range``) are mapped to ``[0, 1]`` by ``(x - a) / (b - a)``, epsilon with them,
and bounds are mapped back. With ``n`` samples and mean ``m`` (on ``[0, 1]``):

- ``"binomial"`` (0/1 losses only): ``p = P(Binomial(n, epsilon) <= n m)``, exact
  (Clopper-Pearson); the UCB is the Clopper-Pearson upper limit.
- ``"hb"`` (Hoeffding-Bentkus, LTT Proposition 3): ``p = min(exp(-n kl(m ∧ epsilon, epsilon)),
  e P(Binomial(n, epsilon) <= ceil(n m)))``, ``kl`` the Bernoulli relative entropy; any loss in
  the range.
- ``"wsr"`` (Waudby-Smith & Ramdas 2023, betting): ``p = 1 / max_t K_t``, ``K_t`` the capital
  after ``t`` samples of a bettor who stakes ``lambda_i`` on each loss being below epsilon:
  ``K_t = prod_{i <= t} (1 + lambda_i (epsilon - x_i))``. Under ``H`` the capital is a
  nonnegative supermartingale, so Ville's inequality bounds ``P(max_t K_t >= 1/delta)`` by
  ``delta``. The bets are WSR's predictable plug-in ``lambda_i = min(sqrt(2 log(1/delta) / (n
  var_{i-1})), c / (1 - epsilon))``, ``var_{i-1}`` a running variance of the losses before ``i``
  and ``c = 1`` (:data:`WSR_MAX_BET`). It adapts to the variance, so it is the tightest for
  low-variance losses. It needs the per-sample losses and depends on their order, which is a
  random permutation fixed by ``random_state`` (see :func:`certify`).

``"binomial"`` and ``"hb"`` depend on the mean alone, so :func:`certify_means` certifies a path
of millions of settings from their means in O(n_settings) time, stopping at the first
non-rejection.

**Conformal risk control** (:func:`conformal_risk_control`, Angelopoulos et al., ICLR 2024)
bounds the *expected* risk instead: the chosen setting's loss on a new sample, averaged over
calibration sets, is at most epsilon. There is no delta.

Each function validates its arguments (shapes, NaN, ranges, unknown bounds) before any work and
raises a ValueError or TypeError naming the argument.

Examples
--------
>>> import numpy as np
>>> from eeopt.risk import certify
>>> rng = np.random.default_rng(0)
>>> risks = np.array([0.0, 0.02, 0.05, 0.2])          # true risk along the path
>>> u = rng.random(2000)                               # one draw per calibration sample
>>> losses = (u[None, :] < risks[:, None]).astype(float)   # (n_settings, n_samples)
>>> cert = certify(losses, epsilon=0.1, delta=0.1, bound="hb")
>>> cert.index, cert.n_tested
(2, 4)
>>> print(cert.statement())  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
With probability at least 0.9 over the calibration set (2000 samples), setting 2 has mean loss
at most 0.1 on new data...
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from scipy import special

from eeopt import _validation as v

#: The bounds :func:`certify` accepts.
BOUNDS = ("binomial", "hb", "wsr")
#: The bounds that depend on the mean loss alone (accepted by :func:`certify_means`).
MEAN_BOUNDS = ("binomial", "hb")
#: ``c`` in WSR's bet cap ``c / (1 - epsilon)``: the share of the largest stake that keeps the
#: capital nonnegative (a loss of 1 at ``c = 1`` leaves none). Waudby-Smith & Ramdas suggest 1/2
#: or 3/4, which keep the capital away from zero; eeopt stakes the whole of it, as RC-EENN's
#: UCB-WSR effectively does. Measured on the shipped data (docs/guarantees.md), ``c = 1`` is
#: ahead at 100 calibration samples and behind by up to 5% at 1,000 and epsilon <= 0.01.
WSR_MAX_BET = 1.0
#: A mean times ``n_samples`` within ``COUNT_ATOL + COUNT_RTOL * (n * mean)`` of a whole number
#: is that number: float64 round-off in ``count / n`` stays far below it.
COUNT_ATOL = 1e-9
COUNT_RTOL = 1e-12
# WSR's bound is found to this width (on the [0, 1] scale) by at most this many evaluations.
_ROOT_TOL = 1e-13
_ROOT_MAX_STEPS = 200
# Newton's method (Hoeffding's bound) stops at a step below this share of min(u, 1 - u).
_NEWTON_RTOL = 1e-14
# Lazy testing computes p-values in chunks that double from this size.
_FIRST_CHUNK = 64
# WSR works on blocks of rows holding about this many losses (bounds the temporary memory).
_BLOCK_SIZE = 1 << 21
# Elementwise bounds work on blocks of this many values (their passes stay in the cache).
_CACHE_BLOCK = 1 << 15


# -- the certificate --------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Certification:
    """The outcome of testing a path of settings: which one is certified, and the evidence.

    Attributes
    ----------
    index : int
        The certified setting: the most aggressive one the procedure allows; -1 if none.
    guarantee : {"probability", "expectation"}
        ``"probability"``: with probability at least ``1 - delta`` over the calibration set, the
        certified setting's risk on new data is at most ``epsilon`` (:func:`certify`).
        ``"expectation"``: the chosen setting's loss on a new sample, in expectation over the
        calibration set, is at most ``epsilon`` (:func:`conformal_risk_control`).
    bound : str
        ``"binomial"``, ``"hb"``, ``"wsr"``, or ``"crc"`` for conformal risk control.
    epsilon : float
        The risk level, in the units of the loss.
    delta : float or None
        The error probability (None for conformal risk control).
    n_samples, n_settings : int
        Calibration samples; settings on the path.
    n_tested : int
        Settings whose p-value was computed: up to and including the first one not rejected
        (all of them when every one is rejected). Testing stops there.
    p_values : ndarray of shape (n_settings,) or None
        p-values of ``H_j: R_j > epsilon`` for the tested settings, NaN after ``n_tested``
        (never computed). None for conformal risk control.
    upper_bounds : ndarray of shape (n_settings,)
        For ``"probability"``: each tested setting's ``1 - delta`` upper confidence bound on its
        risk, in loss units (NaN after ``n_tested``); setting j is rejected exactly when
        ``upper_bounds[j] <= epsilon`` (up to round-off). For ``"expectation"``: the conformal bound
        ``(n R_j + B) / (n + 1)`` of every setting (R_j the mean of the running-max losses).
        Computed when first read (millions of tested settings cost seconds of inversions);
        :meth:`upper_bounds_at` gives some of them, the same numbers.
    smallest_certifiable_epsilon : float
        The smallest epsilon at which these data, bound and delta certify at least the first
        setting (``index >= 0``): ``upper_bounds[0]``. When ``index == -1`` this is the level
        to ask for instead (or: more calibration samples). The epsilon each later setting
        would need is :func:`certifiable_epsilons`.
    bounds_of : callable
        ``bounds_of(positions)``: the upper bounds of the tested settings at ``positions``
        (int64), in loss units; what :attr:`upper_bounds` and :meth:`upper_bounds_at` read.
    loss_range : tuple
        ``(a, b)`` the losses were declared to lie in (after ``positive_part``); ``(None, B)``
        for conformal risk control, which uses only the upper bound ``B``.
    positive_part : bool
        True if ``max(loss, 0)`` was certified in place of the loss (it dominates the loss,
        so the statement holds for the loss as well).
    """

    index: int
    guarantee: str
    bound: str
    epsilon: float
    delta: float | None
    n_samples: int
    n_settings: int
    n_tested: int
    p_values: np.ndarray | None
    bounds_of: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    smallest_certifiable_epsilon: float
    loss_range: tuple[float | None, float]
    positive_part: bool = False

    @cached_property
    def upper_bounds(self) -> np.ndarray:
        """Every setting's upper bound, NaN past ``n_tested`` (see the class docstring)."""
        out = np.full(self.n_settings, np.nan)
        out[: self.n_tested] = self.bounds_of(np.arange(self.n_tested))
        return out

    def upper_bounds_at(self, positions: Any) -> np.ndarray:
        """``upper_bounds[positions]`` for tested settings only, without the others (a record
        of a few of millions tested): elementwise, so the same numbers."""
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size and not (0 <= positions.min() and positions.max() < self.n_tested):
            raise ValueError(
                f"positions must index the {self.n_tested} tested settings (0 to "
                f"{self.n_tested - 1}); got {positions.min()} to {positions.max()}."
            )
        if "upper_bounds" in self.__dict__:  # already computed
            return self.upper_bounds[positions]
        return np.asarray(self.bounds_of(positions), dtype=np.float64).reshape(positions.shape)

    @property
    def certified(self) -> bool:
        """True if a setting was certified (``index >= 0``)."""
        return self.index >= 0

    def statement(self) -> str:
        """The guarantee in words, with its conditions."""
        loss = "max(loss, 0)" if self.positive_part else "loss"
        if self.guarantee == "expectation":
            if not self.certified:
                return (
                    f"No setting passes conformal risk control at epsilon={self.epsilon:g} "
                    f"({self.n_samples} samples); the first would need epsilon >= "
                    f"{self.smallest_certifiable_epsilon:g}."
                )
            return (
                f"Conformal risk control: averaged over calibration sets of "
                f"{self.n_samples} samples, setting {self.index} has expected {loss} at most "
                f"{self.epsilon:g} on a new exchangeable sample."
            )
        if not self.certified:
            return (
                f"No setting is certified at epsilon={self.epsilon:g}, delta={self.delta:g} "
                f"with {self.n_samples} samples ({self.bound} bound); these data certify the "
                f"first setting from epsilon={self.smallest_certifiable_epsilon:g}."
            )
        also = " (hence also of the loss)" if self.positive_part else ""
        return (
            f"With probability at least {1 - self.delta:g} over the calibration set "
            f"({self.n_samples} samples), setting {self.index} has mean {loss}{also} at most "
            f"{self.epsilon:g} on new data exchangeable with it ({self.bound} bound, "
            f"fixed-sequence testing of {self.n_tested} of {self.n_settings} settings)."
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: numbers and lists; arrays cut to the tested settings."""

        def listed(values: np.ndarray | None) -> list[float] | None:
            if values is None:
                return None
            return [float(x) for x in values[: self.n_tested]]

        return {
            "guarantee": self.guarantee,
            "bound": self.bound,
            "index": int(self.index),
            "epsilon": float(self.epsilon),
            "delta": None if self.delta is None else float(self.delta),
            "n_samples": int(self.n_samples),
            "n_settings": int(self.n_settings),
            "n_tested": int(self.n_tested),
            "loss_range": [None if x is None else float(x) for x in self.loss_range],
            "positive_part": bool(self.positive_part),
            "smallest_certifiable_epsilon": float(self.smallest_certifiable_epsilon),
            "p_values": listed(self.p_values),
            "upper_bounds": listed(self.upper_bounds),
            "statement": self.statement(),
        }


# -- validation -------------------------------------------------------------------------------
def _check_real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    return value


def _check_delta(delta: Any) -> float:
    delta = _check_real(delta, "delta")
    if not 0.0 < delta < 1.0:
        raise ValueError(
            f"delta must lie strictly between 0 and 1 (the probability that the certificate "
            f"is wrong, e.g. 0.1); got {delta:g}."
        )
    return delta


def _check_loss_range(loss_range: Any) -> tuple[float, float]:
    if isinstance(loss_range, (str, bytes)) or np.ndim(loss_range) != 1 or len(loss_range) != 2:
        raise TypeError(f"loss_range must be a pair (a, b) with a < b, got {loss_range!r}.")
    low = _check_real(loss_range[0], "loss_range[0]")
    high = _check_real(loss_range[1], "loss_range[1]")
    if not low < high:
        raise ValueError(f"loss_range must have a < b, got ({low:g}, {high:g}).")
    return low, high


def _check_epsilon(epsilon: Any, loss_range: tuple[float, float]) -> float:
    epsilon = _check_real(epsilon, "epsilon")
    low, high = loss_range
    if not low <= epsilon <= high:
        raise ValueError(
            f"epsilon must lie in loss_range = [{low:g}, {high:g}] (a mean loss in the units "
            f"of the losses); got {epsilon:g}."
        )
    return epsilon


def _check_n_samples(n_samples: Any) -> int:
    return v.check_positive_int(n_samples, "n_samples")


def _check_bound(bound: Any, allowed: tuple[str, ...]) -> str:
    if bound == "wsr" and "wsr" not in allowed:
        raise ValueError(
            "bound='wsr' needs the per-sample losses (its capital process bets on each "
            "sample in turn); call certify(losses, ...) with the loss matrix, or use "
            "bound='hb' or 'binomial', which depend on the means alone."
        )
    return v.check_choice(bound, "bound", allowed)


def _as_finite(values: Any, name: str) -> np.ndarray:
    if isinstance(values, (str, bytes)) or values is None:
        raise TypeError(f"{name} must be an array of numbers, got {type(values).__name__}.")
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be read as an array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}).")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {n_bad} NaN or infinite value(s).")
    return arr


def _check_in_range(arr: np.ndarray, name: str, loss_range: tuple[float, float]) -> None:
    low, high = loss_range
    if arr.min() < low or arr.max() > high:
        raise ValueError(
            f"{name} must lie in loss_range = [{low:g}, {high:g}]; found values in "
            f"[{arr.min():g}, {arr.max():g}]. Pass the true range of the loss as loss_range."
        )


def _check_loss_matrix(losses: Any, name: str = "losses") -> np.ndarray:
    """(n_settings, n_samples) float64, finite, non-empty; a 1-d array is one setting."""
    arr = _as_finite(losses, name)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must have shape (n_settings, n_samples) (settings ordered from the most "
            f"conservative to the most aggressive), got shape {arr.shape}."
        )
    return arr


def _to_unit(values: np.ndarray, loss_range: tuple[float, float]) -> np.ndarray:
    """Exact affine map of [a, b] onto [0, 1] (a -> 0 and b -> 1 exactly)."""
    low, high = loss_range
    if (low, high) == (0.0, 1.0):
        return values
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def _from_unit(values: np.ndarray, loss_range: tuple[float, float]) -> np.ndarray:
    low, high = loss_range
    if (low, high) == (0.0, 1.0):
        return values
    return np.minimum(low + (high - low) * values, high)


def _unit_epsilon(epsilon: float, loss_range: tuple[float, float]) -> float:
    low, high = loss_range
    return min(max((epsilon - low) / (high - low), 0.0), 1.0)


def _binary_counts(means01: np.ndarray, n_samples: int, name: str) -> np.ndarray:
    """The whole numbers ``n * means`` of 0/1 losses; a ValueError if they are not whole."""
    totals = means01 * n_samples
    counts = np.rint(totals)
    if np.any(np.abs(totals - counts) > COUNT_ATOL + COUNT_RTOL * totals):
        raise ValueError(
            f"bound='binomial' needs 0/1 losses (each loss at one end of loss_range), so "
            f"n_samples * {name} (on the [0, 1] scale) must be whole numbers; they are not "
            f"(compute the means as counts / n_samples in float64). Use bound='hb' or 'wsr' "
            f"for other bounded losses."
        )
    return counts


def _ceil_counts(means01: np.ndarray, n_samples: int) -> np.ndarray:
    """``ceil(n * mean)``, with round-off near a whole number read as that number."""
    totals = means01 * n_samples
    nearest = np.rint(totals)
    close = np.abs(totals - nearest) <= COUNT_ATOL + COUNT_RTOL * totals
    return np.where(close, nearest, np.ceil(totals))


# -- the bounds on the [0, 1] scale (trusted input) --------------------------------------------
def _per_unique(function: Callable[[np.ndarray], np.ndarray], values: np.ndarray) -> np.ndarray:
    """``function`` (elementwise) evaluated once per distinct value, in cache-sized blocks: the
    counts of a path of millions of settings take at most n + 1 values, and the iterative
    bounds run several passes over their block."""
    distinct, inverse = np.unique(values, return_inverse=True)
    out = np.empty(distinct.shape)
    for start in range(0, distinct.size, _CACHE_BLOCK):
        out[start : start + _CACHE_BLOCK] = function(distinct[start : start + _CACHE_BLOCK])
    return out[inverse].reshape(values.shape)


def _binomial_p(counts: np.ndarray, n: int, eps01: float) -> np.ndarray:
    if eps01 >= 1.0:  # H: R > b is impossible
        return np.zeros(counts.shape)
    return _per_unique(lambda k: np.minimum(special.bdtr(k, n, eps01), 1.0), counts)


def _binomial_ucb(counts: np.ndarray, n: int, level: float) -> np.ndarray:
    """The p with P(Binomial(n, p) <= count) = level (Clopper-Pearson); 1 if count = n."""

    def upper(k: np.ndarray) -> np.ndarray:
        below = k < n
        return np.where(below, special.bdtri(np.where(below, k, 0.0), n, level), 1.0)

    return _per_unique(upper, counts)


def _bernoulli_kl(mean: np.ndarray, eps: np.ndarray | float) -> np.ndarray:
    return special.rel_entr(mean, eps) + special.rel_entr(1.0 - mean, 1.0 - eps)


def _kl_upper_inverse(means01: np.ndarray, target: float) -> np.ndarray:
    """The u >= mean with kl(mean, u) = target; 1 where there is none below 1.

    kl(mean, .) is increasing and convex on [mean, 1), so Newton's iterates started above the
    root decrease monotonically onto it (each one a valid, conservative bound). Two starts lie
    above the root: Pinsker (kl >= 2 (u - mean)^2) and kl >= -log 2 - (1 - mean) log(1 - u).
    The descent stops when a step is below 1e-14 of the iterate's distance to 0 or 1 (within
    round-off of the root).
    """
    with np.errstate(divide="ignore", over="ignore"):
        pinsker = means01 + math.sqrt(target / 2.0)
        tail = -np.expm1(-(target + math.log(2.0)) / (1.0 - means01))
    # Both can round to 1 when the mean is near 1: start below 1 then, and keep 1 (no root
    # below 1 within round-off) where even that start is under the root.
    upper = np.minimum(np.minimum(pinsker, tail), np.nextafter(1.0, 0.0))
    rows = np.flatnonzero((means01 < 1.0) & (_bernoulli_kl(means01, upper) >= target))
    result = np.ones_like(means01)
    result[rows] = upper[rows]
    for _ in range(_ROOT_MAX_STEPS):
        if rows.size == 0:
            break
        u, mean = result[rows], means01[rows]
        step = (_bernoulli_kl(mean, u) - target) * u * (1.0 - u) / (u - mean)
        step = np.maximum(step, 0.0)  # round-off at the root: never step below it
        result[rows] = u - step
        # Near 1 the steps are small but not done: measure them against the distance to 1.
        scale = np.maximum(_NEWTON_RTOL * np.minimum(u, 1.0 - u), 4.0 * np.spacing(u))
        rows = rows[step > scale]
    return result


def _hb_p(means01: np.ndarray, n: int, eps01: float) -> np.ndarray:
    if eps01 >= 1.0:
        return np.zeros(means01.shape)

    def p_value(mean: np.ndarray) -> np.ndarray:
        hoeffding = np.exp(-n * _bernoulli_kl(np.minimum(mean, eps01), eps01))
        bentkus = math.e * special.bdtr(_ceil_counts(mean, n), n, eps01)
        return np.minimum(np.minimum(hoeffding, bentkus), 1.0)

    return _per_unique(p_value, means01)


def _hb_ucb(means01: np.ndarray, n: int, delta: float) -> np.ndarray:
    # p = min(p_H, p_B), each nonincreasing in epsilon: {p <= delta} = [min(u_H, u_B), 1].
    def upper(mean: np.ndarray) -> np.ndarray:
        bentkus = _binomial_ucb(_ceil_counts(mean, n), n, delta / math.e)
        return np.minimum(_kl_upper_inverse(mean, math.log(1.0 / delta) / n), bentkus)

    return _per_unique(upper, means01)


def _wsr_plugin_bets(x01: np.ndarray, delta: float) -> np.ndarray:
    """WSR's predictable plug-in bets before the cap, ``(rows, n)``: bet i sees x_1..x_{i-1}."""
    n = x01.shape[1]
    steps = np.arange(2, n + 2, dtype=np.float64)  # t + 1 for t = 1..n
    running_mean = (0.5 + np.cumsum(x01, axis=1)) / steps
    running_var = (0.25 + np.cumsum((x01 - running_mean) ** 2, axis=1)) / steps
    previous_var = np.empty_like(running_var)
    previous_var[:, 0] = 0.25
    previous_var[:, 1:] = running_var[:, :-1]
    return np.sqrt(2.0 * math.log(1.0 / delta) / (n * previous_var))


def _wsr_max_log_capital(x01: np.ndarray, bets: np.ndarray, eps01: np.ndarray) -> np.ndarray:
    """``max_t log K_t(eps)`` per row (``K_0 = 1``); ``eps01`` of shape (rows,)."""
    with np.errstate(divide="ignore"):
        cap = np.where(eps01 < 1.0, WSR_MAX_BET / (1.0 - eps01), np.inf)
    stakes = np.minimum(bets, cap[:, None])
    # At the cap a loss of 1 takes the whole capital: log1p(-1) = -inf, and the maximum stays
    # where it was. The clip keeps rounding from going below -1 (a NaN).
    change = np.maximum(stakes * (eps01[:, None] - x01), -1.0)
    with np.errstate(divide="ignore"):
        log_capital = np.cumsum(np.log1p(change), axis=1)
    return np.maximum(log_capital.max(axis=1), 0.0)


def _row_blocks(n_rows: int, n_samples: int):
    step = max(1, _BLOCK_SIZE // max(n_samples, 1))
    for start in range(0, n_rows, step):
        yield start, min(n_rows, start + step)


def _wsr_p(x01: np.ndarray, eps01: float, delta: float) -> np.ndarray:
    if eps01 >= 1.0:
        return np.zeros(x01.shape[0])
    out = np.empty(x01.shape[0])
    for start, stop in _row_blocks(x01.shape[0], x01.shape[1]):
        block = x01[start:stop]
        eps = np.full(stop - start, eps01)
        out[start:stop] = np.exp(-_wsr_max_log_capital(block, _wsr_plugin_bets(block, delta), eps))
    return out


def _increasing_root(
    function: Callable[[np.ndarray, np.ndarray], np.ndarray],
    low: np.ndarray,
    high: np.ndarray,
    value_low: np.ndarray,
    value_high: np.ndarray,
) -> np.ndarray:
    """Per row, the root of an increasing function bracketed by ``f(low) < 0 <= f(high)``.

    ``function(rows, x)`` evaluates the rows named. Illinois (regula falsi that halves the value
    kept at a stale end), with a bisection step whenever the secant point falls outside the
    bracket. Returns the upper end, where ``f >= 0``, within :data:`_ROOT_TOL` of the root.
    """
    low, high = low.copy(), high.copy()
    value_low, value_high = value_low.copy(), value_high.copy()
    last_moved = np.zeros(low.shape, dtype=np.int8)  # +1: high moved last, -1: low did
    for step in range(_ROOT_MAX_STEPS):
        rows = np.flatnonzero(high - low > _ROOT_TOL)
        if rows.size == 0:
            break
        lo, hi, f_lo, f_hi = low[rows], high[rows], value_low[rows], value_high[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            guess = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        inside = (guess > lo) & (guess < hi)
        if step % 16 == 15:  # a bisection now and then bounds the worst case
            inside[:] = False
        guess = np.where(inside, guess, 0.5 * (lo + hi))
        value = function(rows, guess)
        up = value >= 0
        moved = np.where(up, 1, -1).astype(np.int8)
        stale = moved == last_moved[rows]
        high[rows] = np.where(up, guess, hi)
        low[rows] = np.where(up, lo, guess)
        value_high[rows] = np.where(up, value, np.where(stale, 0.5 * f_hi, f_hi))
        value_low[rows] = np.where(up, np.where(stale, 0.5 * f_lo, f_lo), value)
        last_moved[rows] = moved
    return high


def _wsr_ucb(x01: np.ndarray, delta: float) -> np.ndarray:
    out = np.empty(x01.shape[0])
    for start, stop in _row_blocks(x01.shape[0], x01.shape[1]):
        out[start:stop] = _wsr_ucb_block(x01[start:stop], delta)
    return out


def _wsr_ucb_block(x01: np.ndarray, delta: float) -> np.ndarray:
    # K_t(eps) grows with eps (each factor does, the cap included), so {p <= delta} is an
    # interval [UCB, 1]: the root of max_t log K_t(eps) - log(1/delta), increasing in eps.
    target = math.log(1.0 / delta)
    bets = _wsr_plugin_bets(x01, delta)
    # At epsilon = 1 (the limit, bets uncapped): where p is still above delta, the UCB is 1.
    at_one = _wsr_max_log_capital(x01, bets, np.ones(x01.shape[0])) - target
    ucb = np.ones(x01.shape[0])
    reachable = np.flatnonzero(at_one >= 0)
    if reachable.size == 0:
        return ucb
    x_reachable, bets_reachable = x01[reachable], bets[reachable]

    def excess(rows: np.ndarray, eps: np.ndarray) -> np.ndarray:
        return _wsr_max_log_capital(x_reachable[rows], bets_reachable[rows], eps) - target

    # The bracket [0, 1] is wide and the capital steep near 1 (the cap c / (1 - eps) grows
    # without bound): narrow it first at the mean and at Hoeffding's distance above it, where
    # the root usually lies and the function is close to linear.
    low, high = np.zeros(reachable.size), np.ones(reachable.size)
    value_low, value_high = np.full(reachable.size, -target), at_one[reachable]  # K_t(0) <= 1
    mean = x_reachable.mean(axis=1)
    everything = np.arange(reachable.size)
    for guess in (mean, mean + math.sqrt(target / (2 * x01.shape[1]))):
        guess = np.clip(guess, low, high)
        value = excess(everything, guess)
        up = value >= 0
        high, value_high = np.where(up, guess, high), np.where(up, value, value_high)
        low, value_low = np.where(up, low, guess), np.where(up, value_low, value)
    ucb[reachable] = _increasing_root(excess, low, high, value_low, value_high)
    return ucb


# -- public bounds ----------------------------------------------------------------------------
def _means_arg(means: Any, loss_range: Any) -> tuple[np.ndarray, tuple[float, float]]:
    loss_range = _check_loss_range(loss_range)
    arr = _as_finite(means, "means")
    _check_in_range(arr, "means", loss_range)
    return _to_unit(arr, loss_range), loss_range


def _scalar_if_0d(arr: np.ndarray) -> np.ndarray:
    return arr[()] if arr.ndim == 0 else arr


def binomial_p_value(
    means: Any, n_samples: int, epsilon: float, *, loss_range: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """Exact binomial p-value of ``H: risk > epsilon`` for 0/1 losses.

    ``p = P(Binomial(n, epsilon') <= n m')`` on the ``[0, 1]`` scale (``m'``, ``epsilon'`` the
    mapped mean and level). It is valid because the count of losses at the top of the range is
    Binomial(n, R) and its lower tail shrinks as ``R`` grows past epsilon.

    Parameters
    ----------
    means : array-like of shape (n_settings,) or any shape
        Mean loss of each setting over the ``n_samples`` calibration samples; every loss is
        ``a`` or ``b`` so ``n_samples * (means - a) / (b - a)`` are whole numbers.
    n_samples : int
        Calibration samples behind each mean.
    epsilon : float
        Risk level in ``loss_range``. ``epsilon = b`` gives p = 0 (the null is impossible).
    loss_range : (float, float), default=(0.0, 1.0)
        ``(a, b)``, the two values the losses take.

    Returns
    -------
    ndarray of the shape of ``means``
        p-values in ``[0, 1]``.

    Examples
    --------
    >>> round(float(binomial_p_value(0.0, 10, 0.2)), 6)  # 0.8 ** 10
    0.107374
    """
    means01, loss_range = _means_arg(means, loss_range)
    n = _check_n_samples(n_samples)
    eps01 = _unit_epsilon(_check_epsilon(epsilon, loss_range), loss_range)
    return _scalar_if_0d(_binomial_p(_binary_counts(means01, n, "means"), n, eps01))


def binomial_upper_bound(
    means: Any, n_samples: int, delta: float, *, loss_range: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """Clopper-Pearson upper confidence bound at level ``1 - delta`` for 0/1 losses.

    The smallest epsilon whose :func:`binomial_p_value` is at most ``delta``
    (``b`` when every loss is ``b``). Same arguments as :func:`binomial_p_value`.

    Returns
    -------
    ndarray of the shape of ``means``
        Upper bounds on the risk, in loss units.

    Examples
    --------
    >>> round(float(binomial_upper_bound(0.0, 10, 0.1)), 6)  # 1 - 0.1 ** (1 / 10)
    0.205672
    """
    means01, loss_range = _means_arg(means, loss_range)
    n = _check_n_samples(n_samples)
    delta = _check_delta(delta)
    ucb = _binomial_ucb(_binary_counts(means01, n, "means"), n, delta)
    return _scalar_if_0d(_from_unit(ucb, loss_range))


def hb_p_value(
    means: Any, n_samples: int, epsilon: float, *, loss_range: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """Hoeffding-Bentkus p-value of ``H: risk > epsilon`` for losses bounded in ``loss_range``.

    On the ``[0, 1]`` scale (LTT, Proposition 3)::

        p = min(exp(-n kl(min(m, epsilon), epsilon)), e * P(Binomial(n, epsilon) <= ceil(n m)))

    with ``kl(a, b) = a log(a/b) + (1 - a) log((1 - a)/(1 - b))``, capped at 1.

    Parameters
    ----------
    means : array-like of shape (n_settings,) or any shape
        Mean loss of each setting over ``n_samples`` samples, in ``loss_range``.
    n_samples : int
        Calibration samples behind each mean.
    epsilon : float
        Risk level in ``loss_range``; ``epsilon = b`` gives p = 0.
    loss_range : (float, float), default=(0.0, 1.0)
        ``(a, b)`` with every loss in ``[a, b]``.

    Returns
    -------
    ndarray of the shape of ``means``
        p-values in ``[0, 1]``.

    Examples
    --------
    >>> float(hb_p_value(0.05, 1000, 0.1))  # doctest: +ELLIPSIS
    1.6296...e-08
    """
    means01, loss_range = _means_arg(means, loss_range)
    n = _check_n_samples(n_samples)
    eps01 = _unit_epsilon(_check_epsilon(epsilon, loss_range), loss_range)
    return _scalar_if_0d(_hb_p(means01, n, eps01))


def hb_upper_bound(
    means: Any, n_samples: int, delta: float, *, loss_range: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """Hoeffding-Bentkus upper confidence bound at level ``1 - delta``.

    The smallest epsilon whose :func:`hb_p_value` is at most ``delta``: the smaller of the
    Hoeffding bound (``kl(m, u) = log(1/delta) / n``, solved by Newton's method) and the
    Bentkus bound (the Clopper-Pearson limit at level ``delta / e`` for the count
    ``ceil(n m)``).

    Returns
    -------
    ndarray of the shape of ``means``
        Upper bounds on the risk, in loss units.

    Examples
    --------
    >>> round(float(hb_upper_bound(0.05, 1000, 0.1)), 4)
    0.064
    """
    means01, loss_range = _means_arg(means, loss_range)
    n = _check_n_samples(n_samples)
    delta = _check_delta(delta)
    return _scalar_if_0d(_from_unit(_hb_ucb(means01, n, delta), loss_range))


def _wsr_args(losses: Any, loss_range: Any) -> tuple[np.ndarray, tuple[float, float], bool]:
    loss_range = _check_loss_range(loss_range)
    arr = _as_finite(losses, "losses")
    one_setting = arr.ndim == 1
    arr = _check_loss_matrix(arr)
    _check_in_range(arr, "losses", loss_range)
    return _to_unit(arr, loss_range), loss_range, one_setting


def wsr_p_value(
    losses: Any, epsilon: float, delta: float, *, loss_range: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """Waudby-Smith–Ramdas betting p-value of ``H: risk > epsilon``, samples in the given order.

    On the ``[0, 1]`` scale, ``p = min(1, 1 / max_{t <= n} K_t)`` with the capital
    ``K_t = prod_{i <= t} (1 + lambda_i (epsilon - x_i))`` and the predictable plug-in bets
    ``lambda_i = min(sqrt(2 log(1/delta) / (n var_{i-1})), c / (1 - epsilon))``, where
    ``var_t = (1/4 + sum_{i <= t} (x_i - mu_i)^2) / (t + 1)``,
    ``mu_t = (1/2 + sum_{i <= t} x_i) / (t + 1)`` and ``c`` = :data:`WSR_MAX_BET`. ``delta``
    tunes the bets (they are fixed before the data are seen, so p is valid at every level; it
    is most powerful near ``delta``).

    The samples are taken in the order given: pass them in an order unrelated to their values
    (:func:`certify` applies a seeded random permutation). A sorted order breaks the guarantee.

    Parameters
    ----------
    losses : array-like of shape (n_settings, n_samples) or (n_samples,)
        Per-sample losses in ``loss_range``, one row per setting.
    epsilon : float
        Risk level in ``loss_range``; ``epsilon = b`` gives p = 0.
    delta : float in (0, 1)
        The level the bets are tuned for.
    loss_range : (float, float), default=(0.0, 1.0)

    Returns
    -------
    ndarray of shape (n_settings,), or a float for 1-d ``losses``

    Examples
    --------
    >>> round(float(wsr_p_value([0.0, 0.0], 0.5, 0.1)), 6)  # 1 / (1 + 2 * 0.5) ** 2
    0.25
    """
    x01, loss_range, one_setting = _wsr_args(losses, loss_range)
    eps01 = _unit_epsilon(_check_epsilon(epsilon, loss_range), loss_range)
    p = _wsr_p(x01, eps01, _check_delta(delta))
    return p[0] if one_setting else p


def wsr_upper_bound(
    losses: Any, delta: float, *, loss_range: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """Waudby-Smith–Ramdas upper confidence bound at level ``1 - delta`` (given order).

    The smallest epsilon whose :func:`wsr_p_value` is at most ``delta`` (the capital grows with
    epsilon, so this is a threshold), found by a bracketing root finder to 1e-13 of the range
    (rounded up); ``b`` if no epsilon below ``b`` is rejected.

    Returns
    -------
    ndarray of shape (n_settings,), or a float for 1-d ``losses``
        Upper bounds on the risk, in loss units.

    Examples
    --------
    >>> round(float(wsr_upper_bound(np.zeros(100), 0.1)), 4)
    0.0233
    """
    x01, loss_range, one_setting = _wsr_args(losses, loss_range)
    ucb = _from_unit(_wsr_ucb(x01, _check_delta(delta)), loss_range)
    return ucb[0] if one_setting else ucb


# -- fixed-sequence testing --------------------------------------------------------------------
def fixed_sequence(p_values: Any, delta: float) -> np.ndarray:
    """The last setting of the rejected prefix: reject ``p_j <= delta`` in order, stop at the first
    that is not.

    Parameters
    ----------
    p_values : array-like of shape (..., n_settings)
        p-values along the path (last axis), ordered conservative -> aggressive. NaN counts as
        not rejected (a setting not tested).
    delta : float in (0, 1)

    Returns
    -------
    int or ndarray of shape (...)
        The index of the last rejected setting before the first non-rejection; -1 if the first
        setting is not rejected. Never an index past the first non-rejection.

    Examples
    --------
    >>> int(fixed_sequence([0.01, 0.02, 0.5, 0.01], delta=0.1))
    1
    """
    delta = _check_delta(delta)
    if isinstance(p_values, (str, bytes)) or p_values is None:
        raise TypeError("p_values must be an array of numbers.")
    arr = np.asarray(p_values, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError(f"p_values must have at least one setting, got shape {arr.shape}.")
    finite = arr[~np.isnan(arr)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError("p_values must lie in [0, 1] (NaN for a setting not tested).")
    rejected = arr <= delta
    first_kept = np.where(rejected.all(axis=-1), arr.shape[-1], np.argmin(rejected, axis=-1))
    return _scalar_if_0d(np.asarray(first_kept - 1))


def _test_lazily(
    p_values_of: Callable[[int, int], np.ndarray], n_settings: int, delta: float
) -> tuple[int, int, np.ndarray]:
    """Fixed-sequence testing that computes p-values in doubling chunks and stops at the first
    non-rejection: ``(index, n_tested, p_values)``."""
    p_values = np.full(n_settings, np.nan)
    start, chunk, n_tested = 0, _FIRST_CHUNK, n_settings
    while start < n_settings:
        stop = min(n_settings, start + chunk)
        p_values[start:stop] = p_values_of(start, stop)
        kept = np.flatnonzero(~(p_values[start:stop] <= delta))
        if kept.size:
            n_tested = start + int(kept[0]) + 1
            break
        start, chunk = stop, 2 * chunk
    p_values[n_tested:] = np.nan
    all_rejected = n_tested == n_settings and p_values[-1] <= delta
    index = n_settings - 1 if all_rejected else n_tested - 2
    return index, n_tested, p_values


# -- certification ----------------------------------------------------------------------------
def _positive_part_range(loss_range: tuple[float, float], epsilon: float) -> tuple[float, float]:
    low, high = loss_range
    if high <= 0:
        raise ValueError(
            f"positive_part=True needs losses that can be positive; loss_range is "
            f"({low:g}, {high:g})."
        )
    if epsilon < 0:
        raise ValueError(
            f"positive_part=True certifies max(loss, 0) >= 0, which can never have a risk "
            f"below epsilon = {epsilon:g} < 0; use positive_part=False with bound='hb' or "
            f"'wsr'."
        )
    return max(low, 0.0), high


def sample_order(n_samples: int, random_state: Any = None) -> np.ndarray:
    """The order in which ``"wsr"`` takes the samples: a permutation of ``range(n_samples)``
    drawn from ``random_state`` (None: seed 0), the one :func:`certify` uses. Callers that
    compute :func:`wsr_p_value` in pieces permute with it to test exactly as ``certify`` does."""
    seed = 0 if random_state is None else random_state
    return v.check_random_state(seed).permutation(n_samples)


_permutation = sample_order


_NO_EPSILON = object()  # certifiable_epsilons validates the rest without an epsilon


def _prepare(
    losses: Any,
    epsilon: Any,
    delta: Any,
    bound: Any,
    loss_range: Any,
    positive_part: Any,
    random_state: Any,
) -> tuple[np.ndarray, float, float, str, tuple[float, float]]:
    """Validated losses in loss units (after the positive part), and the other arguments."""
    # The scalar arguments first: a bad option fails before the matrix is scanned.
    bound = _check_bound(bound, BOUNDS)
    loss_range = _check_loss_range(loss_range)
    if not isinstance(positive_part, (bool, np.bool_)):
        raise TypeError(f"positive_part must be True or False, got {positive_part!r}.")
    if epsilon is not _NO_EPSILON:
        epsilon = _check_epsilon(epsilon, loss_range)
    delta = _check_delta(delta)
    v.check_random_state(random_state)
    unit_range = loss_range
    if positive_part:
        unit_range = _positive_part_range(loss_range, 0.0 if epsilon is _NO_EPSILON else epsilon)
    arr = _check_loss_matrix(losses)
    _check_in_range(arr, "losses", loss_range)
    if positive_part:
        arr = np.maximum(arr, 0.0)
    loss_range = unit_range
    low, high = loss_range
    if bound == "binomial" and not np.all((arr == low) | (arr == high)):
        hint = (
            " For accuracy-gap losses in {-1, 0, 1}, positive_part=True certifies the 0/1 loss "
            "1[exit wrong and final right], which dominates the gap."
            if low < 0 < high
            else ""
        )
        raise ValueError(
            f"bound='binomial' needs 0/1 losses (every loss equal to {low:g} or {high:g}); "
            f"these take other values. Use bound='hb' or 'wsr' for other bounded losses.{hint}"
        )
    return arr, epsilon, delta, bound, loss_range


def certify(
    losses: Any,
    epsilon: float,
    delta: float,
    *,
    bound: str = "hb",
    loss_range: tuple[float, float] = (0.0, 1.0),
    positive_part: bool = False,
    random_state: Any = None,
) -> Certification:
    """Certify the most aggressive setting whose risk is at most ``epsilon``, w.p. ``1 - delta``.

    Fixed-sequence testing of ``H_j: R_j > epsilon`` along the path (see the module docstring):
    with probability at least ``1 - delta`` over the calibration set, the certified setting's
    mean loss on new data exchangeable with the calibration samples is at most ``epsilon``.
    The path (the settings and their order) must be fixed before these losses are seen.

    Parameters
    ----------
    losses : array-like of shape (n_settings, n_samples)
        ``losses[j, i]``: the loss of setting j on calibration sample i, settings ordered from
        the most conservative (0) to the most aggressive. A 1-d array is one setting.
    epsilon : float
        The risk level, in ``loss_range``.
    delta : float in (0, 1)
        The allowed probability that the certificate is wrong.
    bound : {"hb", "binomial", "wsr"}, default="hb"
        ``"binomial"`` for 0/1 losses (exact); ``"hb"`` for any bounded loss (depends on the
        mean only); ``"wsr"`` for any bounded loss, tightest when the losses vary little.
    loss_range : (float, float), default=(0.0, 1.0)
        ``(a, b)``: every loss lies in ``[a, b]`` (a ValueError otherwise). Use ``(-1, 1)`` for
        accuracy-gap losses and ``(costs[0], costs[-1])`` for costs.
    positive_part : bool, default=False
        Certify ``max(loss, 0)`` in place of the loss. It is at least the loss on every sample,
        so its certificate holds for the loss too (more conservatively). For accuracy-gap losses
        ``1[exit wrong] - 1[final wrong]`` it is the 0/1 loss ``1[exit wrong and final right]``,
        which ``bound="binomial"`` accepts. Never applied unless asked for.
    random_state : None, int or numpy Generator, default=None
        ``"wsr"`` only: the samples are taken in a random order drawn from it (None: seed 0, so
        the certificate is deterministic). The bound depends on the order; any order chosen
        before seeing the losses is valid, but choosing it after looking at the results is
        not. Other bounds ignore it.

    Returns
    -------
    Certification
        ``index`` (-1 if none), ``p_values`` and ``upper_bounds`` of the tested settings (NaN
        after ``n_tested``), ``smallest_certifiable_epsilon``, ``statement()``, ``to_dict()``.

    Examples
    --------
    Accuracy-gap losses of three settings (setting 0: no early exit, no loss):

    >>> rng = np.random.default_rng(0)
    >>> gap = rng.choice([-1.0, 0.0, 1.0], p=[0.02, 0.95, 0.03], size=(3, 2000))
    >>> gap[0] = 0
    >>> certify(gap, 0.05, 0.1, bound="wsr", loss_range=(-1, 1)).index
    2
    >>> certify(gap, 0.05, 0.1, bound="hb", loss_range=(-1, 1)).index  # blind to the variance
    0
    >>> certify(gap, 0.05, 0.1, bound="binomial", loss_range=(-1, 1), positive_part=True).index
    2
    """
    arr, epsilon, delta, bound, loss_range = _prepare(
        losses, epsilon, delta, bound, loss_range, positive_part, random_state
    )
    n_settings, n_samples = arr.shape
    if bound == "wsr":
        x01 = _to_unit(arr, loss_range)
        eps01 = _unit_epsilon(epsilon, loss_range)
        order = _permutation(n_samples, random_state)

        def p_values_of(start: int, stop: int) -> np.ndarray:
            return _wsr_p(x01[start:stop][:, order], eps01, delta)

        index, n_tested, p_values = _test_lazily(p_values_of, n_settings, delta)
        # The losses' bounds now (the certificate need not keep the losses).
        tested_bounds = _from_unit(_wsr_ucb(x01[:n_tested][:, order], delta), loss_range)
        return _certification(
            index, bound, epsilon, delta, n_samples, n_tested, p_values,
            tested_bounds.__getitem__, loss_range, positive_part,
        )  # fmt: skip
    # The means in loss units, mapped as certify_means maps them: the same numbers exactly.
    means01 = _to_unit(arr.mean(axis=1), loss_range)
    return _certify_unit_means(means01, n_samples, epsilon, delta, bound, loss_range, positive_part)


def _certification(
    index: int,
    bound: str,
    epsilon: float,
    delta: float,
    n_samples: int,
    n_tested: int,
    p_values: np.ndarray,
    bounds_of: Callable[[np.ndarray], np.ndarray],
    loss_range: tuple[float, float],
    positive_part: bool,
) -> Certification:
    return Certification(
        index=int(index),
        guarantee="probability",
        bound=bound,
        epsilon=float(epsilon),
        delta=float(delta),
        n_samples=int(n_samples),
        n_settings=int(p_values.shape[0]),
        n_tested=int(n_tested),
        p_values=p_values,
        bounds_of=bounds_of,
        smallest_certifiable_epsilon=float(bounds_of(np.zeros(1, dtype=np.int64))[0]),
        loss_range=loss_range,
        positive_part=bool(positive_part),
    )


def _certify_unit_means(
    means01: np.ndarray,
    n_samples: int,
    epsilon: float,
    delta: float,
    bound: str,
    loss_range: tuple[float, float],
    positive_part: bool,
) -> Certification:
    eps01 = _unit_epsilon(epsilon, loss_range)
    if bound == "binomial":
        counts = _binary_counts(means01, n_samples, "means")

        def p_values_of(start: int, stop: int) -> np.ndarray:
            return _binomial_p(counts[start:stop], n_samples, eps01)

        def bounds_of(positions: np.ndarray) -> np.ndarray:
            return _from_unit(_binomial_ucb(counts[positions], n_samples, delta), loss_range)

    else:

        def p_values_of(start: int, stop: int) -> np.ndarray:
            return _hb_p(means01[start:stop], n_samples, eps01)

        def bounds_of(positions: np.ndarray) -> np.ndarray:
            return _from_unit(_hb_ucb(means01[positions], n_samples, delta), loss_range)

    index, n_tested, p_values = _test_lazily(p_values_of, means01.shape[0], delta)
    return _certification(
        index, bound, epsilon, delta, n_samples, n_tested, p_values, bounds_of, loss_range,
        positive_part,
    )  # fmt: skip


def certify_means(
    means: Any,
    n_samples: int,
    epsilon: float,
    delta: float,
    *,
    bound: str = "hb",
    loss_range: tuple[float, float] = (0.0, 1.0),
) -> Certification:
    """:func:`certify` from each setting's mean loss, for the bounds that need only the mean.

    For ``"binomial"`` and ``"hb"`` the p-value of a setting depends on its mean loss and
    ``n_samples`` alone, so a sweep over millions of settings certifies without the loss matrix.
    Testing stops at the first non-rejection and p-values are computed in doubling chunks, so
    the work is proportional to the settings tested. With ``means = losses.mean(axis=1)``
    (float64) the result is exactly that of ``certify(losses, ...)``.

    Parameters
    ----------
    means : array-like of shape (n_settings,)
        Mean loss of each setting over the same ``n_samples`` calibration samples, ordered
        from the most conservative to the most aggressive setting.
    n_samples : int
        Calibration samples behind each mean.
    epsilon, delta, loss_range
        As in :func:`certify`.
    bound : {"hb", "binomial"}, default="hb"
        ``"wsr"`` needs the per-sample losses: use :func:`certify`.

    Returns
    -------
    Certification

    Examples
    --------
    >>> cert = certify_means([0.0, 0.01, 0.03, 0.08], 5000, 0.05, 0.1, bound="binomial")
    >>> cert.index, cert.n_tested
    (2, 4)
    """
    bound = _check_bound(bound, MEAN_BOUNDS)
    means01, loss_range = _means_arg(means, loss_range)
    if means01.ndim != 1:
        raise ValueError(f"means must have shape (n_settings,), got shape {means01.shape}.")
    n_samples = _check_n_samples(n_samples)
    epsilon = _check_epsilon(epsilon, loss_range)
    delta = _check_delta(delta)
    return _certify_unit_means(means01, n_samples, epsilon, delta, bound, loss_range, False)


def certifiable_epsilons(
    losses: Any,
    delta: float,
    *,
    bound: str = "hb",
    loss_range: tuple[float, float] = (0.0, 1.0),
    positive_part: bool = False,
    random_state: Any = None,
) -> np.ndarray:
    """The smallest epsilon at which :func:`certify` reaches each setting.

    Setting j is rejected at epsilon exactly when its upper bound ``U_j <= epsilon``, and the
    fixed sequence reaches j when all of ``U_0 .. U_j`` are, so the answer is the running
    maximum of the upper bounds: ``certify(losses, eps, delta, ...).index`` is the last j with
    ``certifiable_epsilons(...)[j] <= eps`` (-1 if none). It traces the certified
    risk-against-setting curve of a path in one call.

    Parameters
    ----------
    losses, delta, bound, loss_range, positive_part, random_state
        As in :func:`certify`.

    Returns
    -------
    ndarray of shape (n_settings,)
        Non-decreasing, in loss units.

    Examples
    --------
    >>> losses = np.array([[0] * 50 + [1] * 0, [0] * 45 + [1] * 5, [0] * 40 + [1] * 10])
    >>> np.round(certifiable_epsilons(losses, 0.1, bound="binomial"), 3)
    array([0.045, 0.178, 0.291])
    """
    arr, _, delta, bound, loss_range = _prepare(
        losses, _NO_EPSILON, delta, bound, loss_range, positive_part, random_state
    )
    n_samples = arr.shape[1]
    if bound == "wsr":
        x01 = _to_unit(arr, loss_range)[:, _permutation(n_samples, random_state)]
        ucb = _wsr_ucb(x01, delta)
    else:
        means01 = _to_unit(arr.mean(axis=1), loss_range)
        if bound == "binomial":
            counts = _binary_counts(means01, n_samples, "means")
            ucb = _binomial_ucb(counts, n_samples, delta)
        else:
            ucb = _hb_ucb(means01, n_samples, delta)
    return np.maximum.accumulate(_from_unit(ucb, loss_range))


# -- conformal risk control ------------------------------------------------------------------
def conformal_risk_control(
    losses: Any, epsilon: float, *, loss_bound: float = 1.0
) -> Certification:
    """Conformal risk control: the most aggressive setting whose expected risk is at most
    ``epsilon``.

    With ``L~_j = max_{j' <= j} L_j'`` the running maximum of each sample's losses along the
    path, ``R~_j`` its mean over the n calibration samples and ``B`` = ``loss_bound``, the
    chosen setting is the last j with ``(n R~_j + B) / (n + 1) <= epsilon`` (Angelopoulos et al.,
    ICLR 2024, with lambda running along the path). Then, for calibration and test samples
    exchangeable, ``E[L_j(test)] <= epsilon``, the expectation over both.

    CRC needs losses that grow along the path for every sample; the running maximum makes any
    path so, and keeps the guarantee: ``L~`` is non-decreasing and at most B, so CRC's
    guarantee holds for it, and ``L <= L~`` on every sample gives ``E[L] <= E[L~] <=
    epsilon``. (On a path that is already monotone ``L~ = L``.) When even the first setting
    fails (-1), the statement holds for a fallback whose loss is at most epsilon on every
    sample, such as no early exit for the accuracy-gap or consistency losses.

    Parameters
    ----------
    losses : array-like of shape (n_settings, n_samples)
        Ordered from the most conservative setting to the most aggressive; at most
        ``loss_bound``.
    epsilon : float
        The level of the expected risk, at most ``loss_bound``.
    loss_bound : float, default=1.0
        B, an upper bound of every loss (1 for 0/1 and accuracy-gap losses, ``costs[-1]`` for
        costs).

    Returns
    -------
    Certification
        ``guarantee="expectation"``, ``bound="crc"``, ``delta=None``, ``p_values=None``;
        ``upper_bounds`` the conformal bounds ``(n R~_j + B) / (n + 1)`` of every setting.

    Examples
    --------
    >>> losses = np.array([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]])   # not monotone
    >>> crc = conformal_risk_control(losses, epsilon=0.45)
    >>> crc.index, crc.upper_bounds.tolist()
    (2, [0.2, 0.4, 0.4])
    """
    arr = _check_loss_matrix(losses)
    loss_bound = _check_real(loss_bound, "loss_bound")
    if arr.max() > loss_bound:
        raise ValueError(
            f"losses must be at most loss_bound = {loss_bound:g}; found {arr.max():g}. Pass an "
            f"upper bound of the loss as loss_bound."
        )
    running_sums = np.maximum.accumulate(arr, axis=0).sum(axis=1)
    return conformal_risk_control_from_sums(
        running_sums, arr.shape[1], epsilon, loss_bound=loss_bound
    )


def conformal_risk_control_from_sums(
    running_sums: Any, n_samples: int, epsilon: float, *, loss_bound: float = 1.0
) -> Certification:
    """:func:`conformal_risk_control` from ``sum_n L~_j(n)``, the sum over the calibration
    samples of each setting's running-maximum loss: for callers that compute the losses a
    block of settings at a time and need not keep them (:mod:`eeopt.guarantee`).

    Parameters
    ----------
    running_sums : array-like of shape (n_settings,)
        Non-decreasing along the path (sums of running maxima), each at most
        ``n_samples * loss_bound``.
    n_samples : int
    epsilon, loss_bound : float
        As in :func:`conformal_risk_control`.

    Examples
    --------
    >>> conformal_risk_control_from_sums([0, 1, 1], 4, epsilon=0.45).upper_bounds.tolist()
    [0.2, 0.4, 0.4]
    """
    sums = _as_finite(running_sums, "running_sums")
    n_samples = _check_n_samples(n_samples)
    loss_bound = _check_real(loss_bound, "loss_bound")
    if sums.ndim != 1 or (sums.size and np.any(np.diff(sums) < 0)):
        raise ValueError("running_sums must be a 1-d array that never falls along the path.")
    epsilon = _check_real(epsilon, "epsilon")
    if epsilon > loss_bound:
        raise ValueError(
            f"epsilon must be at most loss_bound = {loss_bound:g} (a mean loss); got {epsilon:g}."
        )
    n_settings = sums.shape[0]
    adjusted = (sums + loss_bound) / (n_samples + 1)
    passed = adjusted <= epsilon
    index = n_settings - 1 if passed.all() else int(np.argmin(passed)) - 1
    return Certification(
        index=int(index),
        guarantee="expectation",
        bound="crc",
        epsilon=epsilon,
        delta=None,
        n_samples=int(n_samples),
        n_settings=int(n_settings),
        n_tested=int(n_settings),
        p_values=None,
        bounds_of=adjusted.__getitem__,
        smallest_certifiable_epsilon=float(adjusted[0]),
        loss_range=(None, loss_bound),
        positive_part=False,
    )


__all__ = [
    "BOUNDS",
    "COUNT_ATOL",
    "COUNT_RTOL",
    "MEAN_BOUNDS",
    "WSR_MAX_BET",
    "Certification",
    "binomial_p_value",
    "binomial_upper_bound",
    "certifiable_epsilons",
    "certify",
    "certify_means",
    "conformal_risk_control",
    "conformal_risk_control_from_sums",
    "fixed_sequence",
    "hb_p_value",
    "hb_upper_bound",
    "wsr_p_value",
    "wsr_upper_bound",
]
