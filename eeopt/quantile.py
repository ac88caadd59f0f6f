"""Quantile thresholds from an exit distribution (spec section 6; MSDNet, EENet)."""

from __future__ import annotations

from typing import Any

import numpy as np

from eeopt import _validation as v

#: Slack added before flooring ``pi_k * n_samples`` so that 0.3 * 10 counts as 3, not 2.
_FLOOR_SLACK = 1e-9


def exit_counts(fractions: np.ndarray, n_samples: int) -> np.ndarray:
    """Samples per exit: ``floor(pi_k N)`` for the early exits, the rest at the last."""
    counts = np.floor(fractions * n_samples + _FLOOR_SLACK).astype(np.int64)
    counts[-1] = n_samples - counts[:-1].sum()
    return counts


def quantile_thresholds(scores: Any, fractions: Any) -> np.ndarray:
    """Per-exit thresholds that send the top ``pi_k`` share of the samples out at exit k.

    ``n_k = floor(pi_k N)`` for k < K-1. For k = 0 .. K-2, among the samples not yet assigned,
    ``tau_k`` is the ``n_k``-th largest score at exit k and the samples with score >= tau_k are
    assigned to k (ties may assign a few more). ``n_k = 0`` gives ``tau_k = +inf``; if fewer
    than ``n_k`` samples remain, ``tau_k`` is the smallest remaining score (all of them leave);
    if none remain, ``+inf``. The last threshold is ``-inf``. With these thresholds,
    :func:`eeopt.engine.first_exit` reproduces the assignment exactly.

    Parameters
    ----------
    scores : array-like of shape (n_samples, n_exits)
        Higher = more confident.
    fractions : array-like of shape (n_exits,)
        Target exit distribution ``pi``: non-negative, sums to 1.

    Returns
    -------
    thresholds : ndarray of shape (n_exits,), float64

    Examples
    --------
    >>> import numpy as np, eeopt
    >>> scores = np.array([[0.9, 1.0], [0.5, 1.0], [0.7, 1.0], [0.2, 1.0]])
    >>> eeopt.quantile_thresholds(scores, [0.5, 0.5])
    array([ 0.7, -inf])
    """
    scores = v.check_float_array(scores, "scores", ndim=2)
    fractions = v.check_float_array(fractions, "fractions", ndim=1).astype(np.float64)
    n_samples, n_exits = scores.shape
    if fractions.shape[0] != n_exits:
        raise ValueError(
            f"fractions must have one entry per exit ({n_exits}), got {fractions.shape[0]}."
        )
    if np.any(fractions < 0) or abs(fractions.sum() - 1.0) > 1e-6:
        raise ValueError(
            f"fractions must be non-negative and sum to 1, got sum {fractions.sum():.6g}; "
            f"pass fractions / fractions.sum()."
        )
    return thresholds_from_counts(scores, exit_counts(fractions, n_samples))


def thresholds_from_counts(scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Section 6's thresholds for exit counts ``(n_exits,)`` (:func:`exit_counts`) rather
    than fractions; trusts its input (the validated entry point is
    :func:`quantile_thresholds`). Used by MSDNet and EENet, which compute the counts."""
    return quantile_assignment(scores, counts)[0]


def quantile_assignment(
    scores: np.ndarray,
    counts: np.ndarray,
    by_exit: bool = False,
    exit_of: np.ndarray | None = None,
    stay_max: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Section 6's thresholds for given counts, and the exit counts they realise.

    The realised counts are those of ``engine.first_exit(scores, thresholds)``, read off the
    procedure itself (ties may assign more than asked; the last exit takes the rest), so no
    second pass over the data is needed. One partition per exit over the samples not yet
    assigned, which are kept as an index array that shrinks as they leave.

    Parameters
    ----------
    scores : ndarray of shape (n_samples, n_exits), or (n_exits, n_samples) with ``by_exit``
    counts : ndarray of shape (n_exits,), int
        Requested samples per early exit (the last entry is ignored).
    by_exit : bool, default=False
        ``scores`` is transposed, one exit per row: the gathers of the samples still in then
        read one contiguous row instead of a strided column (worth it when the same scores
        are assigned many times, as in MSDNet's solver).
    exit_of : ndarray of shape (n_samples,), int, optional
        Filled in place with each sample's exit.
    stay_max : ndarray of shape (n_exits,), float, optional
        Filled in place: at each early exit, the largest score of the samples that reach it
        and stay (``-inf`` if none; a skipped exit, asked for 0 samples, counts everyone that
        reaches it; ``-inf`` after the samples run out).

    Returns
    -------
    thresholds : ndarray of shape (n_exits,), float64
    realised : ndarray of shape (n_exits,), int64
    """
    n_exits, n_samples = scores.shape if by_exit else scores.shape[::-1]
    thresholds = np.full(n_exits, np.inf)
    thresholds[-1] = -np.inf
    realised = np.zeros(n_exits, dtype=np.int64)
    if exit_of is not None:
        exit_of[:] = n_exits - 1
    if stay_max is not None:
        stay_max[:] = -np.inf
    remaining = None  # all samples, until the first exit that lets some out
    for k in range(n_exits - 1):
        column = scores[k] if by_exit else scores[:, k]
        if counts[k] == 0:
            if stay_max is not None:
                reach = column if remaining is None else column[remaining]
                stay_max[k] = reach.max(initial=-np.inf)
            continue
        candidates = column if remaining is None else column[remaining]
        if candidates.size == 0:
            break
        if counts[k] >= candidates.size:
            tau = candidates.min()
        else:
            position = candidates.size - counts[k]
            tau = np.partition(candidates, position)[position]
        thresholds[k] = tau
        below = candidates < tau
        if stay_max is not None:
            stay_max[k] = candidates.max(where=below, initial=-np.inf)
        if exit_of is not None:
            leave = np.flatnonzero(~below)
            exit_of[leave if remaining is None else remaining[leave]] = k
        stay = np.flatnonzero(below)
        realised[k] = candidates.size - stay.size
        remaining = stay if remaining is None else remaining[stay]
    realised[-1] = n_samples if remaining is None else remaining.size
    return thresholds, realised
