"""eeopt.risk: each bound against an independent computation, fixed-sequence testing, conformal
risk control, and the guarantees themselves, checked by simulation where the truth is known."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from reference import ref_crc_index, ref_fixed_sequence, ref_wsr_p_value
from scipy import optimize, stats

from eeopt import risk
from eeopt.risk import (
    binomial_p_value,
    binomial_upper_bound,
    certifiable_epsilons,
    certify,
    certify_means,
    conformal_risk_control,
    fixed_sequence,
    hb_p_value,
    hb_upper_bound,
    sample_order,
    wsr_p_value,
    wsr_upper_bound,
)

ROOT = Path(__file__).resolve().parents[1]


def slack_count(n_trials: int, rate: float) -> float:
    """One-sided 99.9% binomial upper limit of the number of failures when each of
    ``n_trials`` independent trials fails with probability ``rate``: a valid procedure exceeds
    it with probability at most 0.001."""
    return stats.binom.ppf(0.999, n_trials, rate)


def hb_reference(mean: float, n: int, epsilon: float) -> float:
    """LTT's Hoeffding-Bentkus p-value, one number at a time from its formula."""
    a = min(mean, epsilon)

    def xlogx_over(x: float, y: float) -> float:
        return 0.0 if x == 0 else x * math.log(x / y)

    kl = xlogx_over(a, epsilon) + xlogx_over(1 - a, 1 - epsilon)
    count = math.ceil(round(n * mean, 9))
    return min(1.0, math.exp(-n * kl), math.e * stats.binom.cdf(count, n, epsilon))


# -- the bounds against independent computations ---------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 7, 50, 1000])
@pytest.mark.parametrize("epsilon", [0.0, 0.01, 0.3, 0.5, 0.99])
def test_binomial_p_value_is_the_binomial_lower_tail(n, epsilon):
    counts = np.arange(n + 1)
    expected = stats.binom.cdf(counts, n, epsilon)
    assert np.allclose(binomial_p_value(counts / n, n, epsilon), expected, rtol=1e-9, atol=0)


@pytest.mark.parametrize("n", [1, 2, 7, 50, 1000])
@pytest.mark.parametrize("delta", [0.01, 0.1, 0.5])
def test_binomial_upper_bound_is_clopper_pearson(n, delta):
    counts = np.arange(n + 1)
    expected = np.where(
        counts < n, stats.beta.ppf(1 - delta, counts + 1, np.maximum(n - counts, 1)), 1.0
    )
    got = binomial_upper_bound(counts / n, n, delta)
    assert np.allclose(got, expected, rtol=1e-10, atol=1e-14)


def test_binomial_hand_cases():
    assert binomial_p_value(0.0, 10, 0.2) == pytest.approx(0.8**10, rel=1e-14)
    # 1 - delta^(1/n): the upper limit with no loss at all
    assert binomial_upper_bound(0.0, 10, 0.1) == pytest.approx(1 - 0.1**0.1, rel=1e-12)
    # 2 of 4: P(Bin(4, 0.5) <= 2) = 11/16
    assert binomial_p_value(0.5, 4, 0.5) == pytest.approx(11 / 16, rel=1e-14)


@pytest.mark.parametrize("n", [1, 3, 40, 1000, 20000])
@pytest.mark.parametrize("epsilon", [0.0, 0.02, 0.25, 0.5, 0.9])
def test_hb_p_value_matches_the_ltt_formula(n, epsilon):
    rng = np.random.default_rng(n)
    means = np.concatenate([[0.0, 1.0, epsilon, 0.5], rng.random(20), np.arange(n + 1)[:20] / n])
    expected = [hb_reference(float(m), n, epsilon) for m in means]
    assert np.allclose(hb_p_value(means, n, epsilon), expected, rtol=1e-9, atol=1e-300)


def test_hb_hand_cases():
    # mean 0: Hoeffding gives (1 - eps)^n exactly, Bentkus e (1 - eps)^n
    assert hb_p_value(0.0, 10, 0.2) == pytest.approx(0.8**10, rel=1e-12)
    # mean >= epsilon: no evidence at all
    assert hb_p_value(0.3, 100, 0.2) == 1.0
    assert hb_p_value(0.2, 100, 0.2) == 1.0


@given(
    arrays(np.float64, st.integers(1, 25), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0])),
    st.floats(0.0, 0.99),
    st.sampled_from([0.05, 0.1, 0.5]),
)
def test_wsr_p_value_matches_the_per_sample_loop(x, epsilon, delta):
    got = wsr_p_value(x, epsilon, delta)
    assert got == pytest.approx(ref_wsr_p_value(x, epsilon, delta), rel=1e-10, abs=1e-300)


