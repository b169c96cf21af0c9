"""The face model's second opinion: out-of-fold probabilities from a logistic regression on dlib's
face descriptors, on the same person-level folds as the audit's networks, and the blend of the two.

Pure: arrays and tables in, tables out. The descriptor was trained for identity, on millions of
faces; a linear model on it reads gender and age far better than a network trained from scratch on a
few thousand of the user's photos (docs/faces.md). It is a second opinion, not a replacement:
where no face was found it has nothing to say, and masks (which an identity model is built to look
past) it reads no better than the networks.

Gender and age belong to a person: the model is fitted on one pooled descriptor per person (the mean
of their photos' unit descriptors, renormalised) with the person's majority given label, and a
person's probabilities go to all their photos. The mask is fitted and predicted per photo.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .. import labels

# Fewer labelled faces (people, for gender and age) than this in a fold's training part, or one class
# only: no opinion there. A regularised linear model on a descriptor that separates the classes well
# needs few examples; fewer than 10 would let one odd face decide.
MIN_FIT = 10
# The blend rules benchmarks/real_photos.py compares (docs/audit.md, "The face model's second opinion"). The
# default, tempered, had the best mean top-k precision over the four fields of the real development set
# (3 seeds x gender, mask on masked faces, gender, age on UTKFace: 0.545, tied with face; quality 0.518,
# odds 0.533, mean 0.49), and the only blend gain on masks whose interval clears zero with face's
# (+0.05 [+0.01, +0.09] over the networks). Chosen on those same seeds: a screen, not an independent test.
BLENDS: dict[str, str] = {
    "tempered": "weights proportional to each source's quality on the field (its gate figure), after each source's "
                "probabilities are shrunk toward uniform by its quality (p -> q p + (1 - q) / K), photos without "
                "a face included: a weakly read source speaks less surely",
    "quality": "weights proportional to each source's quality on the field, face 0 where it reads the field no "
               "better than chance",
    "odds": "weights proportional to each source's quality odds, q / (1 - q): a source that reads a field nearly "
            "perfectly outweighs a fair one by more than their qualities' ratio",
    "mean": "the mean of the two sources' probabilities",
    "face": "the face model alone where it has a face, the networks elsewhere",
    "cnn": "the networks alone (the face model shown on the cards, not used in the scores)",
}
DEFAULT_BLEND = "tempered"


def prob_columns(task: labels.Task, prefix: str = "p_face_") -> list[str]:
    """The columns of a source's per-task probabilities: p_face_<task>_0 .. k-1 by default."""
    return [f"{prefix}{task.name}_{k}" for k in range(task.size)]


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def _fit_predict(x_fit: np.ndarray, y_fit: np.ndarray, x_new: np.ndarray, k: int) -> np.ndarray | None:
    """(n_new, k) probabilities from a standardised logistic regression, or None when the fit part is
    too small or holds one class. Classes weighted by inverse frequency: the gate scores balanced
    accuracy, and the rare 60+ group must not vanish."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(y_fit) < MIN_FIT or len(np.unique(y_fit)) < 2 or not len(x_new):
        return None
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on tiny folds
        model.fit(x_fit, y_fit)
    out = np.zeros((len(x_new), k))
    out[:, model.classes_] = model.predict_proba(x_new)
    return out


def face_opinion(table: pd.DataFrame, folds: np.ndarray, descriptors: np.ndarray, *,
                 fields: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Out-of-fold face-model probabilities for every photo of ``table``.

    table : N rows with ``path``, ``person`` and each task's given answer (labels.TASKS' ``column``,
        NaN unknown), as data.table builds it.
    folds : (N,) person-level fold per row (the audit's folds: no person is fitted and predicted).
    descriptors : (N, 128), NaN rows where no face was found.
    Returns a table with ``path`` and ``p_face_<task>_<k>`` per task (NaN where the face model has no
    opinion: no face, or too few faces to fit that fold).
    """
    tasks = [t for t in labels.TASKS if fields is None or t.field in fields]
    n = len(table)
    has = ~np.isnan(descriptors).any(axis=1)
    unit = np.zeros_like(descriptors, dtype=float)
    unit[has] = _unit(descriptors[has].astype(float))
    out = pd.DataFrame({"path": table["path"].to_numpy()})
    idx, p_has, p_vec, p_fold = _people(table, unit, has, folds)
    for task in tasks:
        given = pd.to_numeric(table[task.column], errors="coerce").to_numpy(dtype=float)
        probs = np.full((n, task.size), np.nan)
        if task.per_person:
            p_lab = np.full(len(idx), np.nan)
            for j, i in enumerate(idx):
                lab = given[i][~np.isnan(given[i])].astype(int)
                if len(lab):
                    p_lab[j] = np.bincount(lab).argmax()
            for f in np.unique(folds):
                fit = p_has & ~np.isnan(p_lab) & (p_fold != f)
                new = p_has & (p_fold == f)
                pred = _fit_predict(p_vec[fit], p_lab[fit].astype(int), p_vec[new], task.size)
                if pred is None:
                    continue
                for j, row in zip(np.flatnonzero(new), pred):
                    probs[idx[j]] = row
        else:
            for f in np.unique(folds):
                fit = has & ~np.isnan(given) & (folds != f)
                new = has & (folds == f)
                pred = _fit_predict(unit[fit], given[fit].astype(int), unit[new], task.size)
                if pred is not None:
                    probs[new] = pred
        for k, col in enumerate(prob_columns(task)):
            out[col] = probs[:, k]
    return out


