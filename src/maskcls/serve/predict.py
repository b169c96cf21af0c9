"""Use trained runs: evaluate them, write a submission, classify single photos. Each accepts one run,
a `--fold all` run (all its fold models) or several runs, whose probabilities are averaged."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import labels
from ..photos import decode_error
from ..data.fingerprint import refuse_other_data, trained_on_count
from ..data.table import PHOTO_COL, describe, load_eval, raise_on_fatal, refuse_output_inside
from ..errors import UserError
from ..fileio import atomic_path, check_replaceable, check_writable, write_csv
from ..metrics import log_loss, per_class_f1, scored
from .backends import SPLITS, check_device

Runs = str | Path | Sequence[str | Path]


def load_predictor(run: Runs, *, device: str = "auto", tta: str = "none", workers: int = 0, backend: str = "torch"):
    """The predictor for ``backend``: ONNX files through serve.onnx_predictor, which imports no torch (so
    `predict --backend onnx` starts fast); anything else through ``Predictor``."""
    check_device(backend, device)
    if backend == "onnx":
        from .onnx_predictor import OnnxPredictor

        return OnnxPredictor(run, tta=tta)
    from .predictor import Predictor

    return Predictor(run, device=device, tta=tta, workers=workers, backend=backend)


def evaluate_run(run: Runs, data: str | Path, *, split: str = "auto", tta: str = "none", device: str = "auto",
                 workers: int = 0, backend: str = "torch", progress: bool = True) -> dict:
    """Metrics of the run's best model (or the ensemble's mean) on DATA.

    split: ``val`` the run's own validation fold (DATA must be the data it trained on), ``all`` every
    labelled photo of DATA, ``auto`` val when DATA is the training data, else all. An ensemble has no
    validation fold of its own (each photo was trained on by some member), so it takes ``all`` on other data.
    """
    if split not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split != "all" and isinstance(run, (str, Path)):
        from .score import pooled_oof_metrics

        pooled = pooled_oof_metrics(run, data)  # a --fold all run on its own data: its out-of-fold figures
        if pooled is not None:
            return pooled
    predictor = load_predictor(run, device=device, tta=tta, workers=workers, backend=backend)
    cfg = predictor.config
    split = _check_split(run, data, predictor, split)
    from ..data.prepare import prepare

    prepared = prepare(cfg, data, log=lambda s: None, folds=split == "val")
    table = prepared.table
    if split == "val":
        refuse_other_data(_runs_text(run), getattr(predictor.members[0], "data_identity", None), prepared.identity(), data)
        table = table.iloc[prepared.split(cfg.data.fold)[1]]
    else:
        _refuse_training_photos(run, predictor, prepared.photo_digests()[table.index.to_numpy()])
    targets = prepared.score_targets[table.index.to_numpy()]
    probs = predictor.predict_proba(table["path"].tolist(), progress=progress)
    out = {**scored(targets, probs), "val_loss": log_loss(targets, probs), "split": split,
           "photos": len(table), "people": int(table["person"].nunique()), "models": len(predictor.members)}
    if out["macro_f1"] is not None:
        f1, support = per_class_f1(targets, probs)
        out["per_class_f1"] = {name: {"f1": round(float(f), 4), "support": int(n)}
                               for name, f, n in zip(labels.class_names(cfg.score_cutoffs), f1, support)}
    return out


def _check_split(run: Runs, data, predictor, split: str) -> str:
    """The split to score (``auto`` resolved), refusing the ones that would score people a model trained
    on or that do not exist: a final fit's own data, an ensemble's "validation fold", a run's --split val
    on other data."""
    trained_on = {m.data for m in predictor.members}
    n_models = predictor.n_models
    same = describe(data) in trained_on
    if split == "auto":
        split = "val" if same else "all"
    everyone = [m for m in predictor.members if m.config.data.fold is None and describe(data) == m.data]
    if everyone and split != "all":
        # a final fit (--fold none) held no one out: on its own data there is no person it has not seen
        raise UserError(f"{everyone[0].source} trained on every person of {data} (--fold none): no one is held out "
                        "to score it on. Score it on other labelled people; the cross-validated estimate of its "
                        "recipe is its --fold all run's (`maskcls evaluate CV_RUN DATA`)")
    if split == "val" and n_models > 1:
        raise UserError(f"{data}: an ensemble of {n_models} models has no validation fold of its own "
                        "(each photo trained some member); a --fold all run's cv_summary.json holds its out-of-fold "
                        "figures, or evaluate on other labelled data")
    if split == "all" and same and n_models > 1:
        raise UserError(f"{data} is the data these models trained on: the figures would be inflated; "
                        "evaluate an ensemble on other labelled data")
    if split == "val" and not same:
        raise UserError(f"{data} is not the data {_runs_text(run)} was trained on; --split val scores the run's "
                        f"validation fold, so give that data ({', '.join(map(str, trained_on))}). --split all scores "
                        "other labelled data")
    return split


def _runs_text(run: Runs) -> str:
    """A run or runs as a user wrote them: 'r1', or 'r1, r2' for an ensemble (not a Python list)."""
    return str(run) if isinstance(run, (str, Path)) else ", ".join(str(r) for r in run)


def _refuse_training_photos(run: Runs, predictor, digests: np.ndarray) -> None:
    """Scoring photos a model learned from inflates its figures, under any path: the run's checkpoints
    hold the fingerprints of their training photos (runs from before they did are not checked)."""
    seen = trained_on_count(digests, predictor.members)
    if seen:
        # a final fit (--fold none) has no validation fold to point to
        val = ("" if any(m.config.data.fold is None for m in predictor.members) else
               ", or a single run on its own validation fold with --split val and the data it was trained on")
        raise UserError(f"{seen} of the {len(digests)} photos to score are photos {_runs_text(run)} trained on (the same files, "
                        f"found by content); the figures would be inflated. Evaluate on other labelled data{val}")


def _dataset_of(eval_dir: str | Path) -> Path:
    """The data a submission must not be written into: the dataset root when EVAL_DIR is its eval/ folder
    (beside train/), else the folder given."""
    folder = Path(eval_dir)
    if folder.name == "eval" and (folder.parent / "train").is_dir():
        return folder.parent
    return folder


def predict_submission(run: Runs, eval_dir: str | Path, out: str | Path, *, tta: str = "none",
                       force: bool = False, probs_out: str | Path | None = None, device: str = "auto",
                       workers: int = 0, backend: str = "torch", progress: bool = True,
                       allow_outside: bool = False) -> dict:
    """Fill eval/info.csv's ``ans`` column: same rows, same order, written atomically. Eval photos that
    link out of the eval folder are refused unless ``allow_outside``."""
    out = Path(out)
    if probs_out is not None and Path(probs_out).resolve() == out.resolve():
        raise UserError(f"--probs {probs_out} is the submission file itself; give it another name")
    frame, problems = load_eval(eval_dir, allow_outside=allow_outside)
    raise_on_fatal(problems, eval_dir, hint=False)
    for target in (out, probs_out):  # said now, not after every photo was predicted
        if target is not None:
            check_writable(target)
    if frame.empty:
        raise UserError(f"{eval_dir}: info.csv lists no photos; there is nothing to predict")
    predictor = load_predictor(run, device=device, tta=tta, workers=workers, backend=backend)
    _refuse_inputs(run, eval_dir, frame, predictor, out=out, probs_out=probs_out)
    check_replaceable(out, force=force, what="--out")
    if probs_out is not None:
        check_replaceable(probs_out, force=force, what="--probs")
    probs = predictor.predict_proba(frame[PHOTO_COL].tolist(), progress=progress)
    submission = frame.drop(columns=[PHOTO_COL]).assign(ans=probs.argmax(1))
    if probs_out is not None:
        table = pd.DataFrame(probs.round(6), columns=labels.class_prob_columns())
        write_csv(probs_out, pd.concat([frame[["ImageID"]], table], axis=1))
    with atomic_path(out) as tmp:
        submission.to_csv(tmp, index=False)
    counts = np.bincount(submission["ans"], minlength=labels.NUM_CLASSES)
    return {"out": str(out), "rows": len(submission), "class_counts": counts.tolist(), "models": len(predictor.members)}


def _refuse_inputs(run: Runs, eval_dir, frame: pd.DataFrame, predictor, *, out: Path, probs_out) -> None:
    """--out and --probs must be new .csv files or old submissions: never an input (info.csv, a photo, a
    run's files, the training labels), a dataset's labels file, or a file inside the eval data."""
    # --force replaces an old submission, never an input: info.csv, a photo, a run's files or the
    # training labels. Submissions are CSV files, which also keeps --out off checkpoints and photos.
    info = Path(eval_dir) / "info.csv" if Path(eval_dir).is_dir() else Path(eval_dir)
    inputs = {info.resolve(), *(Path(p).resolve() for p in frame[PHOTO_COL])}
    for member in predictor.members:
        source = Path(member.data)
        inputs |= {source.resolve(), (source / "train" / "train.csv").resolve()} if member.data else set()
    # An exported .onnx file given by name is an input itself; the folder it lies in is the user's, not a run's.
    given = [Path(run)] if isinstance(run, (str, Path)) else [Path(r) for r in run]
    inputs |= {p.resolve() for p in given if p.suffix == ".onnx"}
    run_dirs = [(m.source.parent if m.source.is_file() else m.source).resolve() for m in predictor.members
                if m.source.resolve() not in inputs]
    for flag, target in (("--out", out), ("--probs", probs_out)):
        if target is None:
            continue
        where = Path(target).resolve()
        refuse_output_inside(_dataset_of(eval_dir), target, flag=flag)
        if Path(target).suffix.lower() != ".csv":
            raise UserError(f"{flag} {target}: a submission is a .csv file; give a name ending in .csv")
        if where in inputs or any(d == where.parent or d in where.parents for d in run_dirs):
            raise UserError(f"{flag} {target} is one of the inputs (the eval photos and info.csv, the training "
                            "labels, or a run folder); --force never replaces them. Write the file elsewhere")
        if where.name in ("info.csv", "train.csv") and (where.parent / "images").is_dir():
            raise UserError(f"{flag} {target} is the labels file of a dataset (beside its images/); --force never "
                            "replaces a dataset's labels. Write the submission elsewhere")


PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def expand_photos(items: list[str]) -> list[str]:
    """Photo arguments -> photo paths: a folder gives its photos (sorted, hidden files skipped), a glob
    pattern its matches; anything else is kept as given (and checked by the caller)."""
    out: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir()
                           if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in PHOTO_SUFFIXES)
            if not found:
                raise UserError(f"{item}: no photos (.jpg, .jpeg, .png, .bmp, .webp) in this folder")
            out += found
        elif any(c in item for c in "*?[") and not path.exists():
            found = sorted(p for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not found:
                raise UserError(f"{item}: no photo matches this pattern")
            out += found
        else:
            out.append(item)
    return out


def classify_photos(run: Runs, photos: list[str | Path], *, tta: str = "none", device: str = "auto",
                    workers: int = 0, backend: str = "torch") -> list[dict]:
    """One result per photo: mask, gender, age group, the class, and the probabilities behind them."""
    paths = [str(photo) for photo in photos]
    # Every broken photo is named in one pass, before any work: not one per rerun.
    bad = []
    for path in paths:
        if not Path(path).is_file():
            bad.append(f"{path}: {'not a photo file' if Path(path).exists() else 'no such photo'}")
        elif (why := decode_error(path)) is not None:
            bad.append(f"{path}: {why}")
    if len(bad) == 1:
        raise UserError(bad[0])
    if bad:
        shown = "\n  ".join(bad[:20]) + (f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else "")
        raise UserError(f"{len(bad)} of the {len(paths)} photos cannot be classified:\n  {shown}")
    predictor = load_predictor(run, device=device, tta=tta, workers=workers, backend=backend)
    probs = predictor.predict_proba(paths)
    return [{"photo": path, **answer_record(row, predictor.cutoffs)} for path, row in zip(paths, probs)]


def answer_record(probs: np.ndarray, cutoffs: labels.AgeCutoffs) -> dict:
    """One photo's answer from its (18,) class probabilities, as classify prints it and serve answers it:
    the class, mask, gender and age group (names), the confidence and each task's probabilities."""
    c = int(probs.argmax())
    per_task = labels.task_probs(probs[None])
    return {"class": c, **labels.answer_names(c, cutoffs), "confidence": round(float(probs[c]), 4),
            # float64 before rounding: a rounded float32 prints as 0.4153999984264374 in JSON
            "probabilities": {task.name: dict(zip(task.names(cutoffs),
                                                  np.round(per_task[task.name][0].astype(np.float64), 4).tolist()))
                              for task in labels.TASKS}}