def test_wsr_hand_case():
    # Two zero losses, epsilon 0.5, delta 0.1: both plug-in bets (3.03 and 3.84) exceed the
    # cap 1 / (1 - 0.5) = 2, so each factor is 1 + 2 * 0.5 and p = 1 / 2^2.
    assert wsr_p_value([0.0, 0.0], 0.5, 0.1) == pytest.approx(1 / 4, rel=1e-14)
    # A loss of 1 right away: capital 1 - 2 * 0.5 = 0, ruined; the maximum stays K_0 = 1, and
    # later zero losses cannot bring it back.
    assert wsr_p_value([1.0], 0.5, 0.1) == 1.0
    assert wsr_p_value([1.0, 0.0, 0.0], 0.5, 0.1) == 1.0
    # The same ruin inside the upper bound's root finding: finite, and a bound of the mean.
    assert 0.0 < wsr_upper_bound([1.0, 0.0, 0.0, 0.0], 0.1) <= 1.0


def test_wsr_rows_are_independent_settings():
    rng = np.random.default_rng(3)
    losses = rng.random((5, 40))
    rows = [wsr_p_value(row, 0.6, 0.1) for row in losses]
    assert np.array_equal(wsr_p_value(losses, 0.6, 0.1), rows)


# -- the upper bounds invert the p-values ------------------------------------------------------
def _p_of(bound, losses, n, epsilon, delta):
    if bound == "wsr":
        return wsr_p_value(losses, epsilon, delta)
    means = losses.mean(axis=1)
    return (binomial_p_value if bound == "binomial" else hb_p_value)(means, n, epsilon)


def _ucb_of(bound, losses, n, delta):
    if bound == "wsr":
        return wsr_upper_bound(losses, delta)
    means = losses.mean(axis=1)
    return (binomial_upper_bound if bound == "binomial" else hb_upper_bound)(means, n, delta)


@pytest.mark.parametrize("bound", ["binomial", "hb", "wsr"])
@pytest.mark.parametrize("n", [1, 4, 60, 2000])
@pytest.mark.parametrize("delta", [0.01, 0.2])
def test_upper_bound_inverts_the_p_value(bound, n, delta):
    rng = np.random.default_rng(n)
    risks = np.array([0.0, 0.01, 0.1, 0.5, 0.9, 1.0])
    losses = (rng.random((risks.size, n)) < risks[:, None]).astype(float)
    ucb = _ucb_of(bound, losses, n, delta)
    # WSR's capital may peak before the last sample, so its bound can dip below the mean
    floor = 0.0 if bound == "wsr" else losses.mean(axis=1) - 1e-12
    assert np.all((ucb >= floor) & (ucb <= 1.0))
    for j, u in enumerate(ucb):
        row = losses[j : j + 1]
        if u < 1.0:
            # p(UCB) = delta, and p is above delta just below the bound
            assert _p_of(bound, row, n, u, delta)[0] == pytest.approx(delta, rel=1e-6)
            assert _p_of(bound, row, n, u * (1 - 1e-6), delta)[0] > delta
        else:  # nothing below 1 is rejected
            assert _p_of(bound, row, n, 1 - 1e-9, delta)[0] > delta


def test_hb_upper_bound_matches_a_root_finder():
    for mean, n, delta in [(0.0, 10, 0.1), (0.05, 1000, 0.1), (0.3, 57, 0.01), (0.97, 5, 0.3)]:

        def gap(eps, mean=mean, n=n, delta=delta):
            return hb_reference(mean, n, eps) - delta

        root = optimize.brentq(gap, mean + 1e-12, 1 - 1e-15, xtol=1e-15)
        assert hb_upper_bound(mean, n, delta) == pytest.approx(root, abs=1e-9)


def test_wsr_upper_bound_matches_a_root_finder_on_the_loop():
    rng = np.random.default_rng(7)
    x = (rng.random(80) < 0.2).astype(float)
    root = optimize.brentq(lambda e: ref_wsr_p_value(x, e, 0.1) - 0.1, 1e-9, 1 - 1e-9, xtol=1e-14)
    assert wsr_upper_bound(x, 0.1) == pytest.approx(root, abs=1e-9)


# -- edges and monotonicity ------------------------------------------------------------------
@pytest.mark.parametrize("bound", ["binomial", "hb", "wsr"])
def test_bounds_are_finite_at_the_edges(bound):
    cases = [np.zeros((1, 1)), np.ones((1, 1)), np.zeros((1, 30)), np.ones((1, 30))]
    if bound != "binomial":
        cases.append(np.full((1, 30), 0.4))  # all equal, not 0/1
    for losses in cases:
        n = losses.shape[1]
        for epsilon in (0.0, 0.3, 1.0):
            p = _p_of(bound, losses, n, epsilon, 0.1)
            assert np.all((p >= 0) & (p <= 1))
        ucb = _ucb_of(bound, losses, n, 0.1)
        assert np.all(np.isfinite(ucb) & (ucb >= losses.mean(axis=1)) & (ucb <= 1))
    # epsilon at the top of the range: the null is impossible, p = 0; at the bottom p = 1
    assert _p_of(bound, np.ones((1, 5)), 5, 1.0, 0.1)[0] == 0.0
    assert _p_of(bound, np.zeros((1, 5)), 5, 0.0, 0.1)[0] == 1.0


