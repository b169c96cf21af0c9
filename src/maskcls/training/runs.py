"""The run folder, its one home: checkpoints (saved atomically, loaded as data only), the folder guards,
and every reader of a finished run that training, audit and serving share: a run's config
(``read_run_config``), its model (``load_run``), the members of a `--fold all` run (``is_fold_parent``,
``expand_runs``) and the per-photo probability tables (``probs_frame`` writes, ``read_probs`` reads).

RUN/config.yaml  best.pt  last.pt  val_probs.csv ...        a run
RUN/fold-K/ (runs)  oof_probs.csv  cv_summary.json          a `--fold all` run
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import config as config_mod
from .. import labels
from ..config import Config
from ..errors import UserError
from ..fileio import PidLock, atomic_path, naming
from .model import MaskNet, model_for


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write ``state`` with torch.save to ``path`` atomically; a full disk is one line naming it."""
    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as exc:
            # torch reports a failed write (a full disk, a quota) as "[enforce fail at inline_container.cc]":
            # name the file the user asked for, not torch's internals or the temporary name.
            raise UserError(f"{path}: cannot write the checkpoint (is the disk full? {str(exc).strip().splitlines()[0]})"
                            ) from None


def load_checkpoint(path: str | Path) -> dict:
    """Load with weights_only=True: a checkpoint is data, never code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive: this is garbage or truncated
            raise UserError(f"{path}: not a readable maskcls checkpoint (corrupt, or not saved by PyTorch)") from None
        # torch's message advises weights_only=False, i.e. running the file's code: never pass that on.
        raise UserError(f"{path}: not a maskcls checkpoint: it holds Python objects other than tensors and plain "
                        "values, and maskcls never runs code from a checkpoint") from None
    except Exception as exc:  # corrupt files raise several types; all are the user's broken file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        # torch's own words help only when they are words: a bare number or key ('101') says nothing
        why = first if " " in first else "corrupt, truncated, or not saved by PyTorch"
        raise UserError(f"{path}: not a readable maskcls checkpoint ({why})") from None


@contextlib.contextmanager
def run_lock(out: str | Path) -> Iterator[None]:
    """Hold ``.RUN.lock`` beside the run folder while training: a second training on the same folder is
    refused, naming the first one's process; a lock left by a dead process (kill -9) is taken over.
    The lock sits beside the folder so that nothing appears inside it before the first epoch ends."""
    out = Path(out)
    lock = PidLock(out.parent / f".{out.name}.lock",
                   lambda pid, host: f"{out} is being written by another maskcls process ({pid} on {host}); wait "
                                     f"for it to finish, or choose another folder (remove "
                                     f"{out.parent / f'.{out.name}.lock'} if that process is gone)",
                   target=out)
    # Folders made here only to hold the lock are removed again if the run writes nothing into them
    # (a refused --folds or a failed ablation run leaves no empty folder behind).
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    with naming(out):
        out.parent.mkdir(parents=True, exist_ok=True)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
        for folder in made:  # deepest first; a folder that holds anything stays
            try:
                folder.rmdir()
            except OSError:
                break


# What a training writes into its run folder: a folder holding only these and no checkpoint is a run
# stopped (kill -9, a full disk) before its first checkpoint was saved, with nothing worth keeping.
RUN_FILES = frozenset({"config.yaml", "best.pt", "last.pt", "metrics.csv", "summary.json", "curves.png",
                       "per_class_f1.png", "confusion.png", "val_predictions.csv", "val_probs.csv", "tb"})


def _never_checkpointed(out: Path) -> bool:
    """True for a run folder that a training left before saving any checkpoint (a model shared as
    config.yaml + best.pt is never taken for one)."""
    names = {p.name for p in out.iterdir()}
    ours = {n for n in names if n in RUN_FILES or n.startswith(".")}
    return bool(names) and names == ours and not names & {"last.pt", "best.pt", "summary.json"}


def check_run_folder(out: Path, resume: bool) -> bool:
    """Refuse a folder the run cannot use; returns whether to resume. A folder left by a run stopped
    before its first checkpoint is emptied and the run starts again, with or without --resume."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose a folder for the run")
    if out.is_dir() and _never_checkpointed(out):
        for p in out.iterdir():  # the caller holds the run's lock: no other training writes here
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        return False
    if resume:
        if not (out / "last.pt").is_file():
            raise UserError(f"{out}: nothing to resume (no last.pt); start a new run without --resume")
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: already holds files; pass --resume to continue that run, or choose a new folder")
    return resume


FOLD_PREFIX = "fold-"


def fold_dir(out: str | Path, fold: int) -> Path:
    """The folder of fold ``fold`` inside a --fold all run."""
    return Path(out) / f"{FOLD_PREFIX}{fold}"


