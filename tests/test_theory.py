import json
import math
from fractions import Fraction

import numpy as np
import pytest
from conftest import make_multi_exit
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import eeopt
from eeopt.methods.beem import beem_scores, exit_error_thresholds
from eeopt.theory import TheoremReport, implied_exit_error, max_exit_error, theorem_3_1

unit = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1))


# -- the bound -------------------------------------------------------------------------------
@settings(max_examples=300)
@given(unit, unit, unit, unit, st.integers(1, 8))
def test_bound_holds_exactly_when_the_implied_exit_error_is_below_p(p, a, b, q, i):
    exact_p, exact_a, exact_q = Fraction(p), Fraction(a), Fraction(q)
    big_b = Fraction(b) ** (i - 1)  # b^0 = 1, also for b = 0
    exits_wrong = exact_q * big_b
    exits = exits_wrong + (1 - exact_q) * exact_a
    implied_below_p = exits > 0 and exits_wrong / exits < exact_p
    denominator = exact_p * exact_a + (1 - exact_p) * big_b
    exact_bound = exact_p * exact_a / denominator if denominator > 0 else Fraction(0)
    bound = float(max_exit_error(p, a, b, i))
    assert bound == pytest.approx(float(exact_bound), rel=1e-12, abs=1e-300)
    # Away from the boundary, floating point cannot flip the comparison.
    assume(abs(exact_q - exact_bound) > Fraction(1, 10**9))
    assert (q < bound) == implied_below_p


@settings(max_examples=100)
@given(st.floats(1e-6, 1 - 1e-6), st.floats(1e-6, 1), st.floats(0, 1), st.integers(1, 6))
def test_bound_is_the_papers_formula_in_the_interior(p, a, b, i):
    papers = a / (a + (1 / p - 1) * b ** (i - 1))
    assert float(max_exit_error(p, a, b, i)) == pytest.approx(papers, rel=1e-9)


@pytest.mark.parametrize(
    "p, a, b, i, expected",
    [
        (0.0, 0.5, 0.5, 2, 0.0),  # 1/p = inf: nothing errs below 0
        (0.0, 0.5, 0.0, 2, 0.0),  # ... even when wrong samples never exit (0 < 0 is false)
        (1.0, 0.5, 0.5, 3, 1.0),  # 1/p - 1 = 0
        (1.0, 0.0, 0.5, 3, 0.0),  # 0 / 0: nothing correct exits
        (0.3, 0.0, 0.5, 2, 0.0),  # a = 0
        (0.3, 0.0, 0.0, 2, 0.0),  # a = b = 0: 0 / 0
        (0.3, 0.5, 0.0, 2, 1.0),  # b = 0, i >= 2: B = 0
        (0.3, 0.5, 0.0, 1, 0.15 / (0.15 + 0.7)),  # i = 1: b^0 = 1 even for b = 0
        (0.2, 0.5, 0.5, 1, 0.1 / (0.1 + 0.8)),
    ],
)
def test_bound_edge_cases(p, a, b, i, expected):
    assert float(max_exit_error(p, a, b, i)) == pytest.approx(expected, rel=1e-15)


def test_bound_broadcasts():
    p = np.array([[0.1], [0.2], [0.3]])
    a = np.array([0.2, 0.4, 0.6, 0.8])
    out = max_exit_error(p, a, 0.5, np.array([1, 2, 3, 4]))
    assert out.shape == (3, 4)
    for r in range(3):
        for c in range(4):
            assert out[r, c] == max_exit_error(p[r, 0], a[c], 0.5, c + 1)
    assert np.ndim(max_exit_error(0.1, 0.2, 0.3, 2)) == 0


@pytest.mark.parametrize(
    "args, error, name",
    [
        ((np.nan, 0.5, 0.5, 2), ValueError, "p"),
        ((1.5, 0.5, 0.5, 2), ValueError, "p"),
        ((0.1, -0.1, 0.5, 2), ValueError, "a"),
        ((0.1, 0.5, 2.0, 2), ValueError, "b"),
        ((0.1, 0.5, 0.5, 0), ValueError, "exit_number"),
        ((0.1, 0.5, 0.5, 1.5), TypeError, "exit_number"),
        (("0.1", 0.5, 0.5, 2), TypeError, "p"),
    ],
)
def test_bound_bad_input_names_the_argument(args, error, name):
    with pytest.raises(error, match=name):
        max_exit_error(*args)


