import numpy as np
import pytest
from conftest import make_multi_exit
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from reference import ref_scores, ref_softmax

import eeopt
from eeopt import scores


@pytest.mark.parametrize("name", scores.SCORE_NAMES)
def test_scores_match_per_sample_reference(name):
    logits, labels = make_multi_exit(n=60, n_exits=5, n_classes=4, seed=3)
    data = eeopt.ExitData.from_logits(logits, labels)
    got = data.score(name)
    for i in range(data.n_samples):
        preds = [int(np.argmax(data.probs[i, k])) for k in range(data.n_exits)]
        for k in range(data.n_exits):
            expected = ref_scores(data.probs[i, k], name, preds, k)
            assert got[i, k] == pytest.approx(expected, abs=1e-6)


def test_softmax_is_stable_for_huge_logits():
    logits = np.array([[[1000.0, 0.0, -1000.0], [5e4, 5e4, 0.0]]])
    probs = scores.softmax(logits.copy())
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs[0, 0], ref_softmax(logits[0, 0]))
    np.testing.assert_allclose(probs[0, 1], [0.5, 0.5, 0.0])


def test_entropy_has_no_nan_when_probabilities_underflow_to_zero():
    probs = np.array([[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]])
    conf = scores.entropy_confidence(probs)
    assert np.isfinite(conf).all()
    assert conf[0, 0] == 1.0
    assert conf[0, 1] == pytest.approx(1 - np.log(2) / np.log(3))


def test_vote_counts_the_mode_of_the_exits_so_far():
    preds = np.array([[0, 1, 1, 0, 0]])
    np.testing.assert_allclose(scores.vote(preds, 2)[0], [1, 1 / 2, 2 / 3, 2 / 4, 3 / 5])


def test_patience_counts_consecutive_agreement():
    preds = np.array([[2, 2, 1, 1, 1, 2]])
    np.testing.assert_array_equal(scores.patience(preds)[0], [0, 1, 0, 1, 2, 0])


@given(arrays(np.float64, (7, 3, 4), elements=st.floats(-30, 30)))
def test_confidence_scores_lie_in_their_ranges(logits):
    data = eeopt.ExitData.from_logits(logits)
    for name in ("maxprob", "entropy", "margin", "vote"):
        s = data.score(name)
        assert np.all((s >= 0) & (s <= 1 + 1e-12)), name
    assert np.all(data.maxprob >= 1 / 4 - 1e-12)
