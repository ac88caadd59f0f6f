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


# -- score-only data (issue 13) -------------------------------------------------------------------
SCORE_ONLY_METHODS = ("maxprob", "patience", "msdnet", "beem-c", "beem-a")


def _scores_of(data):
    return eeopt.ExitData.from_predictions(
        data.predictions, data.maxprob, data.labels, data.costs, n_classes=data.n_classes
    )


@pytest.mark.parametrize("name", ["digits", "mnist1d", "minilm-reviews"])
def test_score_only_data_give_the_same_policies_exits_and_metrics(name):
    val, test = eeopt.datasets.load_both(name)
    sval, stest = _scores_of(val), _scores_of(test)
    for method in SCORE_ONLY_METHODS:
        share = 0.9 if method == "patience" else 0.3  # patience cannot go lower on digits
        budget = float(val.costs[0] + share * (val.costs[-1] - val.costs[0]))
        for target in ({"budget": budget}, {} if method != "msdnet" else {"q": 0.7}):
            full = eeopt.fit(val, method=method, verbose=False, **target)
            scores = eeopt.fit(sval, method=method, verbose=False, **target)
            np.testing.assert_array_equal(full.thresholds_, scores.thresholds_)
            a, b = full.evaluate(test), scores.evaluate(stest)
            np.testing.assert_array_equal(a.exit_index, b.exit_index)
            np.testing.assert_array_equal(a.predictions, b.predictions)
            assert (a.accuracy, a.mean_cost) == (b.accuracy, b.mean_cost)
            np.testing.assert_array_equal(full.exit_index(stest), a.exit_index)
    for method in ("maxprob", "beem-a"):
        f, s = eeopt.pareto_front(val, method=method), eeopt.pareto_front(sval, method=method)
        np.testing.assert_array_equal(f.mean_costs, s.mean_costs)
        np.testing.assert_array_equal(f.accuracies, s.accuracies)
    f, s = eeopt.oracle_front(test), eeopt.oracle_front(stest)
    np.testing.assert_array_equal(f.accuracies, s.accuracies)
    report = eeopt.theory.theorem_3_1(eeopt.fit(sval, method="beem-a", verbose=False), stest)
    expected = eeopt.theory.theorem_3_1(eeopt.fit(val, method="beem-a", verbose=False), test)
    assert str(report) == str(expected)


def test_methods_that_need_probabilities_say_what_is_missing():
    val = eeopt.datasets.load("digits", "val")
    scores, hard = _scores_of(val), eeopt.ExitData.from_predictions(val.predictions)
    for method, data, needle in [
        ("entropy", scores, "'entropy'"),
        ("margin", scores, "'margin'"),
        ("eenet", scores, "'probs'"),
        ("maxprob", hard, "'maxprob'.*no confidence"),
        ("beem-c", hard, "'maxprob'.*no confidence"),
    ]:
        with pytest.raises(ValueError, match=f"method '{method}' reads {needle}"):
            eeopt.fit(data, method=method, budget=float(val.costs[1]))
    policy = eeopt.fit(val, method="entropy", budget=float(val.costs[2]))
    with pytest.raises(ValueError, match="the 'entropy' policy reads 'entropy'"):
        policy.evaluate(scores)
    with pytest.raises(ValueError, match="'probs'"):
        _ = scores.probs


def test_hard_predictions_only_work_for_patience_and_the_oracle():
    val = eeopt.datasets.load("digits", "val")
    hard = eeopt.ExitData.from_predictions(val.predictions, labels=val.labels, costs=val.costs)
    full, only = eeopt.fit(val, method="patience"), eeopt.fit(hard, method="patience")
    np.testing.assert_array_equal(full.thresholds_, only.thresholds_)
    np.testing.assert_array_equal(
        eeopt.oracle_front(val).accuracies, eeopt.oracle_front(hard).accuracies
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"predictions": np.zeros((3, 2))}, TypeError, "predictions must hold integer"),
        ({"predictions": np.zeros(3, int)}, ValueError, "predictions must have 2 dimensions"),
        ({"predictions": -np.ones((3, 2), int)}, ValueError, "predictions must be class"),
        ({"confidence": np.full((3, 2), 1.5)}, ValueError, r"confidence must lie in \[0, 1\]"),
        ({"confidence": np.full((3, 2), np.nan)}, ValueError, "NaN"),
        ({"confidence": np.ones((3, 3))}, ValueError, "shape of predictions"),
        ({"labels": [0, 1, 7], "n_classes": 3}, ValueError, r"labels must lie in \[0, 3\)"),
        ({"n_classes": 1}, ValueError, "n_classes"),
        ({"confidence_name": "vote"}, ValueError, "confidence_name"),
    ],
)
def test_from_predictions_validates_its_input(kwargs, error, match):
    args = {"predictions": np.array([[0, 1], [1, 1], [2, 2]]), **kwargs}
    with pytest.raises(error, match=match):
        eeopt.ExitData.from_predictions(**args)


def test_from_predictions_keeps_compact_dtypes_and_infers_classes():
    preds = np.array([[0, 3], [1, 1]], dtype=np.int32)
    conf = np.array([[0.5, 0.9], [0.6, 0.7]], dtype=np.float32)
    data = eeopt.ExitData.from_predictions(preds, conf, labels=[3, 5])
    assert data.predictions.dtype == np.int32 and data.maxprob.dtype == np.float32
    assert data.n_classes == 6 and not data.n_classes_given
    assert np.shares_memory(data.predictions, preds)
    named = eeopt.ExitData.from_predictions(preds, conf, confidence_name="entropy")
    np.testing.assert_array_equal(named.entropy, conf)
    with pytest.raises(ValueError, match="'maxprob'"):
        _ = named.maxprob