def test_implied_exit_error():
    assert float(implied_exit_error(0.5, 0.5, 0.5)) == 0.5
    assert float(implied_exit_error(0.2, 0.3, 0.6)) == pytest.approx(0.12 / (0.12 + 0.24))
    assert np.isnan(implied_exit_error(0.5, 0.0, 0.0))


# -- the report on data -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    logits, labels = make_multi_exit(n=3000, n_exits=5, n_classes=10, seed=0)
    data = eeopt.ExitData.from_logits(logits, labels)
    return eeopt.fit(data, method="beem-a"), data


def test_report_estimates_from_their_definitions(fitted):
    policy, data = fitted
    report = theorem_3_1(policy, data)
    exits = policy.exit_index(data)
    correct = data.correct
    assert report.p == np.mean(~correct[:, -1])
    assert report.exit_number.tolist() == [1, 2, 3, 4]
    for k in range(4):
        at = exits == k
        assert report.q[k] == np.mean(~correct[:, k])
        assert report.a[k] == np.mean(at[correct[:, k]])
        assert report.B[k] == np.mean(at[~correct[:, k]])
        assert report.n_exit[k] == np.count_nonzero(at)
        if at.any():
            assert report.measured_error[k] == np.mean(~correct[at, k])
            # With measured frequencies the implied error is the measured one.
            assert report.implied_error[k] == pytest.approx(report.measured_error[k], rel=1e-12)
        if k >= 1:
            assert report.b[k] ** k == pytest.approx(report.B[k], rel=1e-12)
    assert np.isnan(report.b[0])
    assert report.policy_error == pytest.approx(1 - policy.evaluate(data).accuracy)


def test_condition_is_the_per_exit_error_condition_from_exit_2(fitted):
    policy, data = fitted
    report = theorem_3_1(policy, data)
    for k in range(1, 4):
        margin = abs(report.measured_error[k] - report.p)
        if report.n_exit[k] and margin > 1e-12:
            assert report.condition[k] == (report.measured_error[k] < report.p)
    # At exit 1 the factor is 1 >= B_1: the condition is sufficient there.
    if report.condition[0]:
        assert report.measured_error[0] < report.p


def test_report_summaries(fitted):
    policy, data = fitted
    report = theorem_3_1(policy, data)
    exits = policy.exit_index(data)
    early = exits < 4
    wrong = ~data.correct[np.arange(data.n_samples), exits]
    assert report.early_error == pytest.approx(wrong[early].mean())
    assert report.final_error_on_reached == pytest.approx(wrong[~early].mean())
    assert report.final_within_p == (report.final_error_on_reached <= report.p)
    assert report.error_within_p == (report.policy_error <= report.p)
    assert report.all_conditions == bool(report.condition.all())
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["exit_number"] == [1, 2, 3, 4] and d["b"][0] is None
    text = str(report)
    assert "Theorem 3.1" in text and "q<bound" in text
    assert len(text.splitlines()) == 2 + 4 + 3


def test_unused_exit_fails_the_strict_condition_but_adds_no_error():
    logits, labels = make_multi_exit(n=500, n_exits=4, n_classes=5, seed=3)
    policy = eeopt.fit(logits, labels, method="beem-c", alpha=[0.2, np.inf, 0.9])
    report = theorem_3_1(policy, logits, labels)
    assert report.n_exit[1] == 0 and report.n_exit[0] > 0 and report.n_exit[2] > 0
    assert report.a[1] == 0 and report.B[1] == 0 and report.bound[1] == 0
    assert not report.condition[1] and not report.all_conditions
    assert np.isnan(report.measured_error[1]) and np.isnan(report.implied_error[1])
    expected = bool(report.condition[0] and report.condition[2])
    assert report.conditions_where_used == expected


def test_an_always_right_exit_has_b_zero():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=200)
    logits = rng.normal(size=(200, 3, 3))
    logits[np.arange(200), 1, labels] += 20  # exit 2 is always right
    policy = eeopt.fit(logits, labels, method="beem-c", alpha=[np.inf, 0.0])
    report = theorem_3_1(policy, logits, labels)
    assert report.q[1] == 0 and report.B[1] == 0 and report.b[1] == 0
    assert report.a[1] == 1 and report.n_exit[1] == 200
    assert report.measured_error[1] == 0
    assert report.condition[1] == (report.p > 0)


def test_report_bad_input():
    logits, labels = make_multi_exit(n=50, n_exits=3)
    policy = eeopt.fit(logits, labels, method="beem-a")
    with pytest.raises(ValueError, match="labels"):
        theorem_3_1(policy, logits)
    with pytest.raises(TypeError, match="policy"):
        theorem_3_1("beem-a", logits, labels)
    other, _ = make_multi_exit(n=50, n_exits=4)
    with pytest.raises(ValueError, match="exits"):
        theorem_3_1(policy, other, labels)


