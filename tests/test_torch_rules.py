"""Exit rules on the device (eeopt.torch.rules) against the numpy policies.

What "agree" means (the module docstring of eeopt.torch.rules, docs/torch.md): given the same
logits, the torch rule and ``policy.exit_index``/``policy.predict`` give the same exit and
prediction for every sample, except where, at an exit the sample reaches, its numpy score is
within ``score_tolerance`` of the threshold or its two largest probabilities are within
``2 * PROB_TOLERANCE`` (the argmax may flip). The tests check that tolerance on every sample of
the shipped datasets and that no sample of them actually disagrees.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch import nn  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402

import eeopt  # noqa: E402
import eeopt.torch as et  # noqa: E402
from eeopt.policy import ScorePolicy  # noqa: E402
from eeopt.torch.rules import (  # noqa: E402
    PROB_TOLERANCE,
    count_cut,
    round_up,
    rule_for,
    rule_scores,
    score_tolerance,
    total_cut,
)

sys.path.insert(0, str(Path(__file__).parent))
from digits_model import build_digits_cnn, digits_splits  # noqa: E402

torch.set_num_threads(1)


class ExitOf(nn.Module):
    """Head k of a replay model: exit k's logits from inputs ``(batch, n_exits, n_classes)``."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[:, self.k]


def replay_model(n_exits: int) -> et.MultiExitModel:
    """A model whose exits give precomputed logits: the rule sees exactly the numpy logits."""
    return et.MultiExitModel(
        [nn.Identity() for _ in range(n_exits)], [ExitOf(k) for k in range(n_exits)]
    )


def logits_of(data: eeopt.ExitData) -> np.ndarray:
    """Logits whose softmax is the shipped probabilities (zeros clipped to 1e-30)."""
    return np.log(np.maximum(data.probs, np.float32(1e-30)))


@pytest.fixture(scope="module")
def shipped():
    """(name, val, test) as ExitData built from logits, and the test logits."""
    out = []
    for name in eeopt.datasets.names():
        val, test = eeopt.datasets.load_both(name)
        val_logits, test_logits = logits_of(val), logits_of(test)
        out.append(
            (
                name,
                eeopt.ExitData.from_logits(val_logits, val.labels, val.costs),
                eeopt.ExitData.from_logits(test_logits, test.labels, test.costs),
                test_logits,
            )
        )
    return out


_FITTED: dict[int, dict] = {}


def fitted_policies(val: eeopt.ExitData) -> dict[str, eeopt.Policy]:
    """:func:`fit_policies`, once per ExitData object of the module's fixtures."""
    if id(val) not in _FITTED:
        _FITTED[id(val)] = (val, fit_policies(val))  # val kept alive: its id stays unique
    return _FITTED[id(val)][1]


def fit_policies(val: eeopt.ExitData) -> dict[str, eeopt.Policy]:
    """Every method at a budget that spreads the samples, plus the scores only msdnet uses."""
    budget = float(val.costs[0] + 0.35 * (val.costs[-1] - val.costs[0]))
    policies = {}
    for method in eeopt.method_names():
        options = {"random_state": 0, "verbose": False} if method == "eenet" else {}
        try:
            policies[method] = eeopt.fit(val, method=method, budget=budget, **options)
        except eeopt.exceptions.BudgetUnreachableError:  # patience cannot go that low
            policies[method] = eeopt.fit(val, method=method, target="accuracy", tolerance=0.02)
    for score in ("vote", "entropy", "margin"):
        policies[f"msdnet-{score}"] = eeopt.fit(val, method="msdnet", budget=budget, score=score)
    policies["beem-zero"] = eeopt.fit(val, method="beem-c", reset="zero", budget=budget)
    return policies


def near_tie(policy, data: eeopt.ExitData, sample: int, up_to: int) -> bool:
    """Whether a sample has, at some exit ``<= up_to``, a score within the tolerance of the
    threshold or a top-2 probability gap within twice the probability tolerance."""
    scores = policy.compute_scores(data)[sample]
    tolerance = score_tolerance(policy, torch.float32)
    top2 = np.sort(data.probs[sample], axis=-1)[:, -2:]
    for k in range(up_to + 1):
        if abs(scores[k] - policy.thresholds_[k]) <= tolerance[k]:
            return True
        if top2[k, 1] - top2[k, 0] <= 2 * PROB_TOLERANCE[torch.float32]:
            return True
    return False


