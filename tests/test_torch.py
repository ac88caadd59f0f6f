"""The torch adapter (eeopt.torch): extraction, exit costs and real early-exit inference.

The model is a small MLP trained on scikit-learn's digits (``tests/digits_model.py``) whose
float32 arithmetic is exact, so its outputs do not depend on batch size or on which samples
share a batch; early exit must then reproduce ``policy.exit_index``/``policy.predict`` on the
collected outputs exactly, for every method.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import eeopt  # noqa: E402
import eeopt.torch as et  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from digits_model import build_digits_model, check_exact, digits_splits  # noqa: E402

torch.set_num_threads(1)  # a shared machine; the model is tiny
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():
    train, val, test = digits_splits(seed=0)
    model = build_digits_model(train)
    check_exact(model, torch.cat([val[0], test[0]]))
    return model, val, test


def loader(split, batch_size, labels=True):
    x, y = split
    dataset = TensorDataset(x, y) if labels else TensorDataset(x)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)


@pytest.fixture(scope="module")
def collected(digits):
    model, val, test = digits
    costs = [1.0, 2.0, 3.0, 4.0]
    val_data = et.collect_logits(model, loader(val, 64), verbose=False, costs=costs)
    test_data = et.collect_logits(model, loader(test, 64), verbose=False, costs=costs)
    return val_data, test_data


@pytest.fixture(scope="module")
def policies(collected):
    val_data, _ = collected
    # A budget in the middle spreads the samples over the exits for every method.
    return {m: eeopt.fit(val_data, method=m, budget=2.5) for m in eeopt.method_names()}


# -- import hygiene ----------------------------------------------------------------------
def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_import_eeopt_does_not_import_torch():
    done = _python("import sys, eeopt; print('torch' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_missing_torch_says_how_to_install():
    done = _python("import sys; sys.modules['torch'] = None; import eeopt.torch")
    assert done.returncode != 0
    assert "ImportError" in done.stderr and "pip install eeopt[torch]" in done.stderr


# -- MultiExitModel ------------------------------------------------------------------------
def test_multi_exit_model_returns_every_exit_and_runs_stage_by_stage(digits):
    model, _, test = digits
    x = test[0][:5]
    with torch.inference_mode():
        outputs = model(x)
        features = model.run_stage(0, x)
        head0 = model.run_head(0, features)
    assert model.n_exits == len(outputs) == 4
    assert all(out.shape == (5, 10) for out in outputs)
    assert torch.equal(head0, outputs[0])


@pytest.mark.parametrize(
    ("stages", "heads", "error", "match"),
    [
        ([nn.Linear(2, 2)], [nn.Linear(2, 2), nn.Linear(2, 2)], ValueError, "same length"),
        ([], [], ValueError, "stages must hold at least one"),
        ([nn.Linear(2, 2)], ["head"], TypeError, r"heads\[0\] must be an nn.Module"),
        (nn.Linear(2, 2), [nn.Linear(2, 2)], TypeError, "stages must be a list"),
    ],
)
def test_multi_exit_model_rejects_bad_stages_and_heads(stages, heads, error, match):
    with pytest.raises(error, match=match):
        et.MultiExitModel(stages, heads)


# -- collect_logits ------------------------------------------------------------------------
def test_collect_logits_gives_softmax_of_every_exit_in_float32(digits, collected):
    model, _, test = digits
    _, test_data = collected
    with torch.inference_mode():
        logits = torch.stack(model(test[0]), dim=1).numpy()
    expected = eeopt.ExitData.from_logits(logits)
    assert test_data.probs.dtype == np.float32
    assert test_data.probs.shape == (len(test[1]), 4, 10)
    np.testing.assert_array_equal(test_data.probs, expected.probs)
    np.testing.assert_array_equal(test_data.labels, test[1].numpy())
    np.testing.assert_array_equal(test_data.costs, [1.0, 2.0, 3.0, 4.0])


def test_collect_logits_accepts_inputs_only_and_plain_iterables(digits, collected):
    model, _, test = digits
    _, test_data = collected
    without_labels = et.collect_logits(model, loader(test, 50, labels=False), verbose=False)
    assert without_labels.labels is None
    np.testing.assert_array_equal(without_labels.probs, test_data.probs)
    batches = [test[0][i : i + 100] for i in range(0, len(test[0]), 100)]  # bare tensors
    from_list = et.collect_logits(model, batches, verbose=False)
    np.testing.assert_array_equal(from_list.probs, test_data.probs)


def test_collect_logits_accepts_a_model_returning_a_sequence(digits, collected):
    """The MSDNet family convention: forward returns the list of every exit's logits."""
    model, _, test = digits

    class SequenceModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            return tuple(self.inner(x))

    data = et.collect_logits(SequenceModel(), loader(test, 64), verbose=False)
    np.testing.assert_array_equal(data.probs, collected[1].probs)