# -- the theorem on a generative model --------------------------------------------------------
def _independent_exits(error_rates, n, n_classes, rng):
    """Exits that err independently with the given rates, wrong answers uniform over the other
    classes; confidence higher on average when right (so BEEM has something to use)."""
    n_exits = len(error_rates)
    labels = rng.integers(0, n_classes, size=n)
    probs = np.empty((n, n_exits, n_classes))
    for k, q in enumerate(error_rates):
        wrong = rng.random(n) < q
        pred = np.where(wrong, (labels + rng.integers(1, n_classes, size=n)) % n_classes, labels)
        top = np.where(wrong, rng.uniform(0.3, 0.8, n), rng.uniform(0.4, 1.0, n))
        probs[:, k] = ((1 - top) / (n_classes - 1))[:, None]
        probs[np.arange(n), k, pred] = top
    return eeopt.ExitData(probs, labels, input="probs")


def _fit_at_half_p(fit, p):
    """BEEM-A thresholds at error level p / 2, the first exit disabled: with factor b^0 = 1 the
    condition at exit 1 reads q_1 < p a_1 / (p a_1 + 1 - p) <= p, which a first exit worse than
    the final one can never meet."""
    scores = beem_scores(fit.predictions, fit.maxprob, fit.exit_accuracy)
    thresholds = exit_error_thresholds(scores, fit.correct, p / 2)
    thresholds[0] = np.inf
    return eeopt.methods.beem.BeemPolicy(
        "beem-a", thresholds, fit.costs, fit.n_classes, weights=fit.exit_accuracy
    )


def _condition_and_test_error(error_rates, p, seed):
    rng = np.random.default_rng(seed)
    fit = _independent_exits(error_rates, 20_000, 5, rng)
    test = _independent_exits(error_rates, 20_000, 5, rng)
    policy = _fit_at_half_p(fit, p)
    on_fit = theorem_3_1(policy, fit)
    i = on_fit.exit_number
    bound = max_exit_error(p, on_fit.a, np.where(i >= 2, on_fit.b, 1.0), i)
    holds = (np.asarray(error_rates[:-1]) < bound) | (on_fit.n_exit == 0)
    on_test = theorem_3_1(policy, test)
    return holds, on_fit.n_exit.sum(), on_test


def _sampling_tolerance(p, n_fit, n_test):
    # 4 binomial standard errors of the early-exit error rate on each sample (the fitting
    # sample estimates a_i and b_i, the test sample measures the error).
    return 4 * math.sqrt(p * (1 - p)) * (1 / math.sqrt(n_test) + 1 / math.sqrt(n_fit))


@settings(max_examples=8)
@given(st.integers(0, 10_000), st.integers(3, 5))
def test_condition_implies_the_error_bound_on_independent_exits(seed, n_exits):
    """If q_i < bound(p, a_i, b_i, i) at every early exit that is used (known q_i and p; a_i, b_i
    estimated on a fitting sample), the early-exit error on a fresh sample is at most p, up to
    the sampling tolerance above."""
    rng = np.random.default_rng(seed)
    p = float(rng.uniform(0.05, 0.2))
    error_rates = np.r_[np.sort(rng.uniform(p, 0.6, n_exits - 1))[::-1], p]
    holds, n_fit, on_test = _condition_and_test_error(error_rates, p, seed)
    n_test = on_test.n_exit.sum()
    if holds.all() and n_test > 0:
        assert on_test.early_error <= p + _sampling_tolerance(p, n_fit, n_test)


def test_generative_model_satisfies_the_condition_and_the_bound():
    """The property above on one draw where the condition is known to hold (not vacuous)."""
    p = 0.1
    holds, n_fit, on_test = _condition_and_test_error([0.5, 0.35, 0.2, p], p, seed=1)
    n_test = on_test.n_exit.sum()
    assert holds.all() and n_fit > 1000 and n_test > 1000
    assert on_test.early_error <= p + _sampling_tolerance(p, n_fit, n_test)
    assert isinstance(on_test, TheoremReport)


def test_first_exit_condition_needs_a_first_exit_better_than_the_final():
    # bound at i = 1 is p a / (p a + 1 - p) <= p for every a.
    a = np.linspace(0, 1, 101)
    assert np.all(max_exit_error(0.2, a, 0.7, 1) <= 0.2 + 1e-15)
