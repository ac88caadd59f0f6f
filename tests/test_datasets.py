"""eeopt.datasets: the shipped files load, match their datasheet and their checksums."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from eeopt import datasets
from eeopt.data import ExitData

README = Path(__file__).resolve().parents[1] / "data" / "README.md"

# The documented shapes: (n_samples, n_exits, n_classes) of each split.
SHAPES = {
    "digits": (450, 4, 10),
    "mnist1d": (3000, 7, 10),
    "minilm-reviews": (3000, 6, 2),
}
REQUIRED_METADATA = {
    "name",
    "split",
    "source",
    "model",
    "cost_units",
    "costs_flops",
    "costs_seconds",
    "exit_accuracy",
    "licence",
}
CASES = [(name, split) for name in SHAPES for split in datasets.SPLITS]


def test_names_lists_the_shipped_datasets():
    assert datasets.names() == sorted(SHAPES)


@pytest.mark.parametrize(("name", "split"), CASES)
def test_shipped_split_has_documented_shape_and_types(name, split):
    data = datasets.load(name, split)
    assert isinstance(data, ExitData)
    assert data.probs.shape == SHAPES[name]
    assert data.probs.dtype == np.float32
    assert data.labels.dtype == np.int64
    assert data.costs.dtype == np.float64
    np.testing.assert_allclose(data.probs.sum(axis=-1), 1.0, atol=1e-5)
    assert set(np.unique(data.labels)) == set(range(data.n_classes))


@pytest.mark.parametrize(("name", "split"), CASES)
def test_shipped_metadata_matches_the_arrays(name, split):
    data = datasets.load(name, split)
    meta = data.metadata
    assert REQUIRED_METADATA <= set(meta)
    assert (meta["name"], meta["split"], meta["cost_units"]) == (name, split, "FLOPs")
    np.testing.assert_array_equal(data.costs, meta["costs_flops"])
    # Accuracies recomputed from probs and labels agree with those recorded at build time.
    np.testing.assert_allclose(data.exit_accuracy, meta["exit_accuracy"], atol=1e-6)
    seconds = np.asarray(meta["costs_seconds"])
    assert seconds.shape == (data.n_exits,)
    assert np.all(seconds > 0) and np.all(np.diff(seconds) >= 0)
    assert np.all(data.costs > 0) and np.all(np.diff(data.costs) > 0)


@pytest.mark.parametrize(("name", "split"), CASES)
def test_shipped_checksum_matches_record_and_datasheet(name, split):
    data = datasets.load(name, split)
    digest = datasets.checksum(data)
    file = f"{name}_{split}.npz"
    assert datasets.expected_checksums()[file] == digest
    assert digest in README.read_text(encoding="utf-8")


def test_checksum_changes_with_any_deterministic_array():
    data = datasets.load("digits", "val")
    base = datasets.checksum(data)
    labels = data.labels.copy()
    labels[0] = (labels[0] + 1) % data.n_classes
    assert datasets.checksum(data.subset(np.arange(data.n_samples))) == base
    assert datasets.checksum(ExitData(data.probs, labels, data.costs)) != base
    assert datasets.checksum(data.with_costs(data.costs * 2)) != base


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_datasheet_lists_per_exit_accuracy(name):
    # The README's accuracy table of each dataset, rounded to 4 places, is the recorded one.
    text = README.read_text(encoding="utf-8")
    for split in datasets.SPLITS:
        accuracy = datasets.load(name, split).exit_accuracy
        row = f"| {name} {split} accuracy | " + " | ".join(f"{a:.4f}" for a in accuracy) + " |"
        assert row in text, row


def test_mnist1d_early_exits_are_clearly_weaker():
    accuracy = datasets.load("mnist1d", "test").exit_accuracy
    assert accuracy[-1] - accuracy[0] > 0.2
    assert accuracy[-1] >= 0.9


def test_load_both_gives_val_then_test():
    val, test = datasets.load_both("digits")
    assert (val.metadata["split"], test.metadata["split"]) == ("val", "test")
    np.testing.assert_array_equal(val.costs, test.costs)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=re.escape(str(sorted(SHAPES)))):
        datasets.load("cifar100")


def test_unknown_split_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"split must be one of \['val', 'test'\]"):
        datasets.load("digits", "train")


def test_checksums_json_covers_exactly_the_shipped_files():
    files = {f"{name}_{split}.npz" for name, split in CASES}
    assert set(datasets.expected_checksums()) == files
    assert json.loads(json.dumps(datasets.expected_checksums())) == datasets.expected_checksums()


def test_n_samples_keeps_the_first_samples_and_is_validated():
    full = datasets.load("digits", "test")
    head = datasets.load("digits", "test", n_samples=10)
    np.testing.assert_array_equal(head.probs, full.probs[:10])
    np.testing.assert_array_equal(head.labels, full.labels[:10])
    np.testing.assert_array_equal(head.costs, full.costs)
    assert datasets.load("digits", "val", n_samples=10**6).n_samples == 450
    val, test = datasets.load_both("digits", n_samples=7)
    assert (val.n_samples, test.n_samples) == (7, 7)
    with pytest.raises(ValueError, match="n_samples"):
        datasets.load("digits", "val", n_samples=0)
    with pytest.raises(TypeError, match="n_samples"):
        datasets.load("digits", "val", n_samples=2.5)