def test_collect_logits_restores_training_mode_and_draws_progress(digits, capsys):
    model, _, test = digits
    model.train()
    try:
        et.collect_logits(model, loader(test, 128), verbose=True)
        assert model.training
    finally:
        model.eval()
    assert "collecting logits" in capsys.readouterr().err


def test_collect_logits_rejects_a_stacked_tensor_and_an_empty_loader(digits):
    model, _, _ = digits

    class Stacked(nn.Module):
        def forward(self, x):
            return torch.stack(model(x))

    with pytest.raises(TypeError, match="list or tuple of per-exit logits"):
        et.collect_logits(Stacked(), [torch.zeros(3, 64)], verbose=False)
    with pytest.raises(ValueError, match="loader yielded no batches"):
        et.collect_logits(model, [], verbose=False)


# -- verbose= (progress= deprecated) -------------------------------------------------------
def test_progress_is_a_deprecated_name_of_verbose(digits, collected, policies, capsys):
    model, _, test = digits
    with pytest.warns(DeprecationWarning, match="use verbose="):
        data = et.collect_logits(model, loader(test, 128), progress=False)
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(data.probs, collected[1].probs)
    with pytest.warns(DeprecationWarning, match="run_early_exit\\(progress=...\\) is deprecated"):
        run = et.run_early_exit(model, policies["maxprob"], loader(test, 128), progress=True)
    assert "early exit" in capsys.readouterr().err
    np.testing.assert_array_equal(run.exit_index, policies["maxprob"].exit_index(collected[1]))
    et.run_early_exit(model, policies["maxprob"], loader(test, 128), verbose=True)
    assert "early exit" in capsys.readouterr().err


def test_verbose_and_progress_that_disagree_are_an_error(digits, policies):
    model, _, test = digits
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="disagree"):
        et.collect_logits(model, loader(test, 128), verbose=False, progress=True)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="verbose= only"):
        et.run_early_exit(model, policies["maxprob"], [test[0]], verbose=True, progress=False)
    with pytest.raises(TypeError, match="verbose must be True or False"):
        et.collect_logits(model, loader(test, 128), verbose="yes")
    # an explicit verbose equal to the default still disagrees with progress
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="disagree"):
        et.collect_logits(model, loader(test, 128), verbose=True, progress=False)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="disagree"):
        et.run_early_exit(model, policies["maxprob"], [test[0]], verbose=False, progress=True)


# -- run_early_exit equals the policy on the collected outputs ---------------------------
@pytest.mark.parametrize("exit_rule", ["device", "host"])
@pytest.mark.parametrize("refill", [False, True], ids=["per-batch", "refill"])
@pytest.mark.parametrize("batch_size", [1, 7, 64])
@pytest.mark.parametrize("method", eeopt.method_names())
def test_run_early_exit_matches_policy_on_collected_logits(
    digits, collected, policies, method, batch_size, refill, exit_rule
):
    model, _, test = digits
    _, test_data = collected
    policy = policies[method]
    assert len(test[1]) % batch_size != 0 or batch_size == 1  # a smaller last batch
    run = et.run_early_exit(
        model, policy, loader(test, batch_size), refill=refill, exit_rule=exit_rule
    )
    assert run.exit_rule == exit_rule
    expected_exits = policy.exit_index(test_data)
    np.testing.assert_array_equal(run.exit_index, expected_exits)
    np.testing.assert_array_equal(run.predictions, policy.predict(test_data))
    assert len(np.unique(expected_exits)) >= 2, "the budget should spread samples over exits"
    assert run.accuracy == pytest.approx(policy.evaluate(test_data).accuracy)
    np.testing.assert_allclose(run.exit_fractions, policy.evaluate(test_data).exit_fractions)
    assert run.seconds > 0


def test_runtime_prefix_scorer_equals_policy_prefix_scores(collected, policies):
    """The runtime's unvalidated path gives the policy's prefix scores bit for bit."""
    from eeopt.torch.runtime import prefix_scorer

    _, test_data = collected
    for method, policy in policies.items():
        score_prefix = prefix_scorer(policy)
        for k in range(test_data.n_exits):
            prefix = test_data.probs[::3, : k + 1].copy()
            np.testing.assert_array_equal(
                score_prefix(prefix), policy.prefix_scores(prefix), err_msg=method
            )


def test_policy_saved_to_json_deploys_unchanged(digits, collected, policies, tmp_path):
    model, _, test = digits
    _, test_data = collected
    policy = policies["patience"]
    path = tmp_path / "policy.json"
    policy.save(path)
    loaded = eeopt.load_policy(path)
    run = et.run_early_exit(model, loaded, loader(test, 32))
    np.testing.assert_array_equal(run.exit_index, policy.exit_index(test_data))
    by_path = et.run_early_exit(model, str(path), loader(test, 32))
    np.testing.assert_array_equal(by_path.predictions, policy.predict(test_data))


