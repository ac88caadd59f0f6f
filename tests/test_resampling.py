import numpy as np
import pytest
from scipy import stats

from eeopt import resampling


def _loop_bootstrap(values, n_bootstrap, rng):
    """The two-stage bootstrap one replicate at a time, with the documented draw order."""
    n_splits, n_test, n_columns = values.shape
    split_draws = rng.integers(0, n_splits, size=(n_bootstrap, n_splits))
    sample_draws = [rng.integers(0, n_test, size=(n_bootstrap, n_test)) for _ in range(n_splits)]
    out = np.zeros((n_bootstrap, n_columns))
    for b in range(n_bootstrap):
        for c in range(n_columns):
            split_means = []
            for s in split_draws[b]:
                split_means.append(sum(values[s, i, c] for i in sample_draws[s][b]) / n_test)
            out[b, c] = sum(split_means) / n_splits
    return out


@pytest.mark.parametrize("n_splits", [1, 3])
def test_split_bootstrap_matches_a_per_replicate_loop(n_splits):
    values = np.random.default_rng(0).random((n_splits, 12, 2))
    got = resampling.split_bootstrap(values, 40, np.random.default_rng(5))
    expected = _loop_bootstrap(values, 40, np.random.default_rng(5))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_paired_bootstrap_on_a_hand_case():
    # A is right on all n samples, B wrong on k of them: the observed difference is k / n and
    # the bootstrap difference is Binomial(n, k / n) / n, so the centred two-sided p-value is
    # P(X = 0) + P(X >= 2k) and the 95% interval the binomial's quantiles over n.
    n, k, n_bootstrap = 200, 6, 20_000
    values = np.ones((1, n, 2))
    values[0, :k, 1] = 0.0
    replicates = resampling.split_bootstrap(values, n_bootstrap, np.random.default_rng(1))
    differences = replicates[:, 0] - replicates[:, 1]
    observed = np.array([k / n])
    p = resampling.paired_p_value(differences[:, None], observed)[0]
    binomial = stats.binom(n, k / n)
    exact = binomial.pmf(0) + binomial.sf(2 * k - 1)
    assert p == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / n_bootstrap))
    low, high = resampling.percentile_interval(differences, 0.95)
    assert low == pytest.approx(binomial.ppf(0.025) / n, abs=1.01 / n)
    assert high == pytest.approx(binomial.ppf(0.975) / n, abs=1.01 / n)


def test_identical_columns_give_zero_difference_and_p_one():
    values = np.random.default_rng(2).integers(0, 2, size=(4, 50, 1)).astype(float)
    replicates = resampling.split_bootstrap(
        np.repeat(values, 2, axis=2), 500, np.random.default_rng(3)
    )
    differences = replicates[:, :1] - replicates[:, 1:]
    assert np.all(differences == 0)
    assert resampling.paired_p_value(differences, np.zeros(1))[0] == 1.0


def test_random_splits_are_disjoint_reproducible_and_differ_by_seed():
    seq = np.random.SeedSequence(0)
    a = resampling.random_splits(50, 20, 4, seq)
    b = resampling.random_splits(50, 20, 4, np.random.SeedSequence(0))
    c = resampling.random_splits(50, 20, 4, np.random.SeedSequence(1))
    for split in a:
        assert split.calibration.size == 20 and split.test.size == 30
        np.testing.assert_array_equal(np.sort(np.r_[split.calibration, split.test]), np.arange(50))
    assert all(np.array_equal(x.calibration, y.calibration) for x, y in zip(a, b, strict=True))
    assert [x.fit_seed for x in a] == [y.fit_seed for y in b]
    assert not np.array_equal(a[0].calibration, c[0].calibration)
    assert len({x.fit_seed for x in a}) == 4


def test_seed_sequences_reject_a_bad_random_state():
    with pytest.raises(TypeError, match="random_state"):
        resampling.seed_sequences(-1)
    with pytest.raises(TypeError, match="random_state"):
        resampling.seed_sequences(1.5)


# -- statistical checks: many simulated test sets where the truth is known, vectorised as the
# columns of one bootstrap (each column its own data set; 1,000 of them).
N_SIMS = 1000


def _miss_rate(values, truth, seed):
    replicates = resampling.split_bootstrap(values, 1000, np.random.default_rng(seed))
    low, high = resampling.percentile_interval(replicates, 0.95)
    return np.mean((truth < low) | (truth > high))


def test_interval_of_one_split_covers_the_true_accuracy_95_percent_of_the_time():
    rng = np.random.default_rng(10)
    values = (rng.random((1, 400, N_SIMS)) < 0.9).astype(float)
    # 95% nominal; 3.5 standard errors of a 1,000-draw rate either side.
    assert 0.05 - 0.025 <= _miss_rate(values, 0.9, 11) <= 0.05 + 0.025


def test_interval_over_independent_splits_is_conservative():
    # Each split's calibration moves its accuracy (sd 2 points); its test samples add noise.
    rng = np.random.default_rng(12)
    accuracy = 0.9 + rng.normal(0, 0.02, size=(10, 1, N_SIMS))
    values = (rng.random((10, 200, N_SIMS)) < accuracy).astype(float)
    assert _miss_rate(values, 0.9, 13) <= 0.05 + 0.025


def test_paired_test_rejects_at_its_level_under_the_null_and_finds_a_real_gap():
    rng = np.random.default_rng(14)
    a = (rng.random((1, 400, N_SIMS)) < 0.8).astype(float)
    for other, check in ((0.8, lambda rate: rate <= 0.05 + 0.025), (0.7, lambda rate: rate > 0.8)):
        b = (rng.random((1, 400, N_SIMS)) < other).astype(float)
        replicates = resampling.split_bootstrap(
            np.concatenate([a, b], axis=2), 1000, np.random.default_rng(15)
        )
        differences = replicates[:, :N_SIMS] - replicates[:, N_SIMS:]
        observed = a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))
        rate = np.mean(resampling.paired_p_value(differences, observed) < 0.05)
        assert check(rate), (other, rate)