# -- exact comparisons: cuts --------------------------------------------------------------------
finite_floats = st.floats(-4.0, 4.0, allow_nan=False, width=64)


@settings(max_examples=300, deadline=None)
@given(threshold=finite_floats, key=st.floats(-4.0, 4.0, width=32))
def test_round_up_gives_the_float64_comparison_in_float32(threshold, key):
    cut = round_up(threshold, torch.float32)
    assert np.float32(cut) == cut  # representable
    assert (np.float32(key) >= np.float32(cut)) == (float(key) >= threshold)


@pytest.mark.parametrize("threshold", [np.inf, -np.inf, 1e39, -1e39, 0.1, 2.0**-149])
def test_round_up_edges(threshold):
    cut = round_up(threshold, torch.float32)
    for key in [np.float32(x) for x in (-3e38, -1.0, 0.0, 2.0**-149, 0.1, 1.0, 3e38)]:
        assert (key >= np.float32(cut)) == (float(key) >= threshold)


@settings(max_examples=300, deadline=None)
@given(
    threshold=st.floats(-0.5, 1.5, allow_nan=False, width=64),
    total=st.floats(1.0, 1e6, width=32),
)
def test_total_cut_gives_numpy_maxprob_comparison(threshold, total):
    """maxprob = 1 / total, numpy's float32 division; the rule compares the total instead."""
    total = np.float32(total)
    maxprob = np.float32(1.0) / total
    assert (total <= total_cut(threshold, torch.float32)) == (float(maxprob) >= threshold)


def test_total_cut_at_exact_reciprocals_and_edges():
    for total in np.float32([1.0, 1.5, 2.0, 3.0, 7.0, 1.0000001, 12345.678]):
        maxprob = float(np.float32(1.0) / total)
        for threshold in [maxprob, np.nextafter(maxprob, 2.0), np.nextafter(maxprob, -1.0)]:
            cut = total_cut(threshold, torch.float32)
            assert (total <= cut) == (maxprob >= threshold)
    assert total_cut(np.inf, torch.float32) == -np.inf
    assert total_cut(-np.inf, torch.float32) == np.inf
    assert total_cut(1.0, torch.float32) == 1.0  # only a one-hot row reaches 1
    float64_cut = total_cut(0.3, torch.float64)
    assert 1.0 / float64_cut >= 0.3 > 1.0 / np.nextafter(float64_cut, np.inf)


def test_count_cuts_give_the_numpy_vote_and_patience_comparisons():
    for k in range(6):
        values = [c / (k + 1) for c in range(k + 2)]
        for threshold in values + [np.nextafter(x, 2) for x in values] + [-np.inf, np.inf, 2.0]:
            cut = count_cut(threshold, values, never=99)
            for count in range(1, k + 2):  # numpy: best / (k + 1) >= threshold
                assert (count >= cut) == (np.int64(count) / (k + 1) >= threshold)


# -- the rules' scores against the policies' ---------------------------------------------------
def test_rule_scores_equal_policy_scores_within_the_tolerance(shipped):
    for name, val, test, test_logits in shipped:
        logits = torch.from_numpy(test_logits)
        top2 = np.sort(test.probs, axis=-1)[..., -2:]
        clear = (top2[..., 1] - top2[..., 0] > 2 * PROB_TOLERANCE[torch.float32]).all(axis=1)
        for method, policy in fitted_policies(val).items():
            rule = rule_for(policy)
            assert rule is not None, method
            with torch.inference_mode():
                scores, predictions = rule_scores(rule, logits)
            expected = policy.compute_scores(test)
            np.testing.assert_array_equal(
                predictions.numpy()[clear], test.predictions[clear], err_msg=f"{name} {method}"
            )
            tolerance = score_tolerance(policy, torch.float32)
            error = np.abs(scores.numpy() - expected)[clear]
            assert np.all(error <= tolerance), (name, method, error.max(axis=0), tolerance)
            if method in ("patience", "msdnet-vote"):
                np.testing.assert_array_equal(scores.numpy()[clear], expected[clear])


