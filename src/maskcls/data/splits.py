"""Person-level stratified folds: every photo of a person lands in the same fold, so validation never
sees a face the model trained on (the photo-level split of the common baseline leaked faces)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from .. import labels
from ..errors import UserError


def _strata(table: pd.DataFrame) -> np.ndarray:
    """Stratify on the 18-class label; photos with an unknown label get a stratum of their own,
    built from the labels they do have, so partially labelled manifests split sensibly too."""
    out = []
    answers = zip(*(table[t.column] for t in labels.TASKS))
    for lab, values in zip(table["label"], answers):
        if not pd.isna(lab):
            out.append(f"c{int(lab)}")
        else:
            out.append("p" + "".join("?" if pd.isna(v) else str(int(v)) for v in values))
    return np.array(out)


def assign_folds(table: pd.DataFrame, *, k: int = 5, seed: int = 0, groups: np.ndarray | None = None) -> np.ndarray:
    """Fold index (0..k-1) for each row of ``table``; deterministic for a given table and seed.

    groups: (N,) what must share a fold; default the person. Identity groups (faces.identity) keep
    person ids whose faces match in one fold too. Without such matches they equal the persons, and
    the folds are those of the default."""
    if k < 2:
        raise UserError(f"folds must be at least 2, got {k}")
    n_people = table["person"].nunique()
    if n_people < k:
        raise UserError(f"cannot split {n_people} people into {k} folds; use fewer folds or more people")
    folds = np.full(len(table), -1, dtype=np.int64)
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    groups = table["person"].to_numpy() if groups is None else np.asarray(groups)
    with warnings.catch_warnings():
        # Rare strata (the 60+ classes in a small set) have fewer members than folds; sklearn warns,
        # and spreading them as evenly as possible is exactly what we want anyway.
        warnings.simplefilter("ignore", UserWarning)
        try:
            for fold, (_, val_idx) in enumerate(cv.split(np.zeros(len(table)), _strata(table), groups)):
                folds[val_idx] = fold
        except ValueError as exc:  # sklearn: a stratum too small for k folds
            raise UserError(f"cannot split {n_people} people into {k} person-level folds ({exc}); "
                            "use fewer folds (data.folds) or more people") from None
    return folds


def train_val_indices(table: pd.DataFrame, *, fold: int = 0, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the training and validation parts when ``fold`` is held out."""
    if not 0 <= fold < k:
        raise UserError(f"fold must be between 0 and {k - 1}, got {fold}")
    folds = assign_folds(table, k=k, seed=seed)
    return np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
