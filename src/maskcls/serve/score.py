"""Score a submission (ImageID,ans) against the true answers (TRUTH): the competition's ``ImageID,ans`` or
demo-data's truth/eval_truth.csv (``ImageID,...,label``). A pure core (``score_answers``: class arrays
in, figures out) with the CSV reading at its edge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import labels
from ..errors import UserError
from ..fileio import read_csv
from ..metrics import format_scores, per_class_f1, scored


def score_answers(true: np.ndarray, pred: np.ndarray, *, cutoffs: labels.AgeCutoffs = labels.AgeCutoffs()) -> dict:
    """true, pred: (N,) class indices in 0..NUM_CLASSES-1. Returns macro F1, accuracy, F1 per task,
    F1 and support per class, and the chance level of this class mix ('chance', 'at_or_below_chance')."""
    true, pred = np.asarray(true, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    targets = np.stack([np.asarray(t.of_class)[true] for t in labels.TASKS], axis=1)
    probs = np.eye(labels.NUM_CLASSES)[pred]  # one-hot: each task's answer is the class's own
    out = scored(targets, probs)
    f1, support = per_class_f1(targets, probs)
    out["per_class_f1"] = {name: {"f1": round(float(f), 4), "support": int(n)}
                           for name, f, n in zip(labels.class_names(cutoffs), f1, support)}
    out["photos"] = int(len(true))
    return out


def _classes(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values % 1 != 0) | (values < 0) | (values >= labels.NUM_CLASSES)
    if bad.any():
        line = bad.idxmax()
        raise UserError(f"{path}, line {line}: {column} must be a class 0..{labels.NUM_CLASSES - 1}, "
                        f"got {frame.loc[line, column]!r} ({int(bad.sum())} such row(s))")
    return values.to_numpy().astype(np.int64)


def read_answers(path: str | Path, *, truth: bool) -> pd.Series:
    """ImageID -> class. A truth file may be ``ImageID,ans`` or demo-data's ``ImageID,...,label``."""
    path = Path(path)
    frame = read_csv(path, ("ImageID",))
    column = "label" if truth and "label" in frame.columns else "ans"
    if column not in frame.columns:
        want = "ans (ImageID,ans) or label (demo-data's truth/eval_truth.csv)" if truth else "ans"
        raise UserError(f"{path}: missing column {want}; found {', '.join(frame.columns)}")
    dup = frame["ImageID"].duplicated()
    if dup.any():
        raise UserError(f"{path}, line {dup.idxmax()}: ImageID {frame.loc[dup.idxmax(), 'ImageID']} is listed twice")
    return pd.Series(_classes(frame, column, path), index=frame["ImageID"].to_numpy())


def score_submission(submission: str | Path, truth: str | Path) -> dict:
    """Score every photo of TRUTH; the submission must answer each of them, and nothing else."""
    sub, key = read_answers(submission, truth=False), read_answers(truth, truth=True)
    missing = key.index.difference(sub.index)
    extra = sub.index.difference(key.index)
    if len(missing) or len(extra):
        what = []
        if len(missing):
            what.append(f"{len(missing)} photo(s) of TRUTH have no answer (first: {missing[0]})")
        if len(extra):
            what.append(f"{len(extra)} answer(s) name photos the key does not hold (first: {extra[0]})")
        raise UserError(f"{submission} does not match {truth}: {'; '.join(what)}. Is it a submission for this eval set?")
    return score_answers(key.to_numpy(), sub.loc[key.index].to_numpy())


def format_score(result: dict) -> list[str]:
    """Human-readable lines of ``score_answers``'s result."""
    # evaluate's result says what was scored (split, people, models); score's is a submission's photos
    where = {"val": "the run's validation fold", "all": "every labelled photo", "oof": "out-of-fold (each photo by "
             "the fold model that never saw its person)"}.get(result.get("split"), "")
    of = (f" of {result['people']} people" if result.get("people") else "") + (f", {where}" if where else "") + (
        f", mean of {result['models']} models" if (result.get("models") or 1) > 1 and result.get("split") != "oof"
        else "")
    lines = [f"{result.get('photos', '?')} photos{of}: {format_scores(result, sep='; ')}"]
    if (result.get("chance") or {}).get("macro_f1") == 1.0:
        lines.append("TRUTH holds one class only (a placeholder such as eval/info.csv, all 0?): "
                     "these scores say nothing about the model")
    low = result.get("at_or_below_chance") or []
    if low:
        lines.append(f"at or below chance: {', '.join(low)} (a guess that never looks at the photo scores as well)")
    present = (result.get("classes") or {}).get("with_photos")
    lines.append("chance: the best a guess that never looks at the photo reaches on this class mix: macro F1 "
                 f"1 / the classes with photos{f' ({present})' if present else ''}, accuracy always the commonest "
                 "class" + (f"; the macro F1 averages {result['classes']['averaged']} classes (those with photos + "
                            "those predicted without photos, F1 0)" if present else ""))
    if not result.get("per_class_f1"):
        return lines
    lines.append("per class (F1, photos):")
    for name, row in result["per_class_f1"].items():
        lines.append(f"  {name:<28} {row['f1']:.4f}  {row['support']}" if row["support"]
                     else f"  {name:<28}    -    0 (no photos)")
    return lines


def pooled_oof_metrics(run: str | Path, data: str | Path) -> dict | None:
    """A ``--fold all`` run evaluated on the data it trained on: the metrics of its pooled out-of-fold
    probabilities (RUN/oof_probs.csv: each photo scored by the one fold model that never saw its person).
    None when RUN is not such a run or DATA is not its training data (its photos differ)."""
    from ..data.prepare import prepare
    from ..metrics import log_loss
    from ..training.runs import is_fold_parent, read_probs, read_run_config

    run = Path(run)
    if not is_fold_parent(run) or not (run / "oof_probs.csv").is_file():
        return None
    cfg = read_run_config(run)
    prepared = prepare(cfg, data, log=lambda s: None, folds=False)
    oof = read_probs(run / "oof_probs.csv")
    paths = prepared.table["path"].astype(str).to_numpy()
    if len(oof) != len(paths) or set(oof["path"].astype(str)) != set(paths):
        return None
    probs = oof.set_index(oof["path"].astype(str)).loc[paths, labels.class_prob_columns()].to_numpy(dtype=float)
    targets = prepared.score_targets
    out = {**scored(targets, probs), "val_loss": log_loss(targets, probs),
           "split": "oof", "photos": len(paths), "people": int(prepared.table["person"].nunique()),
           "models": int(cfg.data.folds)}
    if out["macro_f1"] is not None:
        f1, support = per_class_f1(targets, probs)
        out["per_class_f1"] = {name: {"f1": round(float(f), 4), "support": int(n)}
                               for name, f, n in zip(labels.class_names(cfg.score_cutoffs), f1, support)}
    return out