def test_probability_tolerance_holds_for_many_classes():
    """PROB_TOLERANCE bounds |p_torch - p_numpy| on rows of 2 to 1000 classes."""
    from eeopt.torch.rules import softmax

    rng = np.random.default_rng(0)
    for n_classes in (2, 10, 100, 1000):
        for scale in (0.3, 3.0, 30.0):
            logits = (rng.normal(size=(2000, n_classes)) * scale).astype(np.float32)
            expected = eeopt.ExitData.from_logits(logits[:, None]).probs[:, 0]
            with torch.inference_mode():
                probs = softmax(torch.from_numpy(logits)).numpy()
            error = np.abs(probs.astype(np.float64) - expected).max()
            assert error <= PROB_TOLERANCE[torch.float32] / 2, (n_classes, scale, error)


# -- the runtime's decisions on the shipped data ---------------------------------------------
@pytest.mark.parametrize("refill", [False, True], ids=["per-batch", "refill"])
def test_device_rule_decides_as_the_policy_on_every_shipped_sample(shipped, refill):
    """Every sample of the shipped datasets, every method: the same exit and prediction.

    A disagreement is allowed only at a near tie (checked if one occurs); none occurs.
    """
    for name, val, test, test_logits in shipped:
        model = replay_model(test.n_exits)
        batches = list(torch.from_numpy(test_logits).split(100))
        for method, policy in fitted_policies(val).items():
            run = et.run_early_exit(model, policy, batches, refill=refill, exit_rule="device")
            assert run.exit_rule == "device"
            expected_exits, expected_predictions = policy.exit_index(test), policy.predict(test)
            differ = np.flatnonzero(
                (run.exit_index != expected_exits) | (run.predictions != expected_predictions)
            )
            for sample in differ:
                up_to = min(run.exit_index[sample], expected_exits[sample])
                assert near_tie(policy, test, sample, up_to), (name, method, sample)
            assert differ.size == 0, f"{name} {method}: {differ.size} near-tie disagreements"
            if method in eeopt.method_names():  # not a test of a single exit
                assert len(np.unique(expected_exits)) >= 2, (name, method)


def test_device_rule_widens_half_precision_logits_like_collect_logits(shipped):
    name, val, test, test_logits = shipped[0]
    half = torch.from_numpy(test_logits).to(torch.bfloat16)
    widened = eeopt.ExitData.from_logits(half.float().numpy())
    model = replay_model(test.n_exits)
    for method, policy in fitted_policies(val).items():
        run = et.run_early_exit(model, policy, list(half.split(64)), exit_rule="device")
        np.testing.assert_array_equal(run.exit_index, policy.exit_index(widened), err_msg=method)
        np.testing.assert_array_equal(run.predictions, policy.predict(widened), err_msg=method)


def test_device_rule_on_float64_logits_keeps_float64(shipped):
    name, val, test, test_logits = shipped[0]
    wide = torch.from_numpy(test_logits.astype(np.float64) / 3)  # not float32 values
    data = eeopt.ExitData.from_logits(wide.numpy())
    assert data.probs.dtype == np.float64
    model = replay_model(test.n_exits)
    for method, policy in fitted_policies(val).items():
        run = et.run_early_exit(model, policy, list(wide.split(64)), exit_rule="device")
        np.testing.assert_array_equal(run.exit_index, policy.exit_index(data), err_msg=method)
        np.testing.assert_array_equal(run.predictions, policy.predict(data), err_msg=method)


# -- a model in plain float arithmetic: device and host rules see the same logits ----------
@pytest.fixture(scope="module")
def cnn():
    train, val, test = digits_splits(seed=0)
    model = build_digits_cnn(train, steps=60)
    images = [(x.reshape(-1, 1, 8, 8), y) for x, y in (val, test)]
    return model, images[0], images[1]