def is_fold_parent(run: Path) -> bool:
    """A `--fold all` run: fold-K/ subfolders instead of its own checkpoint."""
    run = Path(run)
    return run.is_dir() and not (run / "best.pt").exists() and any(run.glob(f"{FOLD_PREFIX}*/best.pt"))


def expand_runs(runs: str | Path | Sequence[str | Path]) -> list[Path]:
    """Run folders of every member: a `--fold all` run stands for all its fold-K/ runs. The same run
    given twice is an error (it would only weigh that model double)."""
    if isinstance(runs, (str, Path)):
        runs = [runs]
    out: list[Path] = []
    for run in runs:
        run = Path(run)
        if is_fold_parent(run):
            out += sorted((p.parent for p in run.glob(f"{FOLD_PREFIX}*/best.pt")),
                          key=lambda p: int(p.name[len(FOLD_PREFIX):]))
        else:
            out.append(run)
    if not out:
        raise UserError("no run given")
    seen: dict[Path, Path] = {}
    for run in out:
        key = run.resolve()
        if key in seen:
            raise UserError(f"{run} is given twice (also as {seen[key]}); list each run once")
        seen[key] = run
    return out


def read_run_config(run: str | Path) -> Config:
    """The settings a run was trained with: its config.yaml (a `--fold all` run: its fold-0's)."""
    import yaml

    run = Path(run)
    folder = fold_dir(run, 0) if not (run / "config.yaml").is_file() and fold_dir(run, 0).is_dir() else run
    path = folder / "config.yaml"
    try:
        return config_mod.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read the run's settings ({exc})") from None


def load_run(run: str | Path, device: torch.device | None = None) -> tuple[MaskNet, Config, dict]:
    """(model with best.pt's weights, the run's config, the checkpoint dict). Prefers best.pt, else last.pt."""
    run = Path(run)
    if run.is_file():
        hint = f"; give its run folder, {run.parent}" if run.suffix == ".pt" else ""
        raise UserError(f"{run}: a file, not a run folder{hint}")
    if not run.is_dir():
        raise UserError(f"{run}: no such run folder")
    path = next((p for p in (run / "best.pt", run / "last.pt") if p.is_file()), None)
    if path is None:
        raise UserError(f"{run}: not a run folder (no best.pt or last.pt); a run folder is what "
                        "`maskcls train DATA --out RUN` writes")
    if path.name == "last.pt":
        print(f"warning: {run} has no best.pt (an unfinished run?); using last.pt, the latest epoch", file=sys.stderr)
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise UserError(f"{path}: not a maskcls checkpoint (no model weights and config inside)")
    cfg = config_mod.from_dict(ckpt["config"])
    model = model_for(cfg, "none")
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise UserError(f"{path} does not fit {cfg.model.name} with {cfg.model.heads} heads (was it copied from "
                        f"another run?): {str(exc).splitlines()[0]}") from None
    return model.to(device or torch.device("cpu")), cfg, ckpt


# The NA rule of every probability table: only an empty cell is missing (a person id "NA" is an id),
# ids are text (leading zeros kept), given labels are whole numbers or missing.
_ID_COLUMNS = ("path", "person", "image")


def _label_columns() -> list[str]:
    """Each task's answer and its label as recorded (age_group beside age in years), then the class."""
    return list(dict.fromkeys(c for t in labels.TASKS for c in (t.column, t.field))) + ["label"]


def read_probs(path: str | Path) -> pd.DataFrame:
    """A val_probs.csv or oof_probs.csv back as ``probs_frame`` wrote it: ids as text, given labels as
    nullable integers (<NA> where unknown), probabilities as floats."""
    path = Path(path)
    try:
        head = pd.read_csv(path, nrows=0).columns
        return pd.read_csv(path, keep_default_na=False, na_values=[""],
                           dtype={c: ("str" if c in _ID_COLUMNS else "Int64")
                                  for c in (*_ID_COLUMNS, *_label_columns()) if c in head})
    except FileNotFoundError:
        raise UserError(f"{path}: no such probability table") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise UserError(f"{path}: not a readable probability table ({str(exc).strip().splitlines()[0]})") from None


def probs_frame(table: pd.DataFrame, probs: np.ndarray, *, fold: int | None = None) -> pd.DataFrame:
    """One row per photo: path, person, image (the photo's stem), the given labels (empty when unknown;
    age in years beside its group), the fold that predicted it, the 18 class probabilities p0..p17 and
    the per-task probabilities p_mask_0.., p_gender_0.., p_age_0.. (marginals of the 18)."""
    given = [*_ID_COLUMNS, *_label_columns()]
    out = table[list(dict.fromkeys(given))].reset_index(drop=True).copy()
    if fold is not None:
        out["fold"] = fold
    values = labels.prob_values(probs).round(6)
    return pd.concat([out, pd.DataFrame(values, columns=labels.prob_columns())], axis=1)
