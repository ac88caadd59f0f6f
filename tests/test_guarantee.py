"""Certified targets in eeopt.fit: the wiring (path, order, split, choice, record), bad input,
and validity on the shipped data (violation frequency over many calibration/test splits)."""

import dataclasses
import json
import warnings

import numpy as np
import pytest
from conftest import make_multi_exit
from reference import ref_evaluate, ref_exit
from scipy import stats

import eeopt
from eeopt import guarantee, risk
from eeopt.methods import registry


def _data(n=600, seed=0, n_exits=4):
    logits, labels = make_multi_exit(n=n, n_exits=n_exits, seed=seed)
    return eeopt.ExitData.from_logits(logits, labels, costs=np.arange(1.0, n_exits + 1))


def _fit(data, method="maxprob", random_state=0, **options):
    return eeopt.fit(data, method=method, verbose=False, random_state=random_state, **options)


# -- the wiring ---------------------------------------------------------------------------------
@pytest.mark.parametrize("first_means, kernels", [(1 << 16, False), (3, False), (3, True)])
def test_fixed_path_certificate_matches_certify_on_a_reference_loss_matrix(
    monkeypatch, first_means, kernels
):
    """The same certificate as risk.certify of a loss matrix built sample by sample, whether
    the exact means are counted at once or in growing prefixes (three settings first), with
    the numpy passes or the sweep's kernels."""
    import eeopt.guarantee
    import eeopt.targets

    monkeypatch.setattr(eeopt.guarantee, "_FIRST_MEANS", first_means)
    monkeypatch.setattr(eeopt.targets, "_KERNELS", kernels)
    data = _data(n=400, seed=3)
    policy = _fit(data, tolerance=0.03, delta=0.1)
    path = eeopt.candidates(data, method="maxprob")
    final_right = data.correct[:, -1]
    losses = []
    for i in range(len(path)):  # the positive part of the gap, one sample at a time
        candidate = path.policy(i)
        scores = candidate.compute_scores(data)
        row = []
        for n in range(data.n_samples):
            ref = ref_evaluate(
                data.probs[n : n + 1],
                data.labels[n : n + 1],
                data.costs,
                scores[n : n + 1],
                candidate.thresholds_,
            )
            row.append(float(ref["accuracy"] == 0 and final_right[n]))
        losses.append(row)
    cert = risk.certify(np.array(losses), 0.03, 0.1, bound="hb")
    assert cert.index >= 1 and policy.guarantee_["n_certified"] == cert.index + 1
    certified_costs = path.sweep.exact_mean_costs(np.arange(cert.index + 1))
    assert policy.evaluate(data).mean_cost == certified_costs.min()
    np.testing.assert_allclose(
        policy.guarantee_["upper_bounds"], cert.upper_bounds[: cert.n_tested]
    )


@pytest.mark.parametrize(
    "options",
    [
        {"tolerance": 0.05, "risk": "consistency"},  # a fixed path: exact means, lazy bounds
        {"tolerance": 0.05, "bound": "wsr"},  # bounds from the losses
        {"tolerance": 0.02, "guarantee": "expectation"},  # conformal risk control
        {"tolerance": 0.05, "grid": 200},
    ],
)
def test_a_long_record_lists_evenly_spaced_tested_settings_with_the_decisive_ones(
    monkeypatch, options
):
    """With more tested settings than RECORD_ROWS, the record lists that many evenly spaced
    along the testing order, plus the last certified and the last tested, each row the full
    record's own (same parameter, mean cost and upper bound), and the full count."""
    data = _data(n=700, seed=4)
    extra = {} if "guarantee" in options else {"delta": 0.1}
    full = _fit(data, **extra, **options).guarantee_
    n_tested = full["n_tested"]
    assert n_tested == len(full["upper_bounds"]) > 12
    assert full["tested_positions"] == list(range(n_tested))
    monkeypatch.setattr(guarantee, "RECORD_ROWS", 5)
    short = _fit(data, **extra, **options).guarantee_
    positions = short["tested_positions"]
    n_certified = full["n_certified"]
    spaced = {round(j * (n_tested - 1) / 4) for j in range(5)}
    assert set(positions) == spaced | {n_tested - 1} | ({n_certified - 1} if n_certified else set())
    assert positions == sorted(positions) and short["n_tested"] == n_tested
    for key in ("tested_parameters", "tested_mean_costs", "upper_bounds"):
        assert short[key] == [full[key][p] for p in positions]
    for key in ("n_certified", "smallest_certifiable_epsilon", "statement"):
        assert short[key] == full[key]


