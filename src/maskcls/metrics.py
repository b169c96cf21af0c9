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


def class_counts(targets: np.ndarray, probs: np.ndarray) -> dict[str, int]:
    """The two class counts every figure and file names, one definition each:
    ``with_photos``: the 18-way classes that have photos among the fully labelled ones (the K of the
    chance level 1 / K); ``averaged``: the classes the macro F1 averages, those with photos plus any
    predicted without photos (sklearn's ``average="macro"`` counts each of those as an F1 of 0)."""
    full, true = full_labels(targets)
    present = set(true.tolist())
    return {"with_photos": len(present), "averaged": len(present | set(probs[full].argmax(1).tolist()))}


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


def chance_metrics(targets: np.ndarray) -> dict[str, float | None]:
    """The scores a guess that never looks at the photo reaches on this class mix, keyed like
    ``compute_metrics``. targets (N, len(TASKS)) with -1 for unknown; None where no row is labelled.

    Macro F1: 1 / K, K the classes (of ``labels.NUM_CLASSES``, or of each task's ``size``) present in
    the truth. That is the expected macro F1 of guessing the classes at their own frequencies, and no
    photo-blind guess does better (each class's F1 2pq/(p+q) is at most (p+q)/2; the sum of p and of q
    is 1 each; the mean runs over at least K classes). Accuracy: always answering the commonest class.
    A score at or below these says the model has learnt nothing usable about that answer."""
    targets = np.asarray(targets)
    out: dict[str, float | None] = {k: None for k in METRIC_KEYS}
    full, true = full_labels(targets)
    if full.any():
        counts = np.bincount(true, minlength=labels.NUM_CLASSES)
        out["macro_f1"] = 1.0 / int((counts > 0).sum())
        out["accuracy"] = float(counts.max() / counts.sum())
    for j, task in enumerate(labels.TASKS):
        known = targets[:, j][targets[:, j] >= 0]
        if len(known):
            out[f"{task.name}_f1"] = 1.0 / int((np.bincount(known, minlength=task.size) > 0).sum())
    return out


def at_or_below_chance(metrics: dict, chance: dict) -> list[str]:
    """The metric names whose score is at or below its chance level (a tiny tolerance for rounding)."""
    # A chance level of 1 means one class only: any guess is perfect there, so "at or below chance"
    # would call a perfect score a failure; score() says that the key holds one class instead.
    return [k for k in METRIC_KEYS if metrics.get(k) is not None and chance.get(k) is not None
            and chance[k] < 1.0 - 1e-9 and metrics[k] <= chance[k] + 1e-9]


def with_chance(metrics: dict, targets: np.ndarray, probs: np.ndarray | None = None) -> dict:
    """``metrics`` plus 'chance' (``chance_metrics`` of the same rows) and 'at_or_below_chance'; with
    ``probs``, 'classes' too (``class_counts``: the K of the chance level and the classes the macro F1
    averaged), where a macro F1 exists."""
    chance = chance_metrics(targets)
    out = {**metrics, "chance": chance, "at_or_below_chance": at_or_below_chance(metrics, chance)}
    if probs is not None:
        out["classes"] = class_counts(targets, probs) if metrics.get("macro_f1") is not None else None
    return out


def scored(targets: np.ndarray, probs: np.ndarray) -> dict:
    """``compute_metrics`` of ``probs`` with their chance level and class counts (``with_chance``): what
    summary.json, evaluate, score and the out-of-fold figures report."""
    return with_chance(compute_metrics(targets, probs), targets, probs)


def format_scores(metrics: dict, keys: tuple[str, ...] = METRIC_KEYS, sep: str = ", ") -> str:
    """'macro_f1 0.4123 (chance 0.0556), ...'; a score at or below chance says so."""
    chance = metrics.get("chance") or {}
    low = set(metrics.get("at_or_below_chance") or ())
    parts = []
    for k in keys:
        if metrics.get(k) is None:
            continue
        text = f"{k} {metrics[k]:.4f}"
        if chance.get(k) is not None:
            text += f" (chance {chance[k]:.4f}{': AT OR BELOW CHANCE' if k in low else ''})"
        parts.append(text)
    return sep.join(parts)