def test_all_equal_losses_are_tight_for_wsr():
    """WSR adapts to the variance: a constant loss of 0.4 is certified near 0.4, where
    Hoeffding-Bentkus, blind to the variance, needs much more."""
    losses = np.full((1, 2000), 0.4)
    wsr = wsr_upper_bound(losses, 0.1)[0]
    hb = hb_upper_bound(0.4, 2000, 0.1)
    assert 0.4 < wsr < 0.41 < hb


@pytest.mark.parametrize("bound", ["binomial", "hb"])
def test_p_value_and_bound_shrink_with_n_at_a_fixed_mean(bound):
    p_of = binomial_p_value if bound == "binomial" else hb_p_value
    ucb_of = binomial_upper_bound if bound == "binomial" else hb_upper_bound
    ns = 10 * 2 ** np.arange(10)  # n * 0.1 is a whole number for each
    p = [p_of(0.1, int(n), 0.2) for n in ns]
    ucb = [ucb_of(0.1, int(n), 0.1) for n in ns]
    assert np.all(np.diff(p) < 0) and np.all(np.diff(ucb) < 0)


def test_wsr_bound_shrinks_with_n_on_a_repeated_pattern():
    pattern = np.array([0.0, 0.0, 0.5, 0.0, 1.0])
    ucb = [wsr_upper_bound(np.tile(pattern, reps), 0.1) for reps in (2, 8, 32, 128, 512)]
    assert np.all(np.diff(ucb) < 0)


@pytest.mark.parametrize("bound", ["binomial", "hb", "wsr"])
def test_upper_bound_falls_as_delta_grows(bound):
    rng = np.random.default_rng(11)
    losses = (rng.random((4, 300)) < np.array([[0.0], [0.05], [0.3], [0.8]])).astype(float)
    # A theorem for binomial and hb; for wsr the bets change with delta too, so this checks
    # that they do not undo the monotonicity on typical data.
    deltas = [0.001, 0.01, 0.05, 0.1, 0.2, 0.5]
    ucbs = np.array([_ucb_of(bound, losses, 300, d) for d in deltas])
    assert np.all(np.diff(ucbs, axis=0) < 0)


@pytest.mark.parametrize("bound", ["hb", "wsr"])
def test_loss_range_maps_losses_and_epsilon_exactly(bound):
    rng = np.random.default_rng(5)
    low, high = 2.0, 6.0
    unit = rng.random((3, 200)) * np.array([[0.2], [0.5], [1.0]])
    losses = low + (high - low) * unit
    epsilon = 3.0
    if bound == "hb":
        p = hb_p_value(losses.mean(axis=1), 200, epsilon, loss_range=(low, high))
        p_unit = hb_p_value(unit.mean(axis=1), 200, 0.25)
        ucb = hb_upper_bound(losses.mean(axis=1), 200, 0.1, loss_range=(low, high))
        ucb_unit = hb_upper_bound(unit.mean(axis=1), 200, 0.1)
    else:
        p = wsr_p_value(losses, epsilon, 0.1, loss_range=(low, high))
        p_unit = wsr_p_value(unit, 0.25, 0.1)
        ucb = wsr_upper_bound(losses, 0.1, loss_range=(low, high))
        ucb_unit = wsr_upper_bound(unit, 0.1)
    assert np.allclose(p, p_unit, rtol=1e-9)
    assert np.allclose(ucb, low + (high - low) * ucb_unit, rtol=1e-12)


# -- fixed-sequence testing --------------------------------------------------------------------
def test_fixed_sequence_hand_cases():
    assert fixed_sequence([0.01, 0.02, 0.5, 0.01], 0.1) == 1  # never the later 0.01
    assert fixed_sequence([0.5, 0.01], 0.1) == -1
    assert fixed_sequence([0.01, 0.02, 0.03], 0.1) == 2
    assert fixed_sequence([0.1, 0.1 + 1e-12], 0.1) == 0  # p = delta is rejected
    assert fixed_sequence([0.01, np.nan, 0.01], 0.1) == 0  # NaN: not tested, not rejected


@given(
    arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 12)), elements=st.floats(0, 1))
)
def test_fixed_sequence_matches_the_loop_row_by_row(p_values):
    got = fixed_sequence(p_values, 0.3)
    assert got.tolist() == [ref_fixed_sequence(row, 0.3) for row in p_values]


def test_certify_returns_the_last_rejected_setting_never_the_first_non_rejected():
    # Setting 2 has risk 0.5 and fails; setting 3 (risk 0) would pass but comes after it.
    losses = np.zeros((4, 400))
    losses[1, :4] = 1
    losses[2, :200] = 1
    for bound in ("binomial", "hb", "wsr"):
        cert = certify(losses, 0.1, 0.1, bound=bound)
        assert (cert.index, cert.n_tested) == (1, 3)
        assert cert.p_values[1] <= 0.1 < cert.p_values[2]
        assert np.isnan(cert.p_values[3]) and np.isnan(cert.upper_bounds[3])
        assert cert.upper_bounds[1] <= 0.1 < cert.upper_bounds[2]
        assert fixed_sequence(cert.p_values, 0.1) == cert.index


