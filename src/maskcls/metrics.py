"""Macro F1 over the 18 classes (the competition metric), F1 per task, accuracy, confusion matrix.

Targets are (N, len(TASKS)) integer arrays, one column per task in ``labels.TASKS`` order, with -1
where a label is unknown: the 18-class metrics use rows with every task known; each task's F1 uses
rows where it is known.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

from . import labels

METRIC_KEYS = ("macro_f1", "accuracy", *(f"{t.name}_f1" for t in labels.TASKS))


def full_labels(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask of fully labelled rows, their 18-class labels): the rows every 18-class figure uses."""
    targets = np.asarray(targets)
    full = (targets >= 0).all(1)
    return full, labels.encode_targets(targets[full])


def compute_metrics(targets: np.ndarray, probs: np.ndarray) -> dict[str, float | None]:
    """targets (N, 3) with -1 for unknown; probs (N, 18). Metrics that have no labelled rows are None."""
    targets = np.asarray(targets)
    pred = probs.argmax(1)
    full, true = full_labels(targets)
    out: dict[str, float | None] = {k: None for k in METRIC_KEYS}
    if full.any():
        out["macro_f1"] = float(f1_score(true, pred[full], average="macro", zero_division=0))
        out["accuracy"] = float((true == pred[full]).mean())
    marginals = labels.task_probs(probs)
    for j, task in enumerate(labels.TASKS):
        known = targets[:, j] >= 0
        if known.any():
            pred_task = marginals[task.name][known].argmax(1)
            out[f"{task.name}_f1"] = float(f1_score(targets[known, j], pred_task, average="macro", zero_division=0))
    return out


def selection_score(metrics: dict) -> float:
    """The checkpoint-selection score: macro F1 over the 18 classes; where validation has no fully
    labelled photo (mixed partial manifests), the mean of the per-task F1s that exist."""
    if metrics.get("macro_f1") is not None:
        return float(metrics["macro_f1"])
    tasks = [metrics[f"{t.name}_f1"] for t in labels.TASKS if metrics.get(f"{t.name}_f1") is not None]
    return float(np.mean(tasks)) if tasks else 0.0


def per_class_f1(targets: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F1 of each of the 18 classes, support of each) over fully labelled rows."""
    full, true = full_labels(targets)
    pred = probs[full].argmax(1)
    f1 = f1_score(true, pred, labels=list(range(labels.NUM_CLASSES)), average=None, zero_division=0)
    return np.asarray(f1, dtype=float), np.bincount(true, minlength=labels.NUM_CLASSES)


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