def test_run_early_exit_carries_tuple_features_and_inputs_only(digits, collected, policies):
    """Stages may pass tuples of batch-first tensors (multi-scale features, as in MSDNet)."""
    model, _, test = digits

    class Pair(nn.Module):
        def __init__(self, stage, first):
            super().__init__()
            self.stage, self.first = stage, first

        def forward(self, x):
            out = self.stage(x if self.first else x[0])
            return out, out.clone()

    class FirstOf(nn.Module):
        def __init__(self, head):
            super().__init__()
            self.head = head

        def forward(self, pair):
            return self.head(pair[0])

    paired = et.MultiExitModel(
        [Pair(s, k == 0) for k, s in enumerate(model.stages)], [FirstOf(h) for h in model.heads]
    )
    policy = policies["maxprob"]
    run = et.run_early_exit(paired, policy, loader(test, 16, labels=False))
    assert run.labels is None and run.accuracy is None
    np.testing.assert_array_equal(run.exit_index, policy.exit_index(collected[1]))


class _Recorder(nn.Module):
    """A stage that logs how many rows it ran on."""

    def __init__(self, stage, log):
        super().__init__()
        self.stage, self.log = stage, log

    def forward(self, x):
        self.log.append(x.shape[0])
        return self.stage(x)


@pytest.mark.parametrize("exit_rule", ["device", "host"])
@pytest.mark.parametrize("method", ["maxprob", "beem-c", "eenet"])
def test_refill_runs_later_stages_on_full_batches_with_the_same_decisions(
    digits, collected, policies, method, exit_rule
):
    model, _, test = digits
    logs = [[] for _ in model.stages]
    recording = et.MultiExitModel(
        [_Recorder(s, log) for s, log in zip(model.stages, logs, strict=True)], list(model.heads)
    )
    policy = policies[method]
    if method == "eenet":  # a fixed seed: the stage sizes below depend on the exits
        policy = eeopt.fit(collected[0], method="eenet", budget=2.5, random_state=0, verbose=False)
    expected = policy.exit_index(collected[1])
    n_at_least = [(expected >= k).sum() for k in range(4)]  # samples that reach stage k
    batch_size = 16
    per_batch = et.run_early_exit(
        recording, policy, loader(test, batch_size, labels=False), exit_rule=exit_rule
    )
    sizes_per_batch = [list(log) for log in logs]
    for log in logs:
        log.clear()
    refilled = et.run_early_exit(
        recording,
        policy,
        loader(test, batch_size, labels=False),
        refill=True,
        exit_rule=exit_rule,
    )
    for run in (per_batch, refilled):
        np.testing.assert_array_equal(run.exit_index, expected)
        np.testing.assert_array_equal(run.predictions, policy.predict(collected[1]))
    for k, log in enumerate(logs):
        assert sum(log) == sum(sizes_per_batch[k]) == n_at_least[k]
        if k:  # full batches, and one smaller remainder at the end
            assert all(size == batch_size for size in log[:-1]) and 0 < log[-1] <= batch_size
            assert len(log) == -(-n_at_least[k] // batch_size)
    assert len(logs[1]) < len(sizes_per_batch[1]), "refill should need fewer stage-1 runs"


# -- run_early_exit: bad input -------------------------------------------------------------
def test_run_early_exit_rejects_mismatched_exits_and_classes(digits, collected):
    model, _, test = digits
    val_data, _ = collected
    three_exits = eeopt.fit(val_data.probs[:, :3], val_data.labels, method="maxprob", budget=2)
    with pytest.raises(ValueError, match="policy was fitted on 3 exits but model has 4"):
        et.run_early_exit(model, three_exits, loader(test, 64))
    five_classes = eeopt.fit(
        np.random.default_rng(0).normal(size=(50, 4, 5)), method="maxprob", threshold=0.5
    )
    with pytest.raises(ValueError, match="policy was fitted on 5 classes"):
        et.run_early_exit(model, five_classes, loader(test, 64))


def test_run_early_exit_rejects_an_empty_loader_and_a_sequence_model(digits, policies):
    model, _, _ = digits
    with pytest.raises(ValueError, match="loader yielded no batches"):
        et.run_early_exit(model, policies["maxprob"], [])
    for rule in ("host", "device"):  # only empty batches: the same error on either path
        with pytest.raises(ValueError, match="only empty ones"):
            et.run_early_exit(model, policies["maxprob"], [torch.zeros(0, 64)], exit_rule=rule)

    class SequenceModel(nn.Module):
        def forward(self, x):
            return model(x)

    with pytest.raises(TypeError, match="needs a MultiExitModel"):
        et.run_early_exit(SequenceModel(), policies["maxprob"], [torch.zeros(2, 64)])
    with pytest.raises(TypeError, match="fitted eeopt Policy"):
        et.run_early_exit(model, {"thresholds": [0.5]}, [torch.zeros(2, 64)])


def test_a_failing_stage_is_named(digits, policies):
    model, _, test = digits
    broken = et.MultiExitModel(
        [model.stages[0], nn.Linear(7, 7), model.stages[2], model.stages[3]], list(model.heads)
    )
    with pytest.raises(RuntimeError, match="stage 1 of 4 \\(Linear\\) failed"):
        et.run_early_exit(broken, policies["entropy"], loader(test, 64))
    with pytest.raises(RuntimeError, match="stage 1 of 4"):
        et.collect_logits(broken, loader(test, 64), verbose=False)


# -- measure_exit_costs --------------------------------------------------------------------
def test_measure_exit_costs_is_cumulative_and_counts_linear_flops(digits, collected):
    model, _, test = digits
    costs = et.measure_exit_costs(model, (test[0][:32], test[1][:32]), repeats=3, warmup=1)
    assert costs.seconds.shape == costs.flops.shape == (4,)
    assert np.all(costs.seconds > 0) and np.all(np.diff(costs.seconds) >= 0)
    # A linear layer of i inputs and o outputs is 2 i o FLOPs per sample.
    layers = [64 * 48, 48 * 48, 48 * 48, 48 * 48]
    heads = [3 * 10, 6 * 10, 12 * 10, 48 * 10]
    per_exit = 2 * (np.array(layers) + np.array(heads))
    np.testing.assert_array_equal(costs.flops, np.cumsum(per_exit))
    assert costs.batch_size == 32 and costs.device == "cpu"
    own_head = et.measure_exit_costs(model, test[0][:32], repeats=1, warmup=0, earlier_heads=False)
    # Exit k alone: stages 0..k and head k (the earlier heads left out).
    np.testing.assert_array_equal(own_head.flops, 2 * (np.cumsum(layers) + np.array(heads)))
    assert not own_head.earlier_heads and np.all(np.diff(own_head.seconds) >= 0)
    eeopt.fit(collected[0].with_costs(costs.seconds), method="maxprob", budget=costs.seconds[1])


def test_measure_exit_costs_needs_a_stagewise_model(digits):
    model, _, _ = digits

    class SequenceModel(nn.Module):
        def forward(self, x):
            return model(x)

    with pytest.raises(TypeError, match="needs a MultiExitModel"):
        et.measure_exit_costs(SequenceModel(), torch.zeros(2, 64))
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        et.measure_exit_costs(model, torch.zeros(2, 64), repeats=0)


def test_measure_exit_costs_at_a_given_batch_size_repeats_the_example_rows(digits):
    model, _, test = digits
    logs = [[] for _ in model.stages]
    recording = et.MultiExitModel(
        [_Recorder(s, log) for s, log in zip(model.stages, logs, strict=True)], list(model.heads)
    )
    costs = et.measure_exit_costs(recording, test[0][:5], repeats=2, warmup=1, batch_size=12)
    assert costs.batch_size == 12
    assert all(set(log) == {12} for log in logs)
    # FLOPs per sample do not depend on the batch size.
    direct = et.measure_exit_costs(model, test[0][:12], repeats=1, warmup=0)
    np.testing.assert_array_equal(costs.flops, direct.flops)
    cut = et.measure_exit_costs(model, test[0][:32], repeats=1, warmup=0, batch_size=3)
    assert cut.batch_size == 3
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        et.measure_exit_costs(model, test[0][:5], batch_size=0)


def test_measure_exit_costs_on_cuda_reads_events_between_the_pieces(digits, monkeypatch):
    """No GPU here: fake CUDA events whose clock advances 1 ms per piece in order, and check
    the bookkeeping (which interval is which piece, milliseconds to seconds, per sample)."""
    from eeopt.torch import costs as costs_module

    model, _, test = digits
    clock = {"ms": 0.0, "syncs": 0}

    class Event:
        def __init__(self, enable_timing):
            assert enable_timing

        def record(self, stream):
            clock["ms"] += 1.0
            self.ms = clock["ms"]

        def elapsed_time(self, end):
            return end.ms - self.ms

    class NoContext:
        def __init__(self, device):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "device", NoContext)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device: None)
    monkeypatch.setattr(
        torch.cuda, "synchronize", lambda device: clock.__setitem__("syncs", clock["syncs"] + 1)
    )
    with torch.inference_mode():
        pieces = costs_module._timed_pass_cuda(model, test[0][:8], torch.device("cuda"))
    assert np.asarray(pieces).shape == (4, 2)
    np.testing.assert_allclose(pieces, 1e-3)  # one interval per stage and head, in seconds
    assert clock["syncs"] == 2  # before the pass and once after it, not per piece