def test_certify_with_nothing_certified_says_what_epsilon_would_do():
    losses = np.zeros((3, 20))  # 20 samples cannot certify 0.05 even with no loss at all
    cert = certify(losses, 0.05, 0.1, bound="binomial")
    assert cert.index == -1 and not cert.certified and cert.n_tested == 1
    expected = 1 - 0.1 ** (1 / 20)
    assert cert.smallest_certifiable_epsilon == pytest.approx(expected, rel=1e-12)
    assert "from epsilon=0.108" in cert.statement()
    above = certify(losses, cert.smallest_certifiable_epsilon + 1e-9, 0.1, bound="binomial")
    below = certify(losses, cert.smallest_certifiable_epsilon - 1e-9, 0.1, bound="binomial")
    assert above.index == 2 and below.index == -1


@pytest.mark.parametrize("bound", ["binomial", "hb"])
def test_certify_means_gives_exactly_what_certify_gives(bound):
    rng = np.random.default_rng(2)
    for n_settings, epsilon in [(3, 0.2), (150, 0.25), (300, 0.9)]:
        risks = np.linspace(0.0, 0.5, n_settings)
        losses = (rng.random((n_settings, 500)) < risks[:, None]).astype(float)
        full = certify(losses, epsilon, 0.1, bound=bound)
        means = certify_means(losses.mean(axis=1), 500, epsilon, 0.1, bound=bound)
        assert full.to_dict() == means.to_dict()
        assert np.array_equal(full.p_values, means.p_values, equal_nan=True)
        assert np.array_equal(full.upper_bounds, means.upper_bounds, equal_nan=True)


@pytest.mark.parametrize("bound", ["binomial", "hb", "wsr", "crc"])
def test_some_upper_bounds_are_those_of_the_whole_path(bound):
    """upper_bounds_at(positions), read before or after the whole array, gives its numbers:
    each tested setting's bound inverts its own p-value (risk.*_upper_bound)."""
    rng = np.random.default_rng(7)
    losses = (rng.random((40, 300)) < np.linspace(0.0, 0.3, 40)[:, None]).astype(float)
    if bound == "crc":
        cert = conformal_risk_control(losses, 0.2)
    else:
        cert = certify(losses, 0.2, 0.1, bound=bound)
    positions = np.array([cert.n_tested - 1, 0, 3, 3])
    early = cert.upper_bounds_at(positions)  # before upper_bounds is computed
    means = losses.mean(axis=1)
    if bound == "binomial":
        expected = [binomial_upper_bound(means[j], 300, 0.1) for j in positions]
    elif bound == "hb":
        expected = [hb_upper_bound(means[j], 300, 0.1) for j in positions]
    elif bound == "wsr":
        order = sample_order(300)
        expected = [wsr_upper_bound(losses[j][order], 0.1) for j in positions]
    else:  # the running maxima's means, (n R + B) / (n + 1)
        running = np.maximum.accumulate(losses, axis=0).mean(axis=1)
        expected = (300 * running[positions] + 1.0) / 301
    np.testing.assert_allclose(early, expected, rtol=1e-12)
    np.testing.assert_array_equal(early, cert.upper_bounds[positions])
    np.testing.assert_array_equal(cert.upper_bounds_at(positions), early)  # after: the array
    assert cert.smallest_certifiable_epsilon == early[1]
    with pytest.raises(ValueError, match="tested settings"):
        cert.upper_bounds_at([cert.n_tested])


def test_certify_means_tests_lazily_across_chunks():
    means = np.concatenate([np.zeros(100), [0.5], np.zeros(10**5)])
    cert = certify_means(means, 1000, 0.1, 0.1)
    assert (cert.index, cert.n_tested) == (99, 101)
    assert np.all(np.isnan(cert.p_values[101:])) and np.all(cert.p_values[:100] <= 0.1)
    every = certify_means(np.zeros(1000), 1000, 0.1, 0.1)
    assert (every.index, every.n_tested) == (999, 1000)


@pytest.mark.parametrize("bound", ["binomial", "hb", "wsr"])
def test_certifiable_epsilons_predict_certify(bound):
    rng = np.random.default_rng(4)
    risks = np.array([0.0, 0.01, 0.03, 0.02, 0.08, 0.2])  # not monotone: the running max
    losses = (rng.random((6, 800)) < risks[:, None]).astype(float)
    needed = certifiable_epsilons(losses, 0.1, bound=bound, random_state=3)
    assert np.all(np.diff(needed) >= 0)
    for epsilon in np.linspace(0.005, 0.4, 23):
        if np.min(np.abs(needed - epsilon)) < 1e-9:
            continue
        expected = int(np.sum(needed <= epsilon)) - 1
        assert certify(losses, epsilon, 0.1, bound=bound, random_state=3).index == expected


