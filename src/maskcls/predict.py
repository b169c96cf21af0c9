"""Use a trained run: evaluate it, write a submission, classify single photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import config as config_mod
from . import engine, labels, splits
from .config import Config
from .data import load_eval, load_table, raise_on_fatal
from .errors import UserError
from .fileio import atomic_path, write_csv
from .metrics import compute_metrics, log_loss, task_probs
from .model import MaskNet, build_model
from .train import make_loader, resolve_amp, resolve_device
from .transforms import eval_transform


def load_run(run: str | Path, device: torch.device | None = None) -> tuple[MaskNet, Config, dict]:
    """(model with best.pt's weights, the run's config, the checkpoint dict). Prefers best.pt, else last.pt."""
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"{run}: no such run folder")
    path = next((p for p in (run / "best.pt", run / "last.pt") if p.is_file()), None)
    if path is None:
        raise UserError(f"{run}: no checkpoint (best.pt or last.pt); train one with `maskcls train DATA --out {run}`")
    ckpt = engine.load_checkpoint(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise UserError(f"{path}: not a maskcls checkpoint (no model weights and config inside)")
    cfg = config_mod.from_dict(ckpt["config"])
    model = build_model(cfg.model.name, cfg.model.heads, "none", drop_rate=cfg.model.drop_rate)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise UserError(f"{path} does not fit {cfg.model.name} with {cfg.model.heads} heads (was it copied from "
                        f"another run?): {str(exc).splitlines()[0]}") from None
    return model.to(device or torch.device("cpu")), cfg, ckpt


def predict_paths(model: MaskNet, cfg: Config, paths: list[str], *, device: torch.device, tta: str = "none",
                  progress: bool = True, desc: str = "predict") -> np.ndarray:
    """(N, 18) probabilities for photos, loaded and resized exactly as training's validation."""
    ds = engine.PhotoDataset(paths, np.full((len(paths), 3), -1), eval_transform(cfg.size))
    loader = make_loader(ds, cfg, device, train=False)
    return engine.predict_proba(model, loader, device=device, amp_dtype=resolve_amp(cfg.train.amp, device), tta=tta,
                                desc=desc, progress=progress)


def evaluate_run(run: str | Path, data: str | Path, *, split: str = "auto", tta: str = "none",
                 device: str = "auto", progress: bool = True) -> dict:
    """Metrics of the run's best model on DATA.

    split: ``val`` the run's own validation fold (DATA must be the data it trained on), ``all`` every
    labelled photo of DATA, ``auto`` val when DATA is the training data, else all.
    """
    dev = resolve_device(device)
    model, cfg, ckpt = load_run(run, dev)
    table, _ = load_table(data, cutoffs=cfg.cutoffs, corrections=cfg.data.corrections)
    same = str(Path(data).resolve()) == ckpt.get("data")
    if split == "auto":
        split = "val" if same else "all"
    if split == "val":
        if not same:
            raise UserError(f"{data} is not the data {run} was trained on ({ckpt.get('data')}); use --split all")
        _, idx = splits.train_val_indices(table, fold=cfg.data.fold, k=cfg.data.folds, seed=cfg.train.seed)
        table = table.iloc[idx]
    elif split != "all":
        raise UserError(f"split must be auto, val or all, got {split!r}")
    targets = engine.targets_of(table)
    probs = predict_paths(model, cfg, list(table["path"]), device=dev, tta=tta, progress=progress, desc="evaluate")
    return {**compute_metrics(targets, probs), "val_loss": log_loss(targets, probs), "split": split,
            "photos": len(table), "people": int(table["person"].nunique())}


def predict_submission(run: str | Path, eval_dir: str | Path, out: str | Path, *, tta: str = "none",
                       force: bool = False, probs_out: str | Path | None = None, device: str = "auto",
                       progress: bool = True) -> dict:
    """Fill eval/info.csv's ``ans`` column: same rows, same order, written atomically."""
    out = Path(out)
    for target in (out, probs_out):
        if target is not None and Path(target).exists() and not force:
            raise UserError(f"{target} already exists; pass --force to overwrite it")
    if tta not in ("none", "hflip"):
        raise UserError(f"--tta must be none or hflip, got {tta!r}")
    frame, problems = load_eval(eval_dir)
    raise_on_fatal(problems, eval_dir)
    dev = resolve_device(device)
    model, cfg, _ = load_run(run, dev)
    probs = predict_paths(model, cfg, list(frame["path"]), device=dev, tta=tta, progress=progress)
    submission = frame.drop(columns=["path"]).assign(ans=probs.argmax(1))
    if probs_out is not None:
        table = pd.DataFrame(probs.round(6), columns=[f"p{c}" for c in range(labels.NUM_CLASSES)])
        write_csv(probs_out, pd.concat([frame[["ImageID"]], table], axis=1))
    with atomic_path(out) as tmp:
        submission.to_csv(tmp, index=False)
    counts = np.bincount(submission["ans"], minlength=labels.NUM_CLASSES)
    return {"out": str(out), "rows": len(submission), "class_counts": counts.tolist()}


def classify_photos(run: str | Path, photos: list[str | Path], *, tta: str = "none", device: str = "auto") -> list[dict]:
    """One result per photo: mask, gender, age group, the class, and the probabilities behind them."""
    paths = []
    for photo in photos:
        path = Path(photo)
        if not path.is_file():
            raise UserError(f"{photo}: no such photo")
        paths.append(str(path))
    for path in paths:
        engine.read_rgb(path)  # fail on a broken photo before any work, naming it
    dev = resolve_device(device)
    model, cfg, _ = load_run(run, dev)
    probs = predict_paths(model, cfg, paths, device=dev, tta=tta, progress=False)
    per_task = task_probs(probs)
    ages = cfg.cutoffs.names()
    results = []
    for i, path in enumerate(paths):
        c = int(probs[i].argmax())
        m, g, a = labels.decode(c)
        results.append({
            "photo": path, "class": c, "mask": labels.MASK_NAMES[m], "gender": labels.GENDER_NAMES[g], "age": ages[a],
            "confidence": round(float(probs[i, c]), 4),
            "probabilities": {
                "mask": dict(zip(labels.MASK_NAMES, np.round(per_task["mask"][i], 4).tolist())),
                "gender": dict(zip(labels.GENDER_NAMES, np.round(per_task["gender"][i], 4).tolist())),
                "age": dict(zip(ages, np.round(per_task["age"][i], 4).tolist())),
            },
        })
    return results
