"""Macro F1 over the 18 classes (the competition metric), F1 per task, accuracy, confusion matrix.

Targets are (N, 3) integer arrays of (mask, gender, age_group) with -1 where a label is unknown:
the 18-class metrics use rows with all three known; each task's F1 uses rows where it is known.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

from . import labels

METRIC_KEYS = ("macro_f1", "accuracy", "mask_f1", "gender_f1", "age_f1")


def task_probs(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Marginal probabilities per task from (N, 18) class probabilities."""
    out = {}
    for task, idx, n in (("mask", labels.CLASS_MASK, 3), ("gender", labels.CLASS_GENDER, 2), ("age", labels.CLASS_AGE, 3)):
        out[task] = np.stack([probs[:, idx == k].sum(1) for k in range(n)], axis=1)
    return out


def full_labels(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask of fully labelled rows, their 18-class labels): the rows every 18-class figure uses."""
    targets = np.asarray(targets)
    full = (targets >= 0).all(1)
    return full, labels.encode(targets[full, 0], targets[full, 1], targets[full, 2])


def compute_metrics(targets: np.ndarray, probs: np.ndarray) -> dict[str, float | None]:
    """targets (N, 3) with -1 for unknown; probs (N, 18). Metrics that have no labelled rows are None."""
    targets = np.asarray(targets)
    pred = probs.argmax(1)
    full, true = full_labels(targets)
    out: dict[str, float | None] = {k: None for k in METRIC_KEYS}
    if full.any():
        out["macro_f1"] = float(f1_score(true, pred[full], average="macro", zero_division=0))
        out["accuracy"] = float((true == pred[full]).mean())
    for j, (task, p) in enumerate(task_probs(probs).items()):
        known = targets[:, j] >= 0
        if known.any():
            out[f"{task}_f1"] = float(f1_score(targets[known, j], p[known].argmax(1), average="macro", zero_division=0))
    return out


def confusion(targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """18x18 counts, rows = true class, columns = predicted, over fully labelled rows."""
    full, true = full_labels(targets)
    return confusion_matrix(true, probs[full].argmax(1), labels=list(range(labels.NUM_CLASSES)))


def log_loss(targets: np.ndarray, probs: np.ndarray) -> float | None:
    """Mean negative log-likelihood of the true class over fully labelled rows (None if there are none)."""
    full, true = full_labels(targets)
    if not full.any():
        return None
    p_true = probs[full][np.arange(len(true)), true]
    return float(-np.log(np.clip(p_true, 1e-12, 1)).mean())