def test_positive_part_certifies_the_dominating_binary_loss_of_an_accuracy_gap():
    rng = np.random.default_rng(8)
    gap = rng.choice([-1.0, 0.0, 1.0], p=[0.03, 0.95, 0.02], size=(3, 500))
    gap[0] = 0
    with pytest.raises(ValueError, match="positive_part=True"):
        certify(gap, 0.05, 0.1, bound="binomial", loss_range=(-1, 1))
    cert = certify(gap, 0.05, 0.1, bound="binomial", loss_range=(-1, 1), positive_part=True)
    plain = certify(np.maximum(gap, 0), 0.05, 0.1, bound="binomial")
    assert cert.index == plain.index == 2
    assert np.array_equal(cert.p_values, plain.p_values)
    assert cert.positive_part and cert.loss_range == (0.0, 1.0)
    assert "max(loss, 0)" in cert.statement() and "hence also of the loss" in cert.statement()
    with pytest.raises(ValueError, match="epsilon = -0.01 < 0"):
        certify(gap, -0.01, 0.1, bound="hb", loss_range=(-1, 1), positive_part=True)


def test_wsr_order_is_a_seeded_permutation():
    rng = np.random.default_rng(9)
    losses = np.sort((rng.random((2, 300)) < 0.1).astype(float), axis=1)  # sorted: all 0 first
    default = certify(losses, 0.2, 0.1, bound="wsr")
    assert np.array_equal(default.p_values, certify(losses, 0.2, 0.1, bound="wsr").p_values)
    seeded = certify(losses, 0.2, 0.1, bound="wsr", random_state=0)
    assert np.array_equal(default.p_values, seeded.p_values)  # None is seed 0
    order = np.random.default_rng(0).permutation(300)
    assert np.array_equal(default.p_values, wsr_p_value(losses[:, order], 0.2, 0.1))
    # the given (sorted) order would bet on the zeros first: not what certify does
    assert not np.allclose(default.p_values, wsr_p_value(losses, 0.2, 0.1))


def test_certification_to_dict_is_json_and_complete():
    losses = np.array([[0.0] * 50, [1.0] * 5 + [0.0] * 45, [1.0] * 50])
    cert = certify(losses, 0.3, 0.1, bound="binomial")
    record = json.loads(json.dumps(cert.to_dict(), allow_nan=False))
    assert record["index"] == 1 and record["n_tested"] == 3 and len(record["p_values"]) == 3
    assert record["guarantee"] == "probability" and record["delta"] == 0.1
    assert record["statement"].startswith("With probability at least 0.9")
    crc = conformal_risk_control(losses, 0.3).to_dict()
    assert json.loads(json.dumps(crc, allow_nan=False))["p_values"] is None
    assert crc["guarantee"] == "expectation" and crc["loss_range"] == [None, 1.0]


# -- conformal risk control --------------------------------------------------------------------
@given(
    arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 8)), elements=st.floats(-1, 1)),
    st.floats(-0.5, 1.0),
)
def test_crc_matches_the_loop_with_a_running_max(losses, epsilon):
    got = conformal_risk_control(losses, epsilon, loss_bound=1.0)
    assert got.index == ref_crc_index(losses.tolist(), epsilon, 1.0)


def test_crc_hand_case_uses_the_running_max():
    # Sample 1 loses at setting 1 only; the raw mean of setting 2 is 0, its running max 1/4.
    losses = np.array([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]])
    crc = conformal_risk_control(losses, epsilon=0.45)
    assert crc.upper_bounds.tolist() == [0.2, 0.4, 0.4, 0.6]  # (sum + 1) / 5
    assert crc.index == 2 and crc.delta is None and crc.p_values is None
    assert conformal_risk_control(losses, epsilon=0.39).index == 0
    assert conformal_risk_control(losses, epsilon=0.1).index == -1
    # From the sums of the running maxima (0, 1, 1, 2 by hand): the same certificate.
    sums = risk.conformal_risk_control_from_sums([0, 1, 1, 2], 4, epsilon=0.45)
    assert sums.upper_bounds.tolist() == [0.2, 0.4, 0.4, 0.6] and sums.index == 2
    with pytest.raises(ValueError, match="never falls"):
        risk.conformal_risk_control_from_sums([1, 0], 4, epsilon=0.45)


