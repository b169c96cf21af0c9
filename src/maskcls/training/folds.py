"""`--fold all`: train every person-level fold from one prepared dataset, then gather the
out-of-fold probabilities (each photo predicted by the one fold model that never saw its person)
and the mean and spread of every metric over the folds.

RUN/fold-K/ is an ordinary run folder; RUN/oof_probs.csv and RUN/cv_summary.json sit beside them, and
RUN/oof_signals.csv: per photo, the out-of-fold per-task probabilities averaged with the mirror image's
(hflip test-time augmentation, from each fold's best.pt) and the photo's training margins averaged over
the fold models that trained on it (``margins``): the label audit's extra evidence, at no training cost.
Re-running the same command skips finished folds and resumes an interrupted one. With a launcher
(experiments.launch: --jobs, Ray) the folds left to train run at once, each in its own process; a
failed fold is reported after the others finish, and the parent alone writes the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from .. import config as config_mod
from .. import labels
from ..config import Config
from ..data.fingerprint import refuse_other_data
from ..data.prepare import Prepared, prepare
from ..errors import UserError
from ..fileio import claim_folder, read_json, write_csv, write_json
from ..metrics import format_scores, log_loss, scored
from ..progress import prefixed
from . import trackers
from .fit import train
from .loaders import eval_rows, loader_for
from .loop import predict_proba
from .model import mirrored
from .margins import MARGIN_COLUMNS
from .runs import FOLD_PREFIX, fold_dir, load_checkpoint, load_run, read_probs, read_run_config, run_lock
from .runspec import Launcher, RunSpec, failure_line, spec_data
from .runtime import Runtime, gather_rows, is_main


def train_folds(cfg: Config, data: str | Path | pd.DataFrame | Prepared, out: str | Path, *,
                launcher: Launcher | None = None, progress: bool = False,
                log: Callable[[str], None] | None = None) -> dict:
    """Train all ``data.folds`` folds into OUT/fold-K and write OUT/oof_probs.csv and OUT/cv_summary.json.

    Returns cv_summary.json's content. The data are scanned and decoded once for all folds (once per
    worker process with a ``launcher``, which trains the unfinished folds at once). Silent unless
    asked (``progress=True``, ``log=print``).
    """
    log = log or (lambda _: None)
    out = Path(out)
    if not is_main():  # under torchrun every process trains each fold; rank 0 writes and talks
        return _train_folds(cfg, data, out, launcher=None, progress=False, log=lambda _: None)
    with run_lock(out):
        return _train_folds(cfg, data, out, launcher=launcher, progress=progress, log=log)


# What a --fold all run holds beside its fold-K folders (model.onnx: `maskcls export`'s default place).
FOLD_RUN_FILES = ("oof_probs.csv", "oof_signals.csv", "cv_summary.json", "model.onnx")
# what a finished fold was trained to: --resume may lengthen a run, but a fold reused as it is must match
BUDGET = frozenset({"train.epochs", "train.patience"})


def _train_folds(cfg: Config, data, out: Path, *, launcher: Launcher | None, progress: bool,
                 log: Callable[[str], None]) -> dict:
    claim_folder(out, data=data, owner="a --fold all run's",
                 ours=lambda name: name.startswith(FOLD_PREFIX) or name in FOLD_RUN_FILES)
    prepared = data if isinstance(data, Prepared) else prepare(cfg, data, log=log)
    prepared.check(cfg)
    extra = sorted(p.name for p in out.glob(f"{FOLD_PREFIX}*") if p.name not in
                   {f"{FOLD_PREFIX}{k}" for k in range(prepared.k)}) if out.is_dir() else []
    if extra:
        raise UserError(f"{out} holds {', '.join(extra)} from a run with more folds than data.folds={prepared.k}; "
                        "choose a new --out")
    with trackers.parent_run(cfg, f"{out.name} ({prepared.k} folds)", out, kind="folds"):
        source = spec_data(data) if launcher is not None else None
        return _fold_runs(cfg, prepared, out, launcher=launcher, source=source, progress=progress, log=log)


def _fold_runs(cfg: Config, prepared: Prepared, out: Path, *, launcher: Launcher | None, source, progress: bool,
               log: Callable[[str], None]) -> dict:
    summaries: dict[int, dict] = {}
    todo: dict[str, int] = {}  # with a launcher: the folds left to train, by their spec's name
    specs: list[RunSpec] = []
    for fold in range(prepared.k):
        target = fold_dir(out, fold)
        fold_cfg = config_mod.from_dict(cfg.to_dict())
        fold_cfg.data.fold = fold
        log(f"== fold {fold + 1} of {prepared.k} -> {target}")
        if (target / "summary.json").is_file():
            _check_reusable(target, fold_cfg)
            refuse_other_data(str(target), fold_identity(target), prepared.identity(), prepared.source)
            log(f"fold {fold} already finished; reusing {target}")
            summaries[fold] = read_json(target / "summary.json")
        elif launcher is not None:
            todo[f"fold {fold}"] = fold
            specs.append(RunSpec(f"fold {fold}", fold_cfg.to_dict(), source, str(target.resolve()),
                                 resume=(target / "last.pt").is_file()))
        else:
            summaries[fold] = train(fold_cfg, prepared, target, resume=(target / "last.pt").is_file(),
                                    progress=progress, log=prefixed(log, f"fold {fold}"))
    if specs:
        summaries.update(_launch_folds(launcher, specs, todo, out, log=log))
    signals = gather_signals(cfg, prepared, out, progress=progress)  # every process predicts its share
    if not is_main():
        return {}
    summaries = [summaries[k] for k in range(prepared.k)]
    oof = gather_oof(prepared, [fold_dir(out, k) for k in range(prepared.k)])
    write_csv(out / "oof_probs.csv", oof)
    write_csv(out / "oof_signals.csv", signals)
    cv = cv_summary(summaries, prepared.score_targets, oof[labels.class_prob_columns()].to_numpy())
    write_json(out / "cv_summary.json", cv)
    shown = ", ".join(f"{k} {v:.4f} +- {cv['std'][k]:.4f}" for k, v in cv["mean"].items()
                      if k.endswith("f1") or k == "accuracy")
    log(f"{prepared.k} folds: {shown}; out-of-fold probabilities in {out / 'oof_probs.csv'}")
    log(f"pooled out-of-fold: {format_scores(cv['oof'])}")
    return cv


def _launch_folds(launcher: Launcher, specs: list[RunSpec], todo: dict[str, int], out: Path, *,
                  log: Callable[[str], None]) -> dict[int, dict]:
    """Train the folds of ``specs`` with ``launcher``, each said as it finishes; returns their summaries by
    fold, or refuses (naming the failures) when one failed: the finished ones stay for a rerun."""
    summaries: dict[int, dict] = {}
    results = []
    for result in launcher.run(specs, log=log):
        results.append(result)
        fold = todo[result.spec.name]
        if result.ok:
            summaries[fold] = result.summary
            f1 = result.summary.get("macro_f1")
            log(f"  fold {fold} finished ({len(results)} of {len(todo)}): macro F1 "
                f"{f1 if f1 is not None else float('nan'):.4f}")
        else:  # a crash (not a user's mistake) shows its traceback: the fold folder must stay resumable
            log(f"  fold {fold} failed ({len(results)} of {len(todo)}): {result.error}"
                + (f"\n{result.traceback}" if result.traceback else ""))
    if not all(r.ok for r in results):
        raise UserError(f"{failure_line(results, len(todo))}; the finished folds are kept in {out}: rerun the "
                        "same command to train only the others")
    return summaries


def _check_reusable(folder: Path, cfg: Config) -> None:
    """A finished fold is reused only when it was trained with these very settings."""
    saved = read_run_config(folder)
    changed = config_mod.resume_conflicts(saved, cfg, free=set(config_mod.RESUMABLE_CHANGES) - BUDGET)
    if changed:
        raise UserError(f"{folder} was trained with other settings: {', '.join(changed)}; a --fold all run is "
                        "continued only with its own settings: choose a new --out to try others")


def fold_identity(folder: Path) -> dict | None:
    """The data identity a fold's checkpoint records (None for runs from before identities)."""
    path = next((p for p in (folder / "best.pt", folder / "last.pt") if p.is_file()), None)
    ckpt = load_checkpoint(path) if path is not None else None
    return ckpt.get("data_identity") if isinstance(ckpt, dict) else None


