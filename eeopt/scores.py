"""Per-sample, per-exit confidence scores (spec section 2): pure functions on arrays.

Every function takes probabilities of shape ``(n_samples, n_exits, n_classes)`` or exit
predictions of shape ``(n_samples, n_exits)`` and returns ``(n_samples, n_exits)``. Higher means
more confident everywhere, so every threshold rule reads ``score >= threshold``. They trust their
input; validation happens in :class:`eeopt.ExitData`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy

#: Names accepted wherever a policy takes a ``score=`` option.
SCORE_NAMES = ("maxprob", "entropy", "margin", "vote", "patience")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Stable softmax over the last axis (the row max is subtracted first); dtype is kept."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=-1, keepdims=True)
    return shifted


def exit_predictions(probs: np.ndarray) -> np.ndarray:
    """Argmax class of every exit, ``(n_samples, n_exits)`` int64."""
    return probs.argmax(axis=-1)


def maxprob(probs: np.ndarray, predictions: np.ndarray | None = None) -> np.ndarray:
    """Maximum class probability ``max_c p_kc``.

    If the argmax ``predictions`` are already known the maximum is gathered from them, which
    avoids a second pass over the class axis.
    """
    if predictions is None:
        return probs.max(axis=-1)
    return np.take_along_axis(probs, predictions[..., None], axis=-1)[..., 0]


def entropy_confidence(probs: np.ndarray) -> np.ndarray:
    """Normalised confidence ``1 + sum_c p log p / log C`` in [0, 1]; 1 means certain.

    ``0 log 0 = 0``, so probabilities that underflowed to zero give no NaN.
    """
    n_classes = probs.shape[-1]
    neg_entropy = xlogy(probs, probs).sum(axis=-1)
    out = 1.0 + neg_entropy / np.log(n_classes)
    # Rounding can push a uniform row a hair below 0 or a one-hot row above 1.
    return np.clip(out, 0.0, 1.0).astype(probs.dtype, copy=False)


def margin(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability."""
    top2 = np.partition(probs, probs.shape[-1] - 2, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


def vote(predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """Share of the exits so far that agree on their most common class.

    ``vote_k = max_c #{k' <= k : argmax p_k' = c} / (k + 1)``.
    """
    n_samples, n_exits = predictions.shape
    counts = np.zeros((n_samples, n_classes), dtype=np.min_scalar_type(n_exits))
    rows = np.arange(n_samples)
    out = np.empty((n_samples, n_exits), dtype=np.float64)
    best = np.zeros(n_samples, dtype=np.int64)
    for k in range(n_exits):
        counts[rows, predictions[:, k]] += 1
        # The running mode count can only grow through the class just voted for.
        np.maximum(best, counts[rows, predictions[:, k]], out=best)
        out[:, k] = best / (k + 1)
    return out


def patience(predictions: np.ndarray) -> np.ndarray:
    """Consecutive exits up to k that agree with exit k's argmax, minus one (PABEE).

    ``patience_0 = 0``; ``patience_k = patience_{k-1} + 1`` if the argmax is unchanged, else 0.
    """
    n_samples, n_exits = predictions.shape
    out = np.zeros((n_samples, n_exits), dtype=np.int64)
    for k in range(1, n_exits):
        same = predictions[:, k] == predictions[:, k - 1]
        out[:, k] = np.where(same, out[:, k - 1] + 1, 0)
    return out