# -- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: certify(np.zeros((2, 5)), 0.1, 0.0), ValueError, "delta"),
        (lambda: certify(np.zeros((2, 5)), 0.1, 1.0), ValueError, "delta"),
        (lambda: certify(np.zeros((2, 5)), 0.1, float("nan")), ValueError, "delta"),
        (lambda: certify(np.zeros((2, 5)), 0.1, "0.1"), TypeError, "delta"),
        (lambda: certify(np.zeros((2, 5)), 1.5, 0.1), ValueError, "epsilon"),
        (lambda: certify(np.zeros((2, 5)), -2, 0.1, loss_range=(-1, 1)), ValueError, "epsilon"),
        (lambda: certify(np.zeros((2, 5)), float("nan"), 0.1), ValueError, "epsilon"),
        (lambda: certify(np.zeros((2, 5)), None, 0.1), TypeError, "epsilon"),
        (lambda: certify(np.full((2, 5), np.nan), 0.1, 0.1), ValueError, "losses"),
        (lambda: certify(np.full((2, 5), np.inf), 0.1, 0.1), ValueError, "losses"),
        (lambda: certify(np.zeros((2, 5, 3)), 0.1, 0.1), ValueError, "losses"),
        (lambda: certify(np.zeros((0, 5)), 0.1, 0.1), ValueError, "losses"),
        (lambda: certify("abc", 0.1, 0.1), TypeError, "losses"),
        (lambda: certify(np.full((2, 5), 2.0), 0.1, 0.1), ValueError, "loss_range"),
        (lambda: certify(-np.ones((2, 5)), 0.1, 0.1), ValueError, "loss_range"),
        (lambda: certify(np.zeros((2, 5)), 0.1, 0.1, bound="bonferroni"), ValueError, "bound"),
        (lambda: certify(np.zeros((2, 5)), 0.1, 0.1, loss_range=(1, 0)), ValueError, "a < b"),
        (lambda: certify(np.zeros((2, 5)), 0.1, 0.1, loss_range=(0,)), TypeError, "loss_range"),
        (lambda: certify(np.zeros((2, 5)), 0.1, 0.1, positive_part=1), TypeError, "positive"),
        (lambda: certify(np.zeros((2, 5)), 0.1, 0.1, random_state="0"), TypeError, "random_st"),
        (lambda: certify(np.full((2, 5), 0.5), 0.1, 0.1, bound="binomial"), ValueError, "0/1"),
        (lambda: certify_means([0.1], 10, 0.2, 0.1, bound="wsr"), ValueError, "per-sample"),
        (lambda: certify_means([0.15], 10, 0.2, 0.1, bound="binomial"), ValueError, "whole"),
        (lambda: certify_means([0.1], 0, 0.2, 0.1), ValueError, "n_samples"),
        (lambda: certify_means([0.1], 2.5, 0.2, 0.1), TypeError, "n_samples"),
        (lambda: certify_means(np.zeros((2, 2)), 10, 0.2, 0.1), ValueError, "means"),
        (lambda: hb_p_value([0.1, 1.2], 10, 0.2), ValueError, "means"),
        (lambda: wsr_p_value([[0.1, np.nan]], 0.2, 0.1), ValueError, "losses"),
        (lambda: fixed_sequence([0.1, 1.5], 0.1), ValueError, "p_values"),
        (lambda: fixed_sequence([], 0.1), ValueError, "p_values"),
        (lambda: conformal_risk_control(np.full((2, 3), 2.0), 0.1), ValueError, "loss_bound"),
        (lambda: conformal_risk_control(np.zeros((2, 3)), 1.5), ValueError, "epsilon"),
        (lambda: conformal_risk_control(np.zeros((2, 3)), 0.1, loss_bound=None), TypeError, "loss"),
    ],
)
def test_bad_input_is_rejected_with_the_argument_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- validity: the guarantee holds where the truth is known -------------------------------------
DELTA = 0.1


def nested_bernoulli(rng, risks, n, n_sets):
    """Loss matrices ``(n_sets, n_settings, n)`` of a path whose settings lose on a sample when
    its uniform draw is below the setting's risk: monotone along the path, as real paths are,
    with ``risks`` the true risks."""
    u = rng.random((n_sets, 1, n))
    return (u < np.asarray(risks)[None, :, None]).astype(np.float64)


def failures(index, true_risks, epsilon):
    """Calibration sets whose certified setting has a true risk above epsilon."""
    risk_of_certified = np.where(index >= 0, np.asarray(true_risks)[np.maximum(index, 0)], 0.0)
    return int(np.count_nonzero((index >= 0) & (risk_of_certified > epsilon)))


def test_fixed_sequence_controls_the_error_on_bernoulli_paths():
    """Setting 3 has risk just above epsilon, its predecessors well below: the procedure fails
    exactly when it rejects setting 3, which a valid test does with probability <= delta. The
    binomial test is exact, so its failure rate sits near delta; returning the first
    non-rejected setting (RC-EENN's code) fails almost always."""
    rng = np.random.default_rng(0)
    risks, epsilon, n, n_sets = [0.0, 0.02, 0.05, 0.101, 0.15, 0.3], 0.1, 500, 4000
    means = nested_bernoulli(rng, risks, n, n_sets).mean(axis=2)
    limit = slack_count(n_sets, DELTA)
    for p_value in (binomial_p_value, hb_p_value):
        index = fixed_sequence(p_value(means, n, epsilon), DELTA)
        assert failures(index, risks, epsilon) <= limit, p_value.__name__
    index = fixed_sequence(binomial_p_value(means, n, epsilon), DELTA)
    assert failures(index, risks, epsilon) > 0.5 * DELTA * n_sets  # near delta: a sharp check
    first_non_rejected = np.minimum(index + 1, len(risks) - 1)
    assert failures(first_non_rejected, risks, epsilon) > limit