@pytest.mark.parametrize(
    "risk_name, bound, grid",
    [
        ("consistency", "hb", 21),
        ("error", "binomial", 11),
        ("accuracy-gap", "wsr", [0.95, 0.8, 0.8, 0.6, 0.41, 0.2]),
        ("accuracy-gap", "hb", 101),
    ],
)
def test_grid_certificate_matches_certify_on_the_grid_thresholds(risk_name, bound, grid):
    """grid=: the certificate is that of risk.certify on the losses of the grid's thresholds,
    computed sample by sample; the policy is the cheapest certified grid threshold."""
    data = _data(n=400, seed=5)
    epsilon = {"consistency": 0.05, "error": 0.4, "accuracy-gap": 0.04}[risk_name]
    options = {"risk": risk_name, "bound": bound, "grid": grid}
    policy = _fit(data, tolerance=epsilon, delta=0.1, random_state=7, **options)
    values = np.unique(np.arange(grid, dtype=float) / (grid - 1) if np.ndim(grid) == 0 else grid)
    values = values[::-1]  # from the most conservative
    final = data.predictions[:, -1]
    losses, costs = [], []
    for g in values:
        thresholds = np.r_[np.full(data.n_exits - 1, g), -np.inf]
        exits = [ref_exit(list(data.maxprob[n]), list(thresholds)) for n in range(data.n_samples)]
        pred = data.predictions[np.arange(data.n_samples), exits]
        wrong = (pred != data.labels).astype(float)
        if risk_name == "consistency":
            losses.append((pred != final).astype(float))
        elif risk_name == "error":
            losses.append(wrong)
        elif bound == "hb":  # the positive part under a mean-only bound
            losses.append(wrong * (final == data.labels))
        else:
            losses.append(wrong - (final != data.labels))
        costs.append(np.mean(data.costs[exits]))
    loss_range = (-1.0, 1.0) if risk_name == "accuracy-gap" and bound == "wsr" else (0.0, 1.0)
    cert = risk.certify(
        np.array(losses), epsilon, 0.1, bound=bound, loss_range=loss_range, random_state=7
    )
    assert cert.index >= 1  # the case tests a choice
    certified = values[: cert.index + 1]
    chosen = float(policy.thresholds_[0])
    assert chosen in certified and np.all(policy.thresholds_[:-1] == chosen)
    cheapest = min(np.array(costs)[: cert.index + 1])
    assert policy.evaluate(data).mean_cost == pytest.approx(cheapest, rel=1e-12)
    # Every tested grid value's bound is the reference's (equal grid values: one test).
    record = policy.guarantee_
    bounds = dict(zip(values.tolist(), cert.upper_bounds.tolist(), strict=True))
    for g, ub in zip(record["tested_parameters"], record["upper_bounds"], strict=True):
        assert ub == pytest.approx(bounds[g], abs=1e-9)
    assert record["grid_size"] == values.shape[0]
    again = _fit(data, **policy.fit_params_)
    np.testing.assert_array_equal(again.thresholds_, policy.thresholds_)


def test_certified_budget_tests_the_cheapest_first_and_keeps_the_most_accurate():
    data = _data(n=800, seed=4)
    policy = _fit(data, budget=2.0, delta=0.1)
    record = policy.guarantee_
    assert record["risk"] == "cost" and record["certified"]
    tested = np.array(record["tested_parameters"])
    assert np.all(np.diff(tested) >= 0)  # cheapest (lowest threshold) first
    path = eeopt.candidates(data, method="maxprob")
    within = path.sweep.exact_mean_costs(np.arange(len(path)))
    assert policy.evaluate(data).mean_cost <= 2.0
    assert max(record["upper_bounds"][: record["n_certified"]]) <= 2.0
    # Nothing certified is more accurate than what was chosen.
    certified = np.isin(path.parameters, tested[: record["n_certified"]])
    assert policy.evaluate(data).accuracy == path.accuracies[certified].max()
    assert within[certified].max() <= 2.0 + 1e-9


def test_pareto_testing_builds_the_path_on_one_part_and_tests_on_the_other():
    data = _data(n=600, seed=5)
    policy = _fit(data, method="beem-a", tolerance=0.05, delta=0.1)
    record = policy.guarantee_
    assert record["calibration_split"] == 0.5
    assert record["n_path"] == 300 and record["n_calibration"] == 300
    again = _fit(data, method="beem-a", tolerance=0.05, delta=0.1)
    np.testing.assert_array_equal(again.thresholds_, policy.thresholds_)
    other = eeopt.fit(
        data, method="beem-a", tolerance=0.05, delta=0.1, random_state=1, verbose=False
    )
    assert other.guarantee_["tested_parameters"] != record["tested_parameters"]
    forced = _fit(data, method="maxprob", tolerance=0.05, delta=0.1, calibration_split=0.25)
    assert forced.guarantee_["n_calibration"] == 450


def test_consistency_needs_no_labels():
    data = _data(n=500, seed=6)
    unlabeled = eeopt.ExitData(data.probs, costs=data.costs)
    policy = _fit(unlabeled, tolerance=0.05, delta=0.1)
    assert policy.guarantee_["risk"] == "consistency" and policy.guarantee_["certified"]
    disagree = policy.predict(data) != data.predictions[:, -1]
    assert disagree.mean() <= 0.05 + 0.05  # certified on these very samples, with slack


def test_nothing_certified_returns_no_early_exit_and_says_what_could_be():
    data = _data(n=40, seed=7)
    with pytest.warns(UserWarning, match=r"no early exit.*from tolerance=") as caught:
        policy = _fit(data, tolerance=0.001, delta=0.05)
    assert "these data certify" in str(caught[0].message).lower() or "certify the first" in str(
        caught[0].message
    )
    np.testing.assert_array_equal(policy.exit_index(data), data.n_exits - 1)
    assert not policy.guarantee_["certified"]
    with pytest.warns(UserWarning, match="every sample at the first exit"):
        cheap = _fit(data, budget=1.0, delta=0.05)
    np.testing.assert_array_equal(cheap.exit_index(data), 0)