def gather_oof(prepared: Prepared, fold_dirs: list[Path]) -> pd.DataFrame:
    """Each fold's val_probs.csv, checked to be exactly that fold's people, stacked in table order."""
    parts = []
    paths = prepared.table["path"].to_numpy()
    for fold, folder in enumerate(fold_dirs):
        frame = read_probs(folder / "val_probs.csv")
        expected = set(paths[prepared.folds == fold])
        if set(frame["path"]) != expected or len(frame) != len(expected):
            raise UserError(f"{folder}/val_probs.csv does not hold fold {fold}'s photos of this data; was the folder "
                            "trained on other data or another split? Use a new run folder")
        parts.append(frame)
    oof = pd.concat(parts, ignore_index=True)
    order = pd.Series(np.arange(len(paths)), index=paths)
    return oof.iloc[np.argsort(order[oof["path"]].to_numpy(), kind="stable")].reset_index(drop=True)


def cv_summary(summaries: list[dict], targets: np.ndarray, oof_probs: np.ndarray) -> dict:
    """Mean and std over folds of every numeric summary figure, plus the metrics of the pooled
    out-of-fold predictions (one figure over all photos rather than an average of folds)."""
    numeric = [k for k, v in summaries[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
               and k not in ("fold", "folds")]
    mean, std = {}, {}
    for key in numeric:
        values = np.array([s[key] for s in summaries if s.get(key) is not None], dtype=float)
        if len(values):
            mean[key] = float(values.mean())
            std[key] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"folds": len(summaries), "mean": mean, "std": std,
            "oof": {**scored(targets, oof_probs), "val_loss": log_loss(targets, oof_probs)},
            "per_fold": summaries}