def test_wsr_controls_the_error_on_bernoulli_paths():
    rng = np.random.default_rng(1)
    risks, epsilon, n, n_sets = [0.0, 0.02, 0.05, 0.101, 0.3], 0.1, 400, 1000  # WSR: fewer sets
    losses = nested_bernoulli(rng, risks, n, n_sets)
    p = wsr_p_value(losses.reshape(-1, n), epsilon, DELTA).reshape(n_sets, len(risks))
    assert failures(fixed_sequence(p, DELTA), risks, epsilon) <= slack_count(n_sets, DELTA)


def test_every_bound_controls_the_error_on_accuracy_gap_losses():
    """Losses in {-1, 0, 1} with P(+1) = up and P(-1) = down: true risk up - down. Setting 3
    has risk 0.1005 > epsilon = 0.1."""
    rng = np.random.default_rng(2)
    up = np.array([0.0, 0.02, 0.05, 0.12, 0.2])
    down = np.array([0.0, 0.01, 0.02, 0.0195, 0.02])
    true_risks, epsilon, n = up - down, 0.1, 1000
    # binomial (positive part) and hb depend on counts only: draw them, 4000 sets
    n_sets = 4000
    counts = np.stack(
        [rng.multinomial(n, [u, d, 1 - u - d], size=n_sets) for u, d in zip(up, down, strict=True)],
        axis=1,
    )
    gap_means = (counts[..., 0] - counts[..., 1]) / n
    index_hb = fixed_sequence(hb_p_value(gap_means, n, epsilon, loss_range=(-1, 1)), DELTA)
    index_binomial = fixed_sequence(binomial_p_value(counts[..., 0] / n, n, epsilon), DELTA)
    for index in (index_hb, index_binomial):
        assert failures(index, true_risks, epsilon) <= slack_count(n_sets, DELTA)
    # wsr needs every sample, so fewer sets (600): the limit below is looser for it
    n_sets = 600
    draws = rng.random((n_sets, len(up), n))
    gap = (draws < up[None, :, None]).astype(float) - (draws > 1 - down[None, :, None])
    p = wsr_p_value(gap.reshape(-1, n), epsilon, DELTA, loss_range=(-1, 1))
    index_wsr = fixed_sequence(p.reshape(n_sets, len(up)), DELTA)
    assert failures(index_wsr, true_risks, epsilon) <= slack_count(n_sets, DELTA)


def test_hb_and_wsr_control_the_error_on_bounded_continuous_costs():
    """Costs in [1, 4]: 1 + 3 Beta(a, b), true mean 1 + 3 a / (a + b). Epsilon = 2 is a budget
    certified as 'mean cost <= 2'; setting 2 has mean 2.003."""
    rng = np.random.default_rng(3)
    shares = np.array([0.05, 0.2, 1.003 / 3, 0.6])
    true_means, epsilon, n = 1 + 3 * shares, 2.0, 300
    concentration = 4.0
    a, b = shares * concentration, (1 - shares) * concentration
    n_sets = 2000
    costs = 1 + 3 * rng.beta(a[None, :, None], b[None, :, None], size=(n_sets, len(shares), n))
    index = fixed_sequence(hb_p_value(costs.mean(axis=2), n, epsilon, loss_range=(1, 4)), DELTA)
    assert failures(index, true_means, epsilon) <= slack_count(n_sets, DELTA)
    n_sets = 800  # wsr needs every sample: fewer sets
    p = wsr_p_value(costs[:n_sets].reshape(-1, n), epsilon, DELTA, loss_range=(1, 4))
    index = fixed_sequence(p.reshape(n_sets, len(shares)), DELTA)
    assert failures(index, true_means, epsilon) <= slack_count(n_sets, DELTA)


def test_certify_itself_is_valid_on_a_small_simulation():
    """The public entry point, end to end (the vectorised checks above test its parts)."""
    rng = np.random.default_rng(4)
    risks, epsilon, n, n_sets = [0.0, 0.05, 0.101, 0.3], 0.1, 300, 200
    losses = nested_bernoulli(rng, risks, n, n_sets)
    for bound in ("binomial", "hb", "wsr"):
        index = np.array([certify(m, epsilon, DELTA, bound=bound).index for m in losses])
        assert failures(index, risks, epsilon) <= slack_count(n_sets, DELTA), bound


