import numpy as np
import pytest
from sklearn.metrics import f1_score

from maskcls import labels
from maskcls.metrics import compute_metrics, confusion


def one_hot(classes):
    p = np.full((len(classes), 18), 0.001)
    p[np.arange(len(classes)), classes] = 1.0
    return p / p.sum(1, keepdims=True)


def test_metrics_match_sklearn_and_tasks():
    true = np.array([0, 3, 7, 17, 17, 9])
    pred = np.array([0, 4, 7, 17, 11, 9])
    targets = np.stack(labels.decode(true), 1)
    m = compute_metrics(targets, one_hot(pred))
    assert m["macro_f1"] == pytest.approx(f1_score(true, pred, average="macro"))
    assert m["accuracy"] == pytest.approx(4 / 6)
    pm, pg, pa = labels.decode(pred)
    assert m["mask_f1"] == pytest.approx(f1_score(targets[:, 0], pm, average="macro"))
    assert m["gender_f1"] == pytest.approx(f1_score(targets[:, 1], pg, average="macro"))
    assert m["age_f1"] == pytest.approx(f1_score(targets[:, 2], pa, average="macro"))
    cm = confusion(targets, one_hot(pred))
    assert cm.shape == (18, 18) and cm.sum() == 6 and cm[17, 11] == 1


def test_partial_labels_use_known_rows_only():
    targets = np.array([[0, -1, 1], [2, 1, -1], [1, 0, 0]])
    m = compute_metrics(targets, one_hot(np.array([labels.encode(0, 1, 1), labels.encode(2, 1, 0), labels.encode(1, 0, 0)])))
    assert m["accuracy"] == 1.0  # only the fully labelled third row counts
    assert m["gender_f1"] == 1.0 and m["mask_f1"] == 1.0 and m["age_f1"] == 1.0
    none = compute_metrics(np.array([[0, -1, -1]]), one_hot(np.array([0])))
    assert none["macro_f1"] is None and none["gender_f1"] is None and none["mask_f1"] == 1.0
