"""Spec section 8: every bad input gets a ValueError/TypeError that names the argument."""

import numpy as np
import pytest
from conftest import make_multi_exit

import eeopt

LOGITS, LABELS = make_multi_exit(n=50, n_exits=3, n_classes=4)
COSTS = [1.0, 2.0, 3.0]


def _bad(**changes):
    args = {"logits": LOGITS, "labels": LABELS, "costs": COSTS, "method": "maxprob"}
    args.update(changes)
    return args


CASES = [
    ("2-d logits", _bad(logits=LOGITS[:, 0]), ValueError, "logits"),
    ("4-d logits", _bad(logits=LOGITS[None]), ValueError, "logits"),
    ("empty logits", _bad(logits=LOGITS[:0], labels=LABELS[:0]), ValueError, "empty"),
    ("one class", _bad(logits=LOGITS[:, :, :1]), ValueError, "2 classes"),
    ("zero exits", _bad(logits=LOGITS[:, :0], costs=[]), ValueError, "logits"),
    (
        "nan logits",
        _bad(logits=np.where(np.eye(4)[None, None, 0] > 0, np.nan, LOGITS)),
        ValueError,
        "NaN",
    ),
    ("inf logits", _bad(logits=LOGITS * np.inf), ValueError, "logits"),
    ("string logits", _bad(logits="x.npz"), TypeError, "logits"),
    ("object logits", _bad(logits=np.array([[[object()]]])), TypeError, "logits"),
    ("labels too short", _bad(labels=LABELS[:-1]), ValueError, "labels"),
    ("labels 2-d", _bad(labels=LABELS[:, None]), ValueError, "labels"),
    ("labels float", _bad(labels=LABELS.astype(float)), TypeError, "labels"),
    ("labels out of range", _bad(labels=LABELS + 4), ValueError, "labels"),
    ("negative labels", _bad(labels=LABELS - 1), ValueError, "labels"),
    ("costs wrong length", _bad(costs=[1.0, 2.0]), ValueError, "costs"),
    ("costs decreasing", _bad(costs=[1.0, 3.0, 2.0]), ValueError, "non-decreasing"),
    ("costs zero", _bad(costs=[0.0, 1.0, 2.0]), ValueError, "costs"),
    ("costs negative", _bad(costs=[-1.0, 1.0, 2.0]), ValueError, "costs"),
    ("costs nan", _bad(costs=[1.0, np.nan, 2.0]), ValueError, "costs"),
    ("budget too low", _bad(budget=0.5), ValueError, "budget"),
    ("budget too high", _bad(budget=3.5), ValueError, "budget"),
    ("budget nan", _bad(budget=np.nan), ValueError, "budget"),
    ("budget string", _bad(budget="2"), TypeError, "budget"),
    ("unknown method", _bad(method="nope"), ValueError, "method"),
    ("no method", _bad(method=None), ValueError, "method"),
    ("unknown option", _bad(thresh=0.5), ValueError, "thresh"),
    ("two targets", _bad(budget=2.0, threshold=0.5), ValueError, "at most one"),
    ("unknown target", _bad(target="speed"), ValueError, "target"),
    ("tolerance out of range", _bad(tolerance=2.0), ValueError, "tolerance"),
    ("tolerance with budget", _bad(budget=2.0, tolerance=0.1), ValueError, "tolerance"),
    ("threshold nan", _bad(threshold=np.nan), ValueError, "threshold"),
    ("threshold wrong length", _bad(threshold=[0.5] * 5), ValueError, "threshold"),
    ("threshold last not -inf", _bad(threshold=[0.5, 0.5, 0.5]), ValueError, "threshold"),
    ("bad input kind", _bad(input="probabilities"), ValueError, "input"),
    ("patience zero", _bad(method="patience", patience=0), ValueError, "patience"),
    ("msdnet without budget", _bad(method="msdnet"), ValueError, "budget"),
    ("msdnet bad score", _bad(method="msdnet", budget=2.0, score="x"), ValueError, "score"),
    ("target without labels", _bad(labels=None), ValueError, "labels"),
]


@pytest.mark.parametrize(("case", "kwargs", "exc", "needle"), CASES, ids=[c[0] for c in CASES])
def test_fit_rejects_bad_input_naming_the_argument(case, kwargs, exc, needle):
    with pytest.raises(exc, match=needle):
        eeopt.fit(**kwargs)


def test_probs_input_must_be_probabilities():
    with pytest.raises(ValueError, match="probs"):
        eeopt.ExitData(LOGITS, input="probs")
    probs = eeopt.ExitData(LOGITS).probs * 1.01  # rows sum to 1.01
    with pytest.raises(ValueError, match="summing to 1"):
        eeopt.ExitData(probs, input="probs")


def test_transposed_cache_gets_a_message_that_says_how_to_fix_it():
    transposed = LOGITS.transpose(1, 0, 2)  # (n_exits, n_samples, n_classes)
    with pytest.raises(ValueError, match=r"transpose\(1, 0, 2\)"):
        eeopt.ExitData(transposed, LABELS, COSTS)


def test_evaluating_on_other_exits_or_classes_is_an_error():
    policy = eeopt.fit(LOGITS, LABELS, COSTS, method="maxprob")
    with pytest.raises(ValueError, match="3 exits and 4 classes"):
        policy.evaluate(LOGITS[:, :2], LABELS)
    with pytest.raises(ValueError, match="classes"):
        policy.predict(LOGITS[:, :, :3])


def test_metadata_must_be_json():
    with pytest.raises(ValueError, match="metadata"):
        eeopt.ExitData(LOGITS, metadata={"x": object()})
    with pytest.raises(TypeError, match="metadata"):
        eeopt.ExitData(LOGITS, metadata=[1])


def test_quantile_thresholds_validates_fractions():
    scores = np.random.default_rng(0).random((10, 3))
    with pytest.raises(ValueError, match="fractions"):
        eeopt.quantile_thresholds(scores, [0.5, 0.6, 0.1])
    with pytest.raises(ValueError, match="fractions"):
        eeopt.quantile_thresholds(scores, [0.5, 0.5])
    with pytest.raises(ValueError, match="scores"):
        eeopt.quantile_thresholds(scores[:, :, None], [0.5, 0.25, 0.25])


def test_load_policy_rejects_other_json(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"a": 1}')
    with pytest.raises(ValueError, match="eeopt policy"):
        eeopt.load_policy(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        eeopt.load_policy(path)
