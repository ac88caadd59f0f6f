"""BEEM's error bound (Bajpai & Hanawal, ICLR 2025, Theorem 3.1), computed and checked on data.

The theorem: with ``p`` the error rate of the final exit and ``q_i`` that of exit ``i`` (1-based,
``i = 1 .. L-1`` for the early exits), if for every early exit

    q_i < a_i / (a_i + (1/p - 1) b_i^(i-1)),

BEEM's error rate is at most ``p``.

**The constants are eeopt's reconstruction.** The paper defines ``a_i`` and ``b_i`` in an
appendix that is not available to us. eeopt uses the definitions under which the inequality is
exactly the condition "the samples leaving at exit i err at a rate below p", all measured under
the fitted policy on the given samples:

- ``a_i = P(exit at i | exit i correct)``, ``B_i = P(exit at i | exit i wrong)``;
- ``b_i = B_i^(1/(i-1))`` for ``i >= 2``, so that ``b_i^(i-1) = B_i``. For ``i = 1`` the
  formula's factor is ``b^0 = 1`` whatever ``b`` is.

Why this makes the inequality the per-exit error condition. By Bayes' rule the error rate of the
samples that exit at i is::

    e_i = P(wrong | exit at i) = q_i B_i / (q_i B_i + (1 - q_i) a_i).

For ``0 < p`` and a positive denominator, ``e_i < p`` ⇔ ``q_i B_i < p (q_i B_i + (1 - q_i) a_i)``
⇔ ``q_i B_i (1 - p) < p (1 - q_i) a_i`` ⇔ ``q_i (p a_i + (1 - p) B_i) < p a_i``
⇔ ``q_i < p a_i / (p a_i + (1 - p) B_i) = a_i / (a_i + (1/p - 1) b_i^(i-1))``.

So at exits ``i >= 2`` the condition holds if and only if ``e_i < p``. At ``i = 1`` the formula uses
the factor 1 in place of ``B_1 <= 1``; since ``e`` grows with ``B``, the condition there is
sufficient for ``e_1 < p`` (and equivalent when ``B_1 = 1``). If it holds at every early exit, the
samples that leave early err at a rate below ``p`` (a mixture of rates below ``p``); BEEM's overall
error is then at most ``p`` when, in addition, the final exit errs at most ``p`` on the samples that
reach it — the report checks both.

With measured frequencies, ``q_i B_i`` is the share of all samples that exit at i wrongly and
``(1 - q_i) a_i`` the share that exit at i correctly, so the implied ``e_i`` *is* the measured error
of the samples leaving at i: with these definitions the theorem is an identity on the data, and
the report shows it as such.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy.special import expit

from eeopt.data import ExitData, as_exit_data
from eeopt.policy import Policy


def _as_probability(x: Any, name: str) -> np.ndarray:
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be a number or an array of numbers in [0, 1], got {x!r}.")
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or an array of numbers, got {x!r}.") from None
    if np.isnan(arr).any() or np.any(arr < 0) or np.any(arr > 1):
        raise ValueError(f"{name} must lie in [0, 1] (no NaN); got {arr.tolist()}.")
    return arr


def max_exit_error(p: Any, a: Any, b: Any, exit_number: Any) -> np.ndarray:
    """The largest error rate ``q`` exit ``i`` may have under Theorem 3.1.

    Computes ``a / (a + (1/p - 1) b^(i-1))`` in the equivalent form
    ``p a / (p a + (1 - p) b^(i-1))`` (no ``1/p``), broadcasting its arguments. The condition of
    the theorem at exit i is ``q < max_exit_error(p, a, b, i)`` (strict).

    Parameters
    ----------
    p : float or array-like in [0, 1]
        Error rate of the final exit.
    a : float or array-like in [0, 1]
        ``P(exit at i | exit i correct)``.
    b : float or array-like in [0, 1]
        ``b_i``, with ``b_i^(i-1) = P(exit at i | exit i wrong)``.
    exit_number : int or array-like of int >= 1
        ``i``, 1-based as in the paper (``1 .. L-1`` for the early exits).

    Returns
    -------
    bound : ndarray (0-d for scalar input) in [0, 1]

    Notes
    -----
    With ``B = b^(i-1)`` the bound is ``p a / (p a + (1 - p) B)``, and ``q < bound`` holds
    exactly when ``q B (1 - p) < p (1 - q) a``: when the implied exit error
    ``q B / (q B + (1 - q) a)`` is below ``p`` (see the module documentation). Edge cases keep
    that equivalence for every ``q`` in [0, 1]:

    - ``i = 1``: ``B = b^0 = 1`` even for ``b = 0``.
    - ``p = 0`` (``1/p = inf``): bound 0. No exit can err below 0, and ``q < 0`` never holds.
      (With ``B = 0`` the limit ``p -> 0+`` would be 1, but then the exit error is 0, which is
      not *below* ``p = 0``: the strict condition fails, and 0 is what says so.)
    - ``p = 1``: bound 1 if ``a > 0`` (any exit error below 1 will do), else 0.
    - ``a = 0`` (no correct sample exits at i): bound 0. Whatever exits there is wrong, so its
      error (1, or undefined if nothing exits) is never below ``p``.
    - ``b = 0``, ``i >= 2`` (no wrong sample exits at i): bound 1 if ``p a > 0``; the exit error
      is then 0 < p whenever anything exits (``q < 1``).
    - ``p a = 0`` and ``(1 - p) B = 0`` together (``0 / 0``): bound 0, as both sides of the
      cross-multiplied condition are 0 and ``0 < 0`` is false.

    Examples
    --------
    >>> from eeopt.theory import max_exit_error
    >>> float(max_exit_error(0.1, 0.5, 0.5, 2))  # 0.05 / (0.05 + 0.45)
    0.1
    >>> round(float(max_exit_error(0.1, 0.5, 0.0, 1)), 6)  # b^0 = 1: 0.05 / (0.05 + 0.9)
    0.052632
    >>> float(max_exit_error(0.0, 0.5, 0.5, 3))
    0.0
    """
    p = _as_probability(p, "p")
    a = _as_probability(a, "a")
    b = _as_probability(b, "b")
    i = np.asarray(exit_number)
    if i.dtype == np.bool_ or not np.issubdtype(i.dtype, np.integer):
        raise TypeError(f"exit_number must be an integer >= 1 (1-based), got {exit_number!r}.")
    if np.any(i < 1):
        raise ValueError(f"exit_number must be >= 1 (1-based, as in the paper); got {i.tolist()}.")
    factor = np.where(i == 1, 1.0, np.power(b, np.maximum(i - 1, 1)))
    # Which of p a and (1 - p) b^(i-1) are positive, decided on the inputs (not on products that
    # may underflow): the edge cases above.
    wrong_side = (p < 1) & ((i == 1) | (b > 0))
    right_side = (p > 0) & (a > 0)
    numerator = p * a
    other = (1.0 - p) * factor
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        direct = numerator / (numerator + other)
        # Products of tiny probabilities can underflow: there, 1 / (1 + (1-p) B / (p a)) in logs.
        log_ratio = (
            np.log1p(-p) + np.where(i == 1, 0.0, (i - 1) * np.log(b)) - np.log(p) - np.log(a)
        )
        via_logs = expit(-log_ratio)
    tiny = np.finfo(np.float64).tiny
    underflow = (right_side & (numerator < tiny)) | (wrong_side & (other < tiny))
    bound = np.where(
        right_side & wrong_side,
        np.where(underflow, via_logs, direct),
        np.where(right_side, 1.0, 0.0),
    )
    return bound[()] if bound.ndim == 0 else bound


def implied_exit_error(q: Any, a: Any, big_b: Any) -> np.ndarray:
    """``q B / (q B + (1 - q) a)``: the error rate of the samples leaving at an exit with error
    rate ``q``, ``a = P(exit | correct)`` and ``B = P(exit | wrong)``; NaN where nothing exits."""
    q = _as_probability(q, "q")
    a = _as_probability(a, "a")
    big_b = _as_probability(big_b, "B")
    wrong = q * big_b
    total = wrong + (1.0 - q) * a
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, wrong / np.where(total > 0, total, 1), np.nan)
    return out[()] if out.ndim == 0 else out


@dataclass
class TheoremReport:
    """Theorem 3.1 measured on data (:func:`theorem_3_1`). Per-exit arrays have one entry per
    early exit, ``exit_number = 1 .. L-1`` (1-based as in the paper).

    Attributes
    ----------
    p : float
        Error rate of the final exit on all samples.
    exit_number : ndarray of int
    q : ndarray
        Error rate of each early exit on all samples.
    a, B : ndarray
        ``P(exit at i | exit i correct)`` and ``P(exit at i | exit i wrong)``; a conditional
        probability given an event no sample has (exit i never right, or never wrong) is set to
        0, the value that makes its product with that event's probability (0) right.
    b : ndarray
        ``B^(1/(i-1))`` for ``i >= 2``; NaN at ``i = 1``, where the formula's factor is 1.
    bound : ndarray
        :func:`max_exit_error` ``(p, a, b, i)``.
    condition : ndarray of bool
        ``q < bound``: the theorem's condition at each early exit.
    n_exit : ndarray of int
        Samples leaving at each early exit.
    measured_error : ndarray
        Error rate of those samples; NaN where none leaves.
    implied_error : ndarray
        ``q B / (q B + (1 - q) a)``; equals ``measured_error`` up to rounding (NaN alike).
    all_conditions : bool
        The condition holds at every early exit.
    conditions_where_used : bool
        It holds at every early exit that some sample leaves from (an exit nobody leaves from
        has ``a = B = 0``, bound 0, and fails the strict condition while adding no error).
    early_error : float
        Error rate of all samples that leave early; NaN if none does.
    final_error_on_reached : float
        Error rate of the final exit on the samples that reach it; NaN if none does.
    final_within_p : bool
        ``final_error_on_reached <= p`` (true when no sample reaches the final exit).
    policy_error : float
        The policy's overall error rate.
    error_within_p : bool
        ``policy_error <= p``: the theorem's conclusion, measured.
    n_samples : int
    """

    p: float
    exit_number: np.ndarray
    q: np.ndarray
    a: np.ndarray
    B: np.ndarray
    b: np.ndarray
    bound: np.ndarray
    condition: np.ndarray
    n_exit: np.ndarray
    measured_error: np.ndarray
    implied_error: np.ndarray
    all_conditions: bool
    conditions_where_used: bool
    early_error: float
    final_error_on_reached: float
    final_within_p: bool
    policy_error: float
    error_within_p: bool
    n_samples: int

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values; NaN becomes None (JSON has no NaN)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value = [_plain(x) for x in value.tolist()]
            else:
                value = _plain(value)
            out[f.name] = value
        return out

    def __str__(self) -> str:
        head = (
            f"Theorem 3.1 on {self.n_samples} samples: final-exit error p = {self.p:.4f}\n"
            f"{'exit':>4} {'q_i':>7} {'a_i':>7} {'B_i':>7} {'b_i':>7} {'bound':>7} "
            f"{'q<bound':>7} {'n_exit':>7} {'err':>7} {'implied':>7}\n"
        )
        rows = []
        for j in range(self.exit_number.shape[0]):
            rows.append(
                f"{self.exit_number[j]:4d} {self.q[j]:7.4f} {self.a[j]:7.4f} {self.B[j]:7.4f} "
                f"{_fmt(self.b[j])} {self.bound[j]:7.4f} {str(bool(self.condition[j])):>7} "
                f"{self.n_exit[j]:7d} {_fmt(self.measured_error[j])} "
                f"{_fmt(self.implied_error[j])}"
            )
        tail = (
            f"\nconditions hold at every early exit: {self.all_conditions} "
            f"(at every exit used: {self.conditions_where_used})\n"
            f"early-exit error {_fmt(self.early_error).strip()}, final exit on the samples it "
            f"gets {_fmt(self.final_error_on_reached).strip()} (<= p: {self.final_within_p})\n"
            f"policy error {self.policy_error:.4f} <= p: {self.error_within_p}"
        )
        return head + "\n".join(rows) + tail


def _plain(x: Any) -> Any:
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and np.isnan(x):
        return None
    return x


def _fmt(x: float) -> str:
    return f"{'nan':>7}" if np.isnan(x) else f"{x:7.4f}"


def _ratio(numerator: np.ndarray, denominator: np.ndarray, empty: float) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, empty)


def theorem_3_1(policy: Policy, logits: Any, labels: Any = None) -> TheoremReport:
    """Estimate Theorem 3.1's quantities for a fitted policy and check its condition and claim.

    Parameters
    ----------
    policy : Policy
        A fitted policy, normally BEEM (``eeopt.fit(..., method="beem-a")``); the quantities
        are defined for any policy.
    logits : ExitData or array-like of shape (n_samples, n_exits, n_classes)
    labels : array-like of shape (n_samples,), optional
        Taken from ``logits`` when it is an ExitData with labels.

    Returns
    -------
    TheoremReport
        ``print(report)`` shows a table; ``report.to_dict()`` gives plain values.

    Notes
    -----
    The definitions of ``a_i`` and ``b_i`` are eeopt's reconstruction (the paper's appendix is not
    available); see the module documentation for them and for why they turn the inequality into
    "the samples leaving at exit i err below p".

    Examples
    --------
    >>> import numpy as np, eeopt
    >>> from eeopt.theory import theorem_3_1
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(size=(300, 3, 4)) * np.array([1.0, 2.0, 4.0])[None, :, None]
    >>> labels = logits[:, -1].argmax(axis=1)
    >>> policy = eeopt.fit(logits, labels, method="beem-c", alpha=[0.5, 1.0])
    >>> report = theorem_3_1(policy, logits, labels)
    >>> report.exit_number.tolist(), report.p
    ([1, 2], 0.0)
    """
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a fitted eeopt Policy, got {type(policy).__name__}.")
    data: ExitData = as_exit_data(logits, labels)
    data.require_labels("theorem_3_1")
    correct = data.correct
    exits = policy.exit_index(data)
    n_samples, n_exits = correct.shape
    early = np.arange(n_exits - 1)
    exit_number = early + 1
    p = float(np.count_nonzero(~correct[:, -1]) / n_samples)
    at = exits[:, None] == early[None, :]  # (n, L-1): sample leaves at early exit k
    right = correct[:, :-1]
    n_right = right.sum(axis=0)
    n_wrong = n_samples - n_right
    n_exit_right = (at & right).sum(axis=0)
    n_exit_wrong = (at & ~right).sum(axis=0)
    q = n_wrong / n_samples
    a = _ratio(n_exit_right, n_right, 0.0)
    big_b = _ratio(n_exit_wrong, n_wrong, 0.0)
    b = np.full(n_exits - 1, np.nan)
    later = exit_number >= 2
    b[later] = big_b[later] ** (1.0 / (exit_number[later] - 1))
    bound = max_exit_error(p, a, np.where(later, b, 1.0), exit_number)
    condition = q < bound
    n_exit = n_exit_right + n_exit_wrong
    measured = _ratio(n_exit_wrong, n_exit, np.nan)
    implied = implied_exit_error(q, a, big_b)
    reached = exits == n_exits - 1
    n_reached = int(np.count_nonzero(reached))
    final_error = float(_ratio(np.count_nonzero(reached & ~correct[:, -1]), n_reached, np.nan))
    n_early = n_samples - n_reached
    early_error = float(_ratio(n_exit_wrong.sum(), n_early, np.nan))
    chosen_correct = np.take_along_axis(correct, exits[:, None], axis=1)[:, 0]
    policy_error = float(np.count_nonzero(~chosen_correct) / n_samples)
    return TheoremReport(
        p=p,
        exit_number=exit_number,
        q=q,
        a=a,
        B=big_b,
        b=b,
        bound=np.asarray(bound, dtype=np.float64),
        condition=np.asarray(condition, dtype=bool),
        n_exit=n_exit,
        measured_error=measured,
        implied_error=np.asarray(implied, dtype=np.float64),
        all_conditions=bool(np.all(condition)),
        conditions_where_used=bool(np.all(condition | (n_exit == 0))),
        early_error=early_error,
        final_error_on_reached=final_error,
        final_within_p=bool(n_reached == 0 or final_error <= p),
        policy_error=policy_error,
        error_within_p=bool(policy_error <= p),
        n_samples=n_samples,
    )