def gather_signals(cfg: Config, prepared: Prepared, out: Path, *, progress: bool = True) -> pd.DataFrame:
    """oof_signals.csv, in table order: path, hflip_<task>_<k> (out-of-fold probabilities with hflip
    TTA) and margin_<task> (the mean over the fold models that trained on the photo of its mean
    training margin; empty when unknown or when no fold wrote train_margins.csv)."""
    paths = prepared.table["path"].to_numpy()
    tta = np.zeros((len(paths), labels.NUM_CLASSES))
    for fold in range(prepared.k):
        rows = np.flatnonzero(prepared.folds == fold)
        tta[rows] = _hflip_val_probs(cfg, prepared, fold_dir(out, fold), fold, progress=progress)
    per_task = labels.task_probs(tta)
    frame = pd.DataFrame({"path": paths})
    for t in labels.TASKS:
        for k in range(t.size):
            frame[f"hflip_{t.name}_{k}"] = per_task[t.name][:, k].round(6)
    sums = np.zeros((len(paths), len(MARGIN_COLUMNS)))
    counts = np.zeros_like(sums)
    row_of = pd.Series(np.arange(len(paths)), index=paths)
    for fold in range(prepared.k):
        file = fold_dir(out, fold) / "train_margins.csv"
        if not file.is_file():
            continue  # a fold trained before margins were recorded
        m = pd.read_csv(file)
        known = m["path"].isin(row_of.index).to_numpy()
        rows = row_of[m["path"][known]].to_numpy()
        values = m.loc[known, MARGIN_COLUMNS].to_numpy(dtype=float)
        ok = ~np.isnan(values)
        np.add.at(sums, rows, np.nan_to_num(values))
        np.add.at(counts, rows, ok.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    for j, col in enumerate(MARGIN_COLUMNS):
        frame[col] = mean[:, j].round(5)
    return frame


def _hflip_val_probs(cfg: Config, prepared: Prepared, folder: Path, fold: int, *, progress: bool) -> np.ndarray:
    """(n_val, 18) fold ``fold``'s validation photos predicted by its best.pt with hflip TTA."""
    fold_cfg = config_mod.from_dict(cfg.to_dict())
    fold_cfg.data.fold = fold
    runtime = Runtime.from_settings(device=cfg.train.device, amp=cfg.train.amp, channels_last=cfg.train.channels_last)
    model, saved, _ = load_run(folder, runtime.device)
    fold_cfg.data.mean, fold_cfg.data.std = saved.data.mean, saved.data.std
    _, val_ds = prepared.datasets(fold_cfg, fold, progress=False)
    loader = loader_for(val_ds, fold_cfg, runtime.device, train=False)
    probs = (predict_proba(model, loader, runtime=runtime, desc=f"fold {fold}", progress=progress)
             + predict_proba(_Mirrored(model), loader, runtime=runtime, desc=f"fold {fold} hflip", progress=progress)) / 2
    return gather_rows(eval_rows(len(val_ds), runtime.rank, runtime.world), probs, len(val_ds))


class _Mirrored(torch.nn.Module):
    """The model seeing each photo mirrored left to right (the hflip half of the TTA)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model(mirrored(images))