def test_guarantee_is_saved_and_the_fit_repeats(tmp_path):
    data = _data(n=500, seed=8)
    policy = _fit(data, method="beem-c", tolerance=0.05, delta=0.2, bound="wsr")
    record = policy.guarantee_
    assert "probability at least 0.8" in record["statement"] and "0.05" in record["statement"]
    for key in ("epsilon", "delta", "risk", "bound", "n_calibration", "upper_bounds"):
        assert key in record
    policy.save(tmp_path / "p.json")
    back = eeopt.load_policy(tmp_path / "p.json")
    assert back.guarantee_ == json.loads(json.dumps(record))
    params = policy.fit_params_
    assert params["delta"] == 0.2 and params["bound"] == "wsr" and params["tolerance"] == 0.05
    again = eeopt.fit(data, verbose=False, **params)
    np.testing.assert_array_equal(again.thresholds_, policy.thresholds_)


def test_wsr_stops_and_certifies_under_one_sample_order_with_a_generator():
    """With a Generator as random_state the lazy test and the certificate take the same
    sample order: the tested prefix ends with the one setting that was not certified."""
    data = _data(n=300, seed=11)
    for seed in range(4):
        policy = _fit(
            data, tolerance=0.04, delta=0.1, bound="wsr", random_state=np.random.default_rng(seed)
        )
        record = policy.guarantee_
        tested = len(record["upper_bounds"])
        assert record["n_certified"] == tested - 1
        assert record["upper_bounds"][-1] > 0.04 >= max(record["upper_bounds"][:-1], default=0)


def test_conformal_risk_control_bounds_the_mean():
    """CRC's choice from its definition: the running maximum of each sample's gap along the
    path, the bound (n R~_j + 1) / (n + 1), the last setting of the prefix within epsilon,
    and the cheapest of that prefix."""
    data = _data(n=500, seed=9)
    policy = _fit(data, tolerance=0.05, guarantee="expectation")
    assert policy.guarantee_["bound"] == "crc" and policy.guarantee_["delta"] is None
    assert "Averaged over calibration sets" in policy.guarantee_["statement"]
    path = eeopt.candidates(data, method="maxprob")
    final_wrong = ~data.correct[:, -1]
    gaps = np.array(
        [
            (path.policy(i).predict(data) != data.labels) * 1.0 - final_wrong
            for i in range(len(path))
        ]
    )
    bounds = (np.maximum.accumulate(gaps, axis=0).sum(axis=1) + 1.0) / (data.n_samples + 1)
    last = int(np.argmax(bounds > 0.05)) - 1  # bounds never fall; some setting fails here
    assert last >= 1
    tested = len(policy.guarantee_["upper_bounds"])
    np.testing.assert_allclose(policy.guarantee_["upper_bounds"], bounds[:tested], rtol=1e-12)
    assert policy.guarantee_["n_certified"] == last + 1
    cheapest = path.sweep.exact_mean_costs(np.arange(last + 1)).min()
    assert policy.evaluate(data).mean_cost == cheapest


@pytest.mark.parametrize(
    "method, options, error, match",
    [
        ("maxprob", {"tolerance": 0.01, "delta": 0.0}, ValueError, "delta"),
        ("maxprob", {"tolerance": 0.01, "delta": 1.0}, ValueError, "delta"),
        ("maxprob", {"tolerance": 0.01, "delta": "0.1"}, TypeError, "delta"),
        ("maxprob", {"delta": 0.1}, ValueError, "tolerance="),
        ("maxprob", {"tolerance": 1.5, "delta": 0.1}, ValueError, "tolerance"),
        ("maxprob", {"tolerance": 0.01, "delta": 0.1, "risk": "loss"}, ValueError, "risk"),
        ("maxprob", {"threshold": 0.5, "delta": 0.1}, ValueError, "threshold= is a direct"),
        ("maxprob", {"tolerance": 0.01, "risk": "error"}, ValueError, "risk= applies"),
        ("maxprob", {"budget": 2.0, "delta": 0.1, "bound": "binomial"}, ValueError, "binomial"),
        ("maxprob", {"budget": 2.0, "delta": 0.1, "risk": "error"}, ValueError, "risk="),
        (
            "maxprob",
            {"tolerance": 0.1, "delta": 0.1, "guarantee": "expectation"},
            ValueError,
            "no delta",
        ),
        (
            "maxprob",
            {"tolerance": 0.1, "delta": 0.1, "calibration_split": 1.0},
            ValueError,
            "calibration_split",
        ),
        ("maxprob", {"tolerance": 0.1, "delta": 0.1, "bound": "chernoff"}, ValueError, "bound"),
        ("beem-a", {"target": "exit-error", "delta": 0.1}, ValueError, "exit-error"),
        ("msdnet", {"tolerance": 0.1, "delta": 0.1}, ValueError, "budget only"),
        ("patience", {"tolerance": 0.1, "delta": 0.1, "grid": 11}, ValueError, "grid="),
        ("maxprob", {"tolerance": 0.1, "delta": 0.1, "grid": 1}, ValueError, "grid"),
        ("maxprob", {"tolerance": 0.1, "delta": 0.1, "grid": [0.5, np.nan]}, ValueError, "grid"),
        ("maxprob", {"tolerance": 0.1, "grid": 11}, ValueError, "grid= applies"),
        (
            "maxprob",
            {"tolerance": 0.1, "delta": 0.1, "grid": [0.5, 5.0]},
            ValueError,
            "must lie in",
        ),
        ("maxprob", {"tolerance": 0.1, "bound": "wsr"}, ValueError, "bound= applies"),
        (
            "maxprob",
            {"tolerance": 0.1, "guarantee": "expectation", "bound": "wsr"},
            ValueError,
            "no concentration bound",
        ),
        (
            "maxprob",
            {"tolerance": 0.1, "delta": 0.1, "grid": 11, "per_exit": True},
            ValueError,
            "grid= tests a fixed grid",
        ),
    ],
)
def test_bad_certified_targets_name_the_argument(method, options, error, match):
    with pytest.raises(error, match=match):
        _fit(_data(n=100), method=method, **options)