def test_device_and_host_rules_agree_on_a_float_cnn(cnn):
    """The CNN's logits depend on the rows a batch holds; both rules compact the batch in the
    same order, so each stage sees the same rows and only the rule differs."""
    model, val, test = cnn
    val_data = et.collect_logits(model, [val], verbose=False)
    batches = list(test[0].split(32))
    for method, policy in fitted_policies(val_data).items():
        for refill in (False, True):
            device = et.run_early_exit(model, policy, batches, refill=refill, exit_rule="device")
            host = et.run_early_exit(model, policy, batches, refill=refill, exit_rule="host")
            np.testing.assert_array_equal(device.exit_index, host.exit_index, err_msg=method)
            np.testing.assert_array_equal(device.predictions, host.predictions, err_msg=method)


# -- which rule runs ----------------------------------------------------------------------
def test_a_policy_subclass_with_its_own_scores_falls_back_to_the_host(shipped):
    name, val, test, test_logits = shipped[0]

    class Squared(ScorePolicy):
        """A user's policy: thresholds on maxprob squared."""

        def compute_scores(self, data):
            return data.maxprob.astype(np.float64) ** 2

    base = eeopt.fit(val, method="maxprob", budget=float(val.costs[1]))
    policy = Squared("squared", base.thresholds_**2, base.costs_, base.n_classes_, score="maxprob")
    assert rule_for(policy) is None
    model = replay_model(test.n_exits)
    batches = list(torch.from_numpy(test_logits).split(64))
    run = et.run_early_exit(model, policy, batches)
    assert run.exit_rule == "host"
    np.testing.assert_array_equal(run.exit_index, policy.exit_index(test))
    with pytest.raises(ValueError, match="exit_rule='device' needs a policy"):
        et.run_early_exit(model, policy, batches, exit_rule="device")
    with pytest.raises(ValueError, match="exit_rule"):
        et.run_early_exit(model, base, batches, exit_rule="gpu")

    class Renamed(ScorePolicy):
        """A subclass that keeps ScorePolicy's scores keeps the device rule."""

    kept = Renamed("maxprob", base.thresholds_, base.costs_, base.n_classes_, score="maxprob")
    assert et.run_early_exit(model, kept, batches).exit_rule == "device"


# -- no host round trip per stage -------------------------------------------------------
HOST_READS = {"__int__", "__bool__", "__float__", "__index__", "item", "tolist", "cpu", "numpy"}
HOST_READS |= {"nonzero", "masked_select", "unique"}


class HostReads(TorchFunctionMode):
    """Records the torch calls that bring a device value to the host (a sync on a GPU)."""

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_READS:
            self.reads.append(name)
        elif name == "__getitem__" and any(
            isinstance(a, torch.Tensor) and a.dtype == torch.bool for a in args[1:]
        ):
            self.reads.append("boolean index")
        return func(*args, **(kwargs or {}))


class CountingStage(nn.Module):
    def __init__(self, log: list) -> None:
        super().__init__()
        self.log = log

    def forward(self, x):
        self.log.append(x.shape[0])
        return x


@pytest.mark.parametrize("refill", [False, True], ids=["per-batch", "refill"])
@pytest.mark.parametrize("method", ["maxprob", "entropy", "patience", "beem-a", "eenet"])
def test_device_rule_reads_one_count_per_stage_and_the_results_once(shipped, method, refill):
    name, val, test, test_logits = shipped[2]  # mnist1d: 7 exits
    policy = fitted_policies(val)[method]
    calls = [[] for _ in range(test.n_exits)]
    model = et.MultiExitModel(
        [CountingStage(log) for log in calls], [ExitOf(k) for k in range(test.n_exits)]
    )
    batches = list(torch.from_numpy(test_logits).split(100))
    with HostReads() as device_mode:
        run = et.run_early_exit(model, policy, batches, refill=refill, exit_rule="device")
    stage_calls = sum(len(log) for log in calls[:-1])  # the last exit reads nothing
    # one nonzero per stage (the staying rows: their number is the one value the host needs)
    assert device_mode.reads.count("nonzero") == stage_calls
    # and one copy of the results at the end of the run
    assert sorted(r for r in device_mode.reads if r != "nonzero") == ["cpu", "numpy"]
    np.testing.assert_array_equal(run.exit_index, policy.exit_index(test))
    with HostReads() as host_mode:
        et.run_early_exit(model, policy, batches, refill=refill, exit_rule="host")
    assert host_mode.reads.count("cpu") >= stage_calls  # the host rule copies logits per stage
