"""eeopt's cache files: .npz (compressed or not), folders of .npy, memory maps, user files."""

import json
import warnings

import numpy as np
import pytest
from conftest import make_multi_exit

import eeopt


def _full(n=120, seed=0, costs=(1.0, 2.0, 3.0, 5.0)):
    logits, labels = make_multi_exit(n=n, n_exits=4, seed=seed)
    return eeopt.ExitData.from_logits(logits, labels, costs, metadata={"name": "toy"})


def _score_only(data):
    return eeopt.ExitData.from_predictions(
        data.predictions.astype(np.int32),
        data.maxprob,
        data.labels,
        data.costs,
        n_classes=data.n_classes,
    )


def _mapped(arr):
    """Whether ``arr`` is (a view of) a memory map: its data stay on disk."""
    while arr is not None:
        if isinstance(arr, np.memmap):
            return True
        arr = arr.base
    return False


def _same(a, b):
    assert a.content == b.content and a.n_classes == b.n_classes and a.has_costs == b.has_costs
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.costs, b.costs)
    if a.has_probs:
        np.testing.assert_array_equal(a.probs, b.probs)
    elif a.confidence_name is not None:
        np.testing.assert_array_equal(a.maxprob, b.maxprob)
    assert a.metadata == b.metadata


@pytest.mark.parametrize("kind", ["full", "scores"])
@pytest.mark.parametrize("where", ["compressed.npz", "plain.npz", "folder"])
@pytest.mark.parametrize("mmap", [False, True])
def test_round_trip_in_every_format(tmp_path, kind, where, mmap):
    data = _full() if kind == "full" else _score_only(_full())
    path = tmp_path / where
    data.save(path, compress=where != "plain.npz")
    if mmap and where == "compressed.npz":
        with pytest.raises(ValueError, match="compressed .npz, which cannot be memory-mapped"):
            eeopt.ExitData.load(path, mmap=True)
        return
    back = eeopt.ExitData.load(path, mmap=mmap)
    _same(data, back)
    assert _mapped(back.probs if back.has_probs else back.maxprob) == mmap
    policy = eeopt.fit(data, method="maxprob", budget=2.5)
    np.testing.assert_array_equal(policy.exit_index(back), policy.exit_index(data))


def test_predictions_only_and_inferred_classes_round_trip(tmp_path):
    data = eeopt.ExitData.from_predictions([[0, 2], [1, 1], [2, 2]], labels=[2, 1, 0])
    assert data.content == "predictions" and not data.n_classes_given and data.n_classes == 3
    data.save(tmp_path / "p.npz")
    back = eeopt.ExitData.load(tmp_path / "p.npz")
    _same(data, back)
    assert not back.n_classes_given and not back.has_costs


def test_a_researchers_own_npz(tmp_path):
    logits, labels = make_multi_exit(n=80, n_exits=3, seed=2)
    np.savez(tmp_path / "mine.npz", logits=logits, labels=labels)
    data = eeopt.ExitData.load(tmp_path / "mine.npz")
    expected = eeopt.ExitData.from_logits(logits, labels)
    np.testing.assert_allclose(data.probs, expected.probs)
    assert not data.has_costs and data.costs.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="stores logits, but input='probs'"):
        eeopt.ExitData.load(tmp_path / "mine.npz", input="probs")


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"labels": np.arange(3)}, "found none of them"),
        ({"probs": np.ones((2, 2, 2)) / 2, "logits": np.zeros((2, 2, 2))}, "probs and logits"),
        ({"probs": np.ones((2, 2, 2)) / 2, "predictions": np.zeros((2, 2), int)}, "exactly one"),
        ({"predictions": np.zeros((2, 2))}, "integer class indices"),
        ({"predictions": np.zeros((2, 2), int), "confidence": np.ones((2, 3))}, "shape"),
    ],
)
def test_bad_caches_are_named(tmp_path, arrays, match):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises((ValueError, TypeError), match=match):
        eeopt.ExitData.load(tmp_path / "bad.npz")


def test_unknown_arrays_are_left_out_with_a_warning(tmp_path):
    np.savez(tmp_path / "extra.npz", probs=np.full((2, 2, 2), 0.5), ids=np.arange(2))
    with pytest.warns(UserWarning, match="left out the array"):
        data = eeopt.ExitData.load(tmp_path / "extra.npz")
    assert data.n_samples == 2


def test_memory_mapped_evaluation_matches_in_memory(tmp_path):
    data = _score_only(_full(n=3000, seed=4))
    data.save(tmp_path / "cache", compress=False)
    mapped = eeopt.ExitData.load(tmp_path / "cache", mmap=True)
    policy = eeopt.fit(data, method="beem-a", budget=3.0)
    a, b = policy.evaluate(data), policy.evaluate(mapped)
    assert (a.accuracy, a.mean_cost) == (b.accuracy, b.mean_cost)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        json.dumps(mapped.metadata)
