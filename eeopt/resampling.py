"""Repeated calibration/test splits and the paired bootstrap over (split, sample).

Both are plain functions on arrays, seeded through :class:`numpy.random.SeedSequence`, so that a
comparison gives the same numbers whatever runs it (one process, joblib workers, a Dask
cluster): every random number is drawn here, in the calling process, before any fit runs.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Split:
    """One calibration/test split: indices into the pooled samples and the fit's seed.

    Attributes
    ----------
    calibration : ndarray of shape (n_calibration,), int64, sorted
    test : ndarray of shape (n_test,), int64, sorted
    fit_seed : int
        ``random_state`` of every fit on this split (EENet's initialisation).
    """

    calibration: np.ndarray
    test: np.ndarray
    fit_seed: int


def seed_sequences(random_state: Any) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """``(splits, bootstrap)``: independent seed sequences derived from ``random_state``.

    ``random_state`` is a non-negative int (reproducible) or None (fresh entropy).
    """
    if random_state is not None and (
        isinstance(random_state, bool)
        or not isinstance(random_state, numbers.Integral)
        or random_state < 0
    ):
        raise TypeError(
            f"random_state must be a non-negative int or None, got {random_state!r}; "
            "pass an int for a table that is the same from run to run."
        )
    splits, bootstrap = np.random.SeedSequence(random_state).spawn(2)
    return splits, bootstrap


def fit_seed(seq: np.random.SeedSequence) -> int:
    """A 32-bit ``random_state`` for a fit, drawn from ``seq``."""
    return int(seq.generate_state(1, dtype=np.uint32)[0])


def random_splits(
    n_samples: int, calibration_size: int, n_splits: int, seq: np.random.SeedSequence
) -> list[Split]:
    """``n_splits`` random splits of ``range(n_samples)`` into calibration and test.

    Split ``s`` draws its permutation from the ``s``-th child of ``seq`` (``seq.spawn``): the
    first ``calibration_size`` samples of the permutation calibrate, the rest test; its fit
    seed comes from a second child of that child.
    """
    out = []
    for child in seq.spawn(n_splits):
        order_seq, seed_seq = child.spawn(2)
        order = np.random.default_rng(order_seq).permutation(n_samples)
        out.append(
            Split(
                np.sort(order[:calibration_size]),
                np.sort(order[calibration_size:]),
                fit_seed(seed_seq),
            )
        )
    return out


def split_bootstrap(values: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap means of per-sample values over repeated splits, paired across columns.

    Each replicate draws ``n_splits`` splits with replacement, then, in each split, its test
    samples with replacement; its value is the mean over the drawn splits of the mean over the
    drawn samples. Every column (a method at a budget, a metric) uses the same draws, so the
    difference of two columns' replicates is the paired bootstrap of their difference. With one
    split this is the ordinary bootstrap of the test samples.

    Draw order (a loop reproduces it): ``rng.integers(0, n_splits, (n_bootstrap, n_splits))``
    for the splits, then for each split ``s = 0, 1, ...`` in turn
    ``rng.integers(0, n_test, (n_bootstrap, n_test))`` for its samples (replicate ``b`` uses
    row ``b``; a split drawn twice in one replicate reuses its row).

    Parameters
    ----------
    values : ndarray of shape (n_splits, n_test, n_columns)
        Per-sample values (1 if right, a sample's cost, ...) of each split's test samples.
    n_bootstrap : int
    rng : numpy Generator

    Returns
    -------
    ndarray of shape (n_bootstrap, n_columns)
        The replicate means.
    """
    n_splits, n_test, n_columns = values.shape
    split_draws = rng.integers(0, n_splits, size=(n_bootstrap, n_splits))
    offsets = np.arange(n_bootstrap)[:, None] * n_splits
    split_counts = np.bincount((split_draws + offsets).ravel(), minlength=n_bootstrap * n_splits)
    split_counts = split_counts.reshape(n_bootstrap, n_splits)
    means = np.zeros((n_bootstrap, n_columns))
    offsets = np.arange(n_bootstrap)[:, None] * n_test
    for s in range(n_splits):
        draws = rng.integers(0, n_test, size=(n_bootstrap, n_test))
        # How often each sample is drawn in each replicate: the resampled mean is a product.
        counts = np.bincount((draws + offsets).ravel(), minlength=n_bootstrap * n_test)
        per_split = counts.reshape(n_bootstrap, n_test).astype(np.float64) @ values[s] / n_test
        means += split_counts[:, s, None] * per_split
    return means / n_splits


def percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[np.ndarray, ...]:
    """``(low, high)``: the equal-tailed percentile interval of each column of ``replicates``."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail], axis=0)
    return low, high


def paired_p_value(differences: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Two-sided bootstrap p-value of "no difference", per column.

    The bootstrap distribution of the difference, centred on the observed difference, stands in
    for its distribution under the null; the p-value is the share of replicates at least as far
    from the centre as the observation is from 0, with the add-one correction
    ``(1 + count) / (1 + n_bootstrap)`` so that it is never 0. Two identical methods give
    differences of exactly 0 in every replicate and p = 1.

    Parameters
    ----------
    differences : ndarray of shape (n_bootstrap, n_columns)
    observed : ndarray of shape (n_columns,)
    """
    extreme = np.abs(differences - observed) >= np.abs(observed)
    return (1 + extreme.sum(axis=0)) / (1 + differences.shape[0])
