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


def test_one_definition_of_each_class_count_everywhere():
    """per_class_f1.png said "over 16 classes" (true plus predicted) while summary.json's chance used the
    15 classes present: both counts are named (metrics.class_counts) and said where they are used."""
    from maskcls import labels
    from maskcls.metrics import class_counts, with_chance
    from maskcls.figures import _per_class_figure
    from maskcls.serve.score import format_score, score_answers

    true = np.array([0, 0, 1, 2, 3])
    pred = np.array([0, 5, 1, 2, 3])  # class 5 predicted, never true
    result = score_answers(true, pred)
    assert result["classes"] == {"with_photos": 4, "averaged": 5}
    assert result["chance"]["macro_f1"] == pytest.approx(1 / 4)  # the K of the chance level: with photos
    text = "\n".join(format_score(result))
    assert "1 / the classes with photos (4)" in text and "averages 5 classes" in text
    targets = np.stack([np.asarray(t.of_class)[true] for t in labels.TASKS], axis=1)
    probs = np.eye(labels.NUM_CLASSES)[pred]
    assert class_counts(targets, probs) == with_chance({"macro_f1": 0.5}, targets, probs)["classes"]
    names = labels.class_names()
    f1, support = np.zeros(18), np.bincount(true, minlength=18)
    title = _per_class_figure(f1, support, names, macro_f1=0.5, averaged=5, with_photos=4).axes[0].get_title()
    assert "over 5 classes (4 with photos + 1 predicted without photos, F1 0)" in title
    title = _per_class_figure(f1, support, names, macro_f1=0.5, averaged=4, with_photos=4).axes[0].get_title()
    assert "over the 4 classes with photos" in title