def test_label_risks_need_labels():
    data = _data(n=100)
    unlabeled = eeopt.ExitData(data.probs, costs=data.costs)
    for name in ("accuracy-gap", "error"):
        with pytest.raises(ValueError, match=f"risk='{name}'"):
            _fit(unlabeled, tolerance=0.05, delta=0.1, risk=name)


# -- validity on the shipped data ---------------------------------------------------------------
#: Calibration/test splits per dataset and calibration size.
N_SPLITS = 200
DELTA = 0.1
#: Slack on the violation frequency: the one-sided 99.9% binomial limit of N_SPLITS draws.
SLACK = stats.binom.ppf(0.999, N_SPLITS, DELTA) / N_SPLITS - DELTA


def _pool(name):
    val, test = eeopt.datasets.load_both(name)
    return eeopt.ExitData(
        np.concatenate([val.probs, test.probs]),
        np.concatenate([val.labels, test.labels]),
        val.costs,
        input="probs",
    )


def _targets(pool):
    final_error = float(1 - pool.exit_accuracy[-1])
    budget = float(pool.costs[0] + 0.4 * (pool.costs[-1] - pool.costs[0]))
    return {
        "accuracy-gap": {"tolerance": 0.02},
        "consistency": {"tolerance": 0.05, "risk": "consistency"},
        "error": {"tolerance": min(final_error + 0.02, 1.0), "risk": "error"},
        "cost": {"budget": budget},
    }


def _test_risk(policy, test, name):
    result = policy.evaluate(test)
    if name == "cost":
        return result.mean_cost
    exit_pred = result.predictions
    if name == "consistency":
        return np.mean(exit_pred != test.predictions[:, -1])
    wrong = exit_pred != test.labels
    if name == "error":
        return wrong.mean()
    return wrong.mean() - np.mean(test.predictions[:, -1] != test.labels)


CASES = [
    (dataset, n_cal)
    for dataset in ("digits", "mnist1d", "minilm-reviews")
    for n_cal in (100, 1000)
    if not (dataset == "digits" and n_cal == 1000)  # 900 samples in all
]


