import json

import numpy as np
import pytest
from conftest import make_multi_exit

import eeopt


def test_from_logits_gives_probabilities_that_sum_to_one(multi_exit):
    logits, labels = multi_exit
    data = eeopt.ExitData.from_logits(logits, labels, costs=[1, 2, 3, 4])
    np.testing.assert_allclose(data.probs.sum(axis=2), 1.0)
    assert data.probs.shape == logits.shape
    np.testing.assert_array_equal(data.predictions, logits.argmax(axis=2))


def test_auto_input_detects_probabilities_and_logits(multi_exit):
    logits, labels = multi_exit
    probs = eeopt.ExitData.from_logits(logits).probs
    assert eeopt.ExitData(probs, labels).probs is not None
    np.testing.assert_array_equal(eeopt.ExitData(probs).probs, probs)  # kept as given
    np.testing.assert_allclose(eeopt.ExitData(logits).probs, probs)  # softmax applied


def test_float32_is_kept_without_upcast(multi_exit):
    logits, _ = multi_exit
    probs = eeopt.ExitData.from_logits(logits).probs.astype(np.float32)
    data = eeopt.ExitData(probs)
    assert data.probs.dtype == np.float32
    assert np.shares_memory(data.probs, probs)  # no copy either


def test_probs_are_read_only(multi_exit):
    data = eeopt.ExitData(multi_exit[0])
    with pytest.raises(ValueError):
        data.probs[0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        data.predictions[0, 0] = 1


def test_default_costs_are_layer_counts(multi_exit):
    data = eeopt.ExitData(multi_exit[0])
    np.testing.assert_array_equal(data.costs, [1, 2, 3, 4])


def test_derived_arrays_are_cached(multi_exit):
    data = eeopt.ExitData(*multi_exit)
    assert data.maxprob is data.maxprob
    assert data.correct is data.correct


def test_exit_accuracy_matches_a_loop(multi_exit):
    logits, labels = multi_exit
    data = eeopt.ExitData(logits, labels)
    for k in range(data.n_exits):
        expected = np.mean([np.argmax(logits[i, k]) == labels[i] for i in range(len(labels))])
        assert data.exit_accuracy[k] == pytest.approx(expected)


def test_save_and_load_round_trip(tmp_path, multi_exit):
    logits, labels = multi_exit
    data = eeopt.ExitData.from_logits(
        logits.astype(np.float32), labels, costs=[1.5, 2, 3, 7], metadata={"name": "toy"}
    )
    path = tmp_path / "x.npz"
    data.save(path)
    with np.load(path) as f:
        assert set(f.files) == {"probs", "labels", "costs", "metadata"}
        assert json.loads(str(f["metadata"])) == {"name": "toy"}
    back = eeopt.ExitData.load(path)
    np.testing.assert_array_equal(back.probs, data.probs)
    assert back.probs.dtype == np.float32
    np.testing.assert_array_equal(back.labels, labels)
    np.testing.assert_array_equal(back.costs, [1.5, 2, 3, 7])
    assert back.metadata == {"name": "toy"}


def test_save_without_labels_round_trips(tmp_path, multi_exit):
    data = eeopt.ExitData(multi_exit[0])
    data.save(tmp_path / "x.npz")
    assert eeopt.ExitData.load(tmp_path / "x.npz").labels is None


def test_subset_and_with_costs(multi_exit):
    data = eeopt.ExitData(*multi_exit)
    sub = data.subset(np.arange(10))
    assert sub.n_samples == 10
    np.testing.assert_array_equal(sub.labels, data.labels[:10])
    assert data.with_costs([1, 1, 2, 5]).costs.tolist() == [1, 1, 2, 5]


def test_repr_names_the_shape(multi_exit):
    text = repr(eeopt.ExitData(*make_multi_exit(n=10)))
    assert "n_samples=10" in text and "n_exits=4" in text