def test_power_a_risk_of_half_epsilon_is_certified_most_of_the_time():
    """Not trivially conservative: at n = 1000, a setting whose true risk is epsilon / 2 is
    certified in at least 95% of calibration sets by each bound."""
    rng = np.random.default_rng(5)
    n, n_sets = 1000, 400
    losses = nested_bernoulli(rng, [0.0, 0.05], n, n_sets)
    means = losses.mean(axis=2)
    p_values = {
        "binomial": binomial_p_value(means, n, 0.1),
        "hb": hb_p_value(means, n, 0.1),
        "wsr": wsr_p_value(losses.reshape(-1, n), 0.1, DELTA).reshape(n_sets, 2),
    }
    for bound, p in p_values.items():
        assert np.mean(fixed_sequence(p, DELTA) == 1) >= 0.95, bound


def test_crc_bounds_the_expected_risk_and_the_plus_b_term_is_needed():
    """A monotone path on a fine grid: CRC is nearly tight here (its expected risk is within
    2/(n + 1) of epsilon), so dropping the B/(n + 1) term shows up as an excess."""
    rng = np.random.default_rng(6)
    risks = np.linspace(0.0, 0.3, 61)
    epsilon, n, n_sets = 0.1, 100, 2500
    losses = nested_bernoulli(rng, risks, n, n_sets)
    chosen = np.array([conformal_risk_control(m, epsilon).index for m in losses])
    realised = np.where(chosen >= 0, risks[np.maximum(chosen, 0)], 0.0)
    slack = 3.09 * realised.std() / math.sqrt(n_sets)  # one-sided 99.9% normal limit
    assert realised.mean() <= epsilon + slack
    assert realised.mean() >= epsilon - 2 / (n + 1) - slack  # not trivially conservative
    naive = fixed_sequence(np.where(losses.mean(axis=2) <= epsilon, 0.0, 1.0), 0.5)
    assert risks[naive].mean() > epsilon + slack


def test_crc_running_max_keeps_the_guarantee_on_a_non_monotone_path():
    """Losses drawn independently per setting (far from monotone per sample)."""
    rng = np.random.default_rng(7)
    risks = np.linspace(0.0, 0.2, 41)
    epsilon, n, n_sets = 0.1, 100, 2000
    losses = (rng.random((n_sets, risks.size, n)) < risks[None, :, None]).astype(float)
    chosen = np.array([conformal_risk_control(m, epsilon).index for m in losses])
    realised = np.where(chosen >= 0, risks[np.maximum(chosen, 0)], 0.0)
    assert realised.mean() <= epsilon + 3.09 * realised.std() / math.sqrt(n_sets)


# -- RC-EENN's procedure (benchmarks/rc_eenn.py) ----------------------------------------------
def load_rc_eenn():
    spec = importlib.util.spec_from_file_location("rc_eenn", ROOT / "benchmarks" / "rc_eenn.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["rc_eenn"] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def test_rc_eenn_corrected_ltt_returns_the_last_rejected_threshold():
    rc_eenn = load_rc_eenn()
    rng = np.random.default_rng(0)
    n = 2000
    confidence = np.column_stack([rng.uniform(0.0, 1.0, n), np.ones(n)])
    labels = np.zeros(n, dtype=int)
    # the early exit errs (and the final is right) for confidence in (0.5, 0.7]
    early = np.where((confidence[:, 0] > 0.5) & (confidence[:, 0] <= 0.7), 1, 0)
    predictions = np.column_stack([early, labels])
    corrected = rc_eenn.rc_eenn_threshold(confidence, predictions, labels, 0.05, 0.1)
    flawed = rc_eenn.rc_eenn_threshold(
        confidence, predictions, labels, 0.05, 0.1, first_non_rejected=True
    )
    losses, _ = rc_eenn.grid_losses(confidence, predictions, labels)
    p = hb_p_value(np.maximum(losses, 0).mean(axis=1), n, 0.05)
    assert corrected.index == fixed_sequence(p, 0.1) >= 0
    assert flawed.index == corrected.index + 1
    assert p[corrected.index] <= 0.1 < p[flawed.index]
    assert corrected.threshold == rc_eenn.GRID[corrected.index]
    # the exit rule: first exit with confidence > lam, else the last
    exits = rc_eenn.exits_on_grid(confidence)
    assert np.array_equal(exits[50], np.where(confidence[:, 0] > 0.5, 0, 1))


# -- the guide's example runs -------------------------------------------------------------------
def test_guarantees_page_examples_run():
    page = (ROOT / "docs" / "guarantees.md").read_text()
    blocks = page.split("<!-- run by tests/test_risk.py -->")[1:]
    assert blocks, "docs/guarantees.md has no runnable example"
    for block in blocks:
        code = block.split("```python\n", 1)[1].split("```", 1)[0]
        exec(compile(code, "docs/guarantees.md", "exec"), {"__name__": "__docs__"})


def test_module_constants():
    assert risk.BOUNDS == ("binomial", "hb", "wsr") and risk.MEAN_BOUNDS == ("binomial", "hb")
    assert 0 < risk.WSR_MAX_BET <= 1  # above 1 a loss of 1 would make the capital negative