@pytest.mark.parametrize("dataset, n_cal", CASES)
def test_violations_on_held_out_data_stay_below_delta(dataset, n_cal):
    pool = _pool(dataset)
    targets = _targets(pool)
    rng = np.random.default_rng(0)
    violations, trials = {}, {}
    for split in range(N_SPLITS):
        order = rng.permutation(pool.n_samples)
        cal, test = pool.subset(np.sort(order[:n_cal])), pool.subset(np.sort(order[n_cal:]))
        for method in eeopt.method_names():
            if method == "eenet":
                continue  # test_eenet_budget_certificates_hold_on_held_out_data
            spec = eeopt.methods.method_spec(method)
            names = ["cost"] if spec.budget_only else list(targets)
            # Every risk over the splits, one per method and split (all pairs 50 times each).
            name = names[(split + len(method)) % len(names)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # nothing certified: fallback
                policy = _fit(cal, method, delta=DELTA, random_state=split, **targets[name])
            level = targets[name].get("budget", targets[name].get("tolerance"))
            key = (method, name)
            trials[key] = trials.get(key, 0) + 1
            violations[key] = violations.get(key, 0) + (_test_risk(policy, test, name) > level)
    for key, count in violations.items():
        frequency = count / trials[key]
        limit = stats.binom.ppf(0.999, trials[key], DELTA) / trials[key]
        assert frequency <= limit, (key, frequency, limit)
    total = sum(violations.values()) / sum(trials.values())
    assert total <= DELTA + SLACK / 4, total


#: EENet trained quickly: the certificate's validity does not depend on how good the path is.
QUICK_EENET = {"max_iter": 8, "hidden": 4, "alpha_cost": 1e-2, "n_rounds": 1, "max_samples": 300}


@pytest.mark.parametrize("n_cal", [100, 1000])
def test_eenet_budget_certificates_hold_on_held_out_data(n_cal):
    pool = _pool("mnist1d")
    budget = _targets(pool)["cost"]["budget"]
    rng = np.random.default_rng(1)
    violations = 0
    for split in range(N_SPLITS):
        order = rng.permutation(pool.n_samples)
        cal, test = pool.subset(np.sort(order[:n_cal])), pool.subset(np.sort(order[n_cal:]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            policy = _fit(
                cal, "eenet", budget=budget, delta=DELTA, random_state=split, **QUICK_EENET
            )
        violations += policy.evaluate(test).mean_cost > budget
    assert violations / N_SPLITS <= DELTA + SLACK, violations


@pytest.mark.parametrize(
    "options",
    [
        {"tolerance": 0.03},
        {"tolerance": 0.3, "risk": "error"},
        {"tolerance": 0.05, "risk": "consistency"},
        {"tolerance": 0.03, "grid": 11},
        {"tolerance": 0.03, "bound": "binomial", "per_exit": True},
        {"budget": 2.5},
        {"tolerance": 0.03, "calibration_split": 0.5},
        {"tolerance": 0.05, "risk": "consistency", "calibration_split": 0.5},
        {"budget": 2.5, "calibration_split": 0.4},
        {"tolerance": 0.03, "bound": "wsr", "calibration_split": 0.5},
        {"tolerance": 0.03, "method": "beem-a"},
        {"tolerance": 0.05, "method": "beem-c", "risk": "consistency"},
    ],
)
def test_certified_fit_info_is_the_policys_outcome_bit_for_bit(options):
    """fit_info_ of a certified fit (taken from the path's exact counts, plus the test part's
    after a split, where they count the labels) equals what evaluate finds, bit for bit."""
    data = _data(n=500, seed=5)
    policy = _fit(data, delta=0.1, **options)
    result = policy.evaluate(data)
    exits = policy.exit_index(data)
    correct = sum(
        int(np.argmax(data.probs[n, exits[n]])) == int(data.labels[n])
        for n in range(data.n_samples)
    )
    assert policy.fit_info_["fit_accuracy"] == correct / data.n_samples == result.accuracy
    assert policy.fit_info_["fit_mean_cost"] == result.mean_cost
    assert policy.fit_info_["fit_exit_fractions"] == result.exit_fractions.tolist()


@pytest.mark.parametrize(
    "options",
    [
        {"tolerance": 0.03, "bound": "hb"},  # accuracy gap, through its positive part
        {"tolerance": 0.03, "bound": "binomial"},
        {"tolerance": 0.08, "risk": "consistency"},
        {"tolerance": 0.2, "risk": "error"},
        {"budget": 2.5},
    ],
)
@pytest.mark.parametrize("levels", [None, 7])
def test_a_split_threshold_path_is_tested_through_the_test_samples_own_sweep(
    monkeypatch, options, levels
):
    """With calibration_split=, a global threshold's means on the test samples (and the
    choice among the certified on all of them) come from those samples' threshold sweep, and
    both parts are swept where they lie (``rows=``): the same certificate as a path swept on
    a copy of its part and every tested setting evaluated on a copy of the other, the same
    policy. Scores with few distinct values put path thresholds between the test samples'
    values."""
    data = _data(n=900, seed=11)
    if levels is not None:
        probs = np.round(data.probs * levels) / levels + 1e-3
        data = eeopt.ExitData(probs / probs.sum(-1, keepdims=True), data.labels, costs=data.costs)
    used = []
    real = guarantee._same_rule
    monkeypatch.setattr(guarantee, "_same_rule", lambda *args: used.append(real(*args)) or used[-1])
    fast = _fit(data, method="margin", delta=0.1, calibration_split=0.5, **options)
    assert used and None not in used  # the test samples' own sweep
    monkeypatch.setattr(guarantee, "_same_rule", lambda *args: None)
    copies = dataclasses.replace(registry.METHODS["margin"], candidates_take_rows=False)
    monkeypatch.setitem(registry.METHODS, "margin", copies)
    slow = _fit(data, method="margin", delta=0.1, calibration_split=0.5, **options)
    a, b = fast.guarantee_, slow.guarantee_
    assert a["n_certified"] == b["n_certified"] > 0
    assert a["tested_parameters"] == b["tested_parameters"]
    if "budget" in options:  # exact means against numpy's pairwise sums: equal to rounding
        np.testing.assert_allclose(a["upper_bounds"], b["upper_bounds"], rtol=1e-12)
    else:
        assert a["upper_bounds"] == b["upper_bounds"]
    np.testing.assert_array_equal(fast.thresholds_, slow.thresholds_)
    assert fast.fit_info_ == slow.fit_info_


@pytest.mark.parametrize("risk_name", ["accuracy-gap", "cost"])
@pytest.mark.parametrize("same_rule", [True, False])
@pytest.mark.parametrize("per_exit", [False, True])
def test_a_split_keeps_the_best_certified_setting_on_all_the_samples(
    risk_name, same_rule, per_exit
):
    """After a split the choice among the certified settings is on all the samples: for a
    risk the cheapest, then the most accurate; for a budget the most accurate, then the
    cheapest; then the first certified. Running sums narrow the field to exact counts. Here
    against each setting's own evaluation on all the samples, on certified sets made to tie
    at the best (two exits of equal cost give settings of equal cost and accuracy apart)."""
    data = _data(n=700, seed=13).replace(costs=np.array([1.0, 2.0, 2.0, 4.0]))
    path_part, test_part = guarantee._split(data, 0.5, 0)
    spec = registry.METHODS["margin"]
    path = path_part.candidates(spec, {"per_exit": per_exit})  # a level path: not monotone
    target = guarantee.Certified(risk_name, 0.1, 0.1, "hb", "probability", 0.5)
    results = [path.policy(i).evaluate(data) for i in range(len(path))]
    outcomes = np.array([(r.mean_cost, r.accuracy) for r in results])
    rule = guarantee._same_rule(spec, {"per_exit": per_exit}, path, test_part, target)
    tally = {}
    if not same_rule:  # the test part's outcomes from evaluations, as the tests leave them
        test = test_part.data
        for i in range(len(path)):
            exits = path.policy(i).exit_index(test)
            predicted = test.predictions[np.arange(test.n_samples), exits]
            tally[i] = (np.bincount(exits, minlength=4), np.count_nonzero(predicted == test.labels))
        rule = None
    # The tied values: a cost (risk) or an accuracy (budget) shared by settings that differ
    # in the other; every setting on the worse side of it is certified too.
    column = 0 if risk_name != "cost" else 1
    values, n_with = np.unique(outcomes[:, column], return_counts=True)
    tied = [
        x
        for x in values[n_with > 1]
        if np.unique(outcomes[outcomes[:, column] == x, 1 - column]).size > 1
    ]
    assert len(tied) >= 3
    rng = np.random.default_rng(0)
    sets = []  # tied at the best, and random ones (the cheapest on one part is not on all)
    for value in tied[:: max(1, len(tied) // 5)]:
        worse = outcomes[:, 0] >= value if column == 0 else outcomes[:, 1] <= value
        sets.append(rng.permutation(np.flatnonzero(worse)))
    sets += [rng.choice(len(path), 12, replace=False) for _ in range(10)]
    for certified in sets:
        on_test = guarantee._outcomes_on_test(certified, rule, tally, data.costs)
        index, outcome = guarantee._choose(path, certified, data, target, on_test)
        if risk_name != "cost":
            keys = [(outcomes[i, 0], -outcomes[i, 1], k) for k, i in enumerate(certified)]
        else:
            keys = [(-outcomes[i, 1], outcomes[i, 0], k) for k, i in enumerate(certified)]
        assert index == certified[min(keys)[2]]
        counts, correct = outcome
        np.testing.assert_array_equal(counts, np.bincount(results[index].exit_index, minlength=4))
        assert correct == round(results[index].accuracy * data.n_samples)


@pytest.mark.parametrize(
    "method, options",
    [
        ("beem-a", {"tolerance": 0.03}),  # the gap's positive part, hb
        ("beem-c", {"tolerance": 0.05, "risk": "consistency", "bound": "binomial"}),
        ("beem-a", {"budget": 2.6}),  # the mean cost, tested cheapest first
        ("maxprob", {"tolerance": 0.03, "per_exit": True}),
        ("beem-a", {"tolerance": 0.001}),  # nothing certified
    ],
)
def test_a_level_path_is_tested_through_its_policies_replayed_on_the_test_samples(
    monkeypatch, method, options
):
    """BEEM's and the per-exit rule's paths, built on one part, are tested on the other with
    every policy's exact counts there (LevelSweep.on) instead of an evaluation per tested
    setting: the same certificate, record and policy."""
    data = _data(n=900, seed=21)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # nothing certified: the fallback's
        fast = _fit(data, method=method, delta=0.1, **options)
        monkeypatch.setattr(guarantee, "_same_rule", lambda *args: None)  # one by one
        slow = _fit(data, method=method, delta=0.1, **options)
    a, b = fast.guarantee_, slow.guarantee_
    for key in ("n_tested", "n_certified", "tested_parameters", "tested_mean_costs"):
        assert a[key] == b[key]
    np.testing.assert_allclose(a["upper_bounds"], b["upper_bounds"], rtol=1e-12)
    np.testing.assert_array_equal(fast.thresholds_, slow.thresholds_)
    assert fast.fit_info_ == slow.fit_info_


@pytest.mark.parametrize("method", ["maxprob", "beem-a", "beem-c"])
def test_pareto_testing_orders_a_positive_part_by_its_own_estimate(method):
    """The accuracy gap under "hb" is tested through 1[exit wrong and final right]: Pareto
    testing orders the settings by that loss on the path samples (ordering by the gap put
    first settings whose gap is negative but whose positive part is not small, and on the
    token data nothing was certified); BEEM's level sweeps count it as they go."""
    data = _data(n=900, seed=11)
    policy = _fit(data, method=method, tolerance=0.03, delta=0.1, calibration_split=0.5)
    path_data = guarantee._split(data, 0.5, 0)[0].data
    path = eeopt.candidates(path_data, method)
    lost = []  # each setting's positive part on the path samples, from its own evaluation
    for i in range(len(path)):
        result = path.policy(i).evaluate(path_data)
        lost.append(
            np.count_nonzero((result.predictions != path_data.labels) & path_data.correct[:, -1])
        )
    lost = np.array(lost)
    tested = policy.guarantee_["tested_parameters"]
    first = np.flatnonzero(path.parameters == tested[0])
    assert lost[first].min() == lost.min()
    # The order is by that estimate, least first, and the test went past the first setting.
    ranks = [lost[path.parameters == t].min() for t in tested]
    assert len(tested) > 1 and ranks == sorted(ranks)


@pytest.mark.parametrize(
    "method, options",
    [
        ("beem-a", {"tolerance": 0.05}),  # a path built on the data: split, evaluated one by one
        ("maxprob", {"tolerance": 0.05, "per_exit": True}),
        ("maxprob", {"tolerance": 0.05, "bound": "wsr", "calibration_split": 0.5}),
        ("msdnet", {"budget": 2.5}),  # a path of budgets
        ("margin", {"tolerance": 0.05, "risk": "consistency", "calibration_split": 0.5}),
    ],
)
def test_the_choice_among_the_certified_adds_the_outcomes_of_both_parts(
    monkeypatch, method, options
):
    """The cheapest certified setting on all the samples, from the path's exact outcomes on
    its part and the test part's (from the test itself, or the test samples' sweep): the
    choice an evaluation of every certified setting on all the samples makes."""
    data = _data(n=800, seed=13)
    seen = []
    real = guarantee._choose
    monkeypatch.setattr(guarantee, "_choose", lambda *args: seen.append(args) or real(*args))
    fast = _fit(data, method=method, delta=0.1, **options)
    path, certified, all_samples, _, on_test = seen[-1]
    assert on_test is not None and certified.size > 1
    # The two parts' outcomes add up to each certified setting's evaluation on all samples,
    # and the choice is the cheapest of those evaluations (the most accurate for a budget).
    counts = path.sweep.exit_counts(certified) + on_test.exit_counts(np.arange(certified.size))
    correct = path.sweep.n_correct[certified] + on_test.n_correct
    results = [path.policy(int(i)).evaluate(all_samples) for i in certified]
    for row, result in enumerate(results):
        np.testing.assert_array_equal(counts[row], np.bincount(result.exit_index, minlength=4))
        assert correct[row] == np.count_nonzero(result.predictions == all_samples.labels)
    costs = np.array([r.mean_cost for r in results])
    accuracy = np.array([r.accuracy for r in results])
    if "budget" in options:
        best = np.lexsort((costs, -accuracy))[0]
    else:
        best = np.lexsort((-accuracy, costs))[0]
    chosen = fast.evaluate(all_samples)  # consistency: agreement with the last exit
    assert (chosen.mean_cost, chosen.accuracy) == (costs[best], accuracy[best])


@pytest.mark.parametrize(
    "options",
    [
        {"tolerance": 0.05},  # the accuracy gap (its running maximum: the positive part's)
        {"tolerance": 0.0005},  # nothing certified: the first setting already fails
        {"tolerance": 0.9},  # every setting passes
        {"tolerance": 0.1, "risk": "consistency"},
        {"tolerance": 0.3, "risk": "error"},
        {"budget": 2.6},
        {"tolerance": 0.05, "grid": np.linspace(0.05, 0.95, 15)},  # a grid: some of the path
        {"budget": 2.6, "grid": np.linspace(0.05, 0.95, 15)},
        # Pareto testing: the path's non-dominated thresholds, tested on the other samples
        {"tolerance": 0.05, "calibration_split": 0.5},
        {"tolerance": 0.1, "risk": "consistency", "calibration_split": 0.4},
        {"tolerance": 0.3, "risk": "error", "calibration_split": 0.5},
    ],
)
@pytest.mark.parametrize("levels", [None, 5])
def test_conformal_risk_control_of_a_threshold_path_from_its_records(monkeypatch, options, levels):
    """CRC of a shared threshold's path from each sample's first lost value, among the tested
    thresholds where not all are (or the exact costs): the sums, certificate and policy of the
    running maxima of per-sample losses, also on a split's other samples."""
    monkeypatch.setattr(guarantee, "RECORD_ROWS", 1 << 30)  # both tested prefixes in full
    data = _data(n=700, seed=17)
    if levels is not None:  # ties between samples and between exits
        probs = np.round(data.probs * levels) / levels + 1e-3
        data = eeopt.ExitData(probs / probs.sum(-1, keepdims=True), data.labels, costs=data.costs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # nothing certified: fallback
        fast = _fit(data, method="entropy", guarantee="expectation", **options)
        # Tested thresholds taken 2, then 16, 128, ... at a time until one fails: the same.
        monkeypatch.setattr(guarantee, "_FIRST_CRC_SETTINGS", 2)
        in_steps = _fit(data, method="entropy", guarantee="expectation", **options)
        assert in_steps.guarantee_ == fast.guarantee_
        monkeypatch.setattr(
            guarantee,
            "_crc_threshold",
            lambda path, order, data, target, bound, own=True, rows=None: guarantee._crc_lazily(
                path,
                guarantee._head(order, len(path)),
                data if rows is None else data.subset(rows),
                target,
                bound,
            ),
        )
        slow = _fit(data, method="entropy", guarantee="expectation", **options)
    a, b = fast.guarantee_, slow.guarantee_
    assert a["n_certified"] == b["n_certified"]
    tested = min(len(a["upper_bounds"]), len(b["upper_bounds"]))
    assert a["tested_parameters"][:tested] == b["tested_parameters"][:tested]
    assert tested >= min(a["n_certified"] + 1, len(b["upper_bounds"]))
    np.testing.assert_allclose(a["upper_bounds"][:tested], b["upper_bounds"][:tested], rtol=1e-12)
    np.testing.assert_array_equal(fast.thresholds_, slow.thresholds_)


@pytest.mark.parametrize(
    "method, options",
    [
        ("beem-a", {"tolerance": 0.05}),  # the gap: -1 until the exit is wrong too
        ("beem-c", {"tolerance": 0.1, "risk": "consistency"}),
        ("beem-a", {"tolerance": 0.3, "risk": "error", "calibration_split": 0.4}),
        ("maxprob", {"tolerance": 0.05, "per_exit": True}),
        ("beem-a", {"tolerance": 0.0005}),  # nothing certified
        ("beem-c", {"tolerance": 0.9}),  # every setting passes
        # a budget: each sample's first position at or past each exit
        ("beem-a", {"budget": 2.6}),
        ("beem-c", {"budget": 2.2, "calibration_split": 0.4}),
        ("maxprob", {"budget": 2.9, "per_exit": True}),
        ("beem-a", {"budget": 1.005}),  # nothing certified
        ("beem-a", {"budget": 4.0}),  # every setting passes
    ],
)
def test_conformal_risk_control_of_a_level_path_from_its_replay(monkeypatch, method, options):
    """CRC of a level path (BEEM's, the per-exit rule's) tested on the other part, from each
    sample's first position in the testing order at which its exit is wrong, or for a cost
    at or past each exit (the policies replayed there): the certificate, record and policy
    of the running maxima of per-sample losses."""
    monkeypatch.setattr(guarantee, "RECORD_ROWS", 1 << 30)  # both tested prefixes in full
    data = _data(n=800, seed=23)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # nothing certified: fallback
        fast = _fit(data, method=method, guarantee="expectation", **options)
        # Not replayed: every tested setting's per-sample losses on the test part (CRC's
        # own definition), and the choice from those evaluations.
        monkeypatch.setattr(guarantee, "_replays", lambda path: False)
        slow = _fit(data, method=method, guarantee="expectation", **options)
    a, b = fast.guarantee_, slow.guarantee_
    assert a["n_certified"] == b["n_certified"]
    tested = min(len(a["upper_bounds"]), len(b["upper_bounds"]))
    assert tested >= min(a["n_certified"] + 1, len(b["upper_bounds"]))
    assert a["tested_parameters"][:tested] == b["tested_parameters"][:tested]
    np.testing.assert_allclose(a["upper_bounds"][:tested], b["upper_bounds"][:tested], rtol=1e-12)
    np.testing.assert_array_equal(fast.thresholds_, slow.thresholds_)
    assert fast.fit_info_ == slow.fit_info_


@pytest.mark.parametrize(
    "method, options",
    [
        ("maxprob", {"tolerance": 0.05, "delta": 0.1, "bound": "wsr"}),
        # a path built on the data under wsr (under hb its policies are replayed instead)
        ("beem-a", {"tolerance": 0.05, "delta": 0.1, "bound": "wsr"}),
        # a path of budgets under CRC (a level path's first positions are counted instead)
        ("msdnet", {"budget": 2.5, "guarantee": "expectation"}),
    ],
)
def test_losses_are_computed_in_blocks_of_bounded_size(monkeypatch, method, options):
    """Per-sample losses come a bounded number at a time (at least one setting), whatever
    the number of samples; the certificate does not depend on the block size."""
    data = _data(n=700, seed=21)
    before = _fit(data, method=method, **options)
    sizes = []
    real = guarantee._losses
    monkeypatch.setattr(
        guarantee,
        "_losses",
        lambda path, idx, *args: sizes.append(len(idx)) or real(path, idx, *args),
    )
    monkeypatch.setattr(guarantee, "_LOSS_BLOCK", 2 * 350)  # two settings of 350 test samples
    after = _fit(data, method=method, **options)
    assert sizes and max(sizes) <= max(1, 700 // after.guarantee_["n_calibration"])
    a, b = after.guarantee_, before.guarantee_
    assert a["n_certified"] == b["n_certified"]
    # CRC computes a whole block past the first failure: a longer record in larger blocks.
    tested = min(len(a["upper_bounds"]), len(b["upper_bounds"]))
    assert tested > a["n_certified"]
    assert a["upper_bounds"][:tested] == b["upper_bounds"][:tested]
    np.testing.assert_array_equal(after.thresholds_, before.thresholds_)