def _people(table: pd.DataFrame, unit: np.ndarray, has: np.ndarray,
            folds: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """One pooled descriptor per person, shared by every per-person task (gender, age): the unit mean of
    their photos' unit descriptors. Returns (each person's rows, has a face, descriptor, fold)."""
    groups = pd.Series(range(len(table))).groupby(table["person"].astype(str).to_numpy(), sort=True).indices
    idx = list(groups.values())
    p_has = np.array([has[i].any() for i in idx])
    p_vec = np.zeros((len(idx), unit.shape[1]))
    for j, i in enumerate(idx):
        if p_has[j]:
            p_vec[j] = unit[i][has[i]].mean(axis=0)
    p_vec[p_has] = _unit(p_vec[p_has])
    p_fold = np.array([folds[i[0]] for i in idx])
    return idx, p_has, p_vec, p_fold


def blend_weight(rule: str, field: str, quality_cnn: float | None, quality_face: float | None) -> float:
    """The face model's weight in the blend of ``field`` (the networks get 1 - it)."""
    if rule not in BLENDS:
        raise ValueError(f"unknown blend {rule!r}; expected one of {', '.join(BLENDS)}")
    if quality_face is None or not np.isfinite(quality_face):
        return 0.0
    if rule == "cnn":
        return 0.0
    if rule == "face":
        return 1.0
    if rule == "mean":
        return 0.5
    qc = max(0.0, quality_cnn) if quality_cnn is not None and np.isfinite(quality_cnn) else 0.0
    qf = max(0.0, quality_face)
    if rule == "odds":
        qc, qf = (min(q, 0.99) / (1 - min(q, 0.99)) for q in (qc, qf))
    return qf / (qc + qf) if qc + qf > 0 else 0.0


def _shrink(p: np.ndarray, quality: float) -> np.ndarray:
    q = min(max(quality, 0.0), 1.0)
    return q * p + (1 - q) / p.shape[1]


def blend(oof: pd.DataFrame, face: pd.DataFrame, weights: dict[str, float],
          temper: dict[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """``oof`` (the networks' table, rank.find_issues' input) with each field's probabilities, and their
    mirror-image columns, replaced by (1 - w) * networks + w * face wherever the face model has an
    opinion. Linear, so rank's average of a photo and its mirror image stays the same average.
    ``temper`` (field -> (networks' quality, face model's quality)) first shrinks each source's
    probabilities toward uniform by its quality, on every photo (the "tempered" rule)."""
    merged = oof.merge(face, on="path", how="left")
    out = oof.copy()
    for task in labels.TASKS:
        w = weights.get(task.field, 0.0)
        cols = prob_columns(task)
        tq = (temper or {}).get(task.field)
        if (w <= 0 and tq is None) or not all(c in merged.columns for c in cols):
            continue
        f = merged[cols].to_numpy(dtype=float)
        ok = ~np.isnan(f).any(axis=1)
        if tq is not None:
            f = _shrink(f, tq[1])
        for prefix in ("p_", "hflip_"):
            own = prob_columns(task, prefix)
            if not all(c in out.columns for c in own):
                continue
            values = np.array(out[own].apply(pd.to_numeric, errors="coerce"), dtype=float)  # a writable copy
            if tq is not None:
                values = _shrink(values, tq[0])
            values[ok] = (1 - w) * values[ok] + w * f[ok]
            out[own] = values
    return out


def tempering(rule: str, networks: dict[str, float], face: dict[str, float]) -> dict[str, tuple[float, float]] | None:
    """The ``temper`` argument of ``blend`` for ``rule``: per field where the face model has a quality,
    (the networks' quality, 0 when unknown; the face model's), or None for a rule that does not temper."""
    if rule != "tempered":
        return None
    return {f: (0.0 if pd.isna(networks.get(f)) else float(networks[f]), float(q)) for f, q in face.items()}


def face_view(oof: pd.DataFrame, face: pd.DataFrame, field: str) -> pd.DataFrame:
    """The rows of ``oof`` where the face model has an opinion on ``field``, with its probabilities in
    place of the networks' (mirror images and margins dropped): ``rank.field_quality`` of the face
    model alone. Empty when it has no opinion anywhere."""
    task = next(t for t in labels.TASKS if t.field == field)
    cols, own = prob_columns(task), labels.task_prob_columns(task)
    base = oof.drop(columns=[c for c in oof.columns if c.startswith(("hflip_", "margin_"))])
    merged = base.merge(face[["path", *cols]], on="path", how="left")
    ok = ~merged[cols].isna().any(axis=1).to_numpy()
    merged[own] = merged[cols].to_numpy(dtype=float)
    return merged.loc[ok, list(base.columns)].reset_index(drop=True)
