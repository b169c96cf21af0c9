"""train(cfg, data, out) -> summary: the main job. The CLI and the tests call this same function.

RUN/ holds config.yaml, best.pt (best validation macro F1), last.pt (every epoch, for --resume),
metrics.csv, summary.json, confusion.png, val_predictions.csv and tb/ (TensorBoard).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, RandomSampler, WeightedRandomSampler

from . import config as config_mod
from . import engine, labels, splits
from .config import Config
from .data import load_table
from .errors import UserError
from .fileio import write_csv, write_json, write_text
from .metrics import METRIC_KEYS, compute_metrics, confusion, log_loss
from .model import MaskNet, build_model
from .plots import plot_confusion
from .transforms import eval_transform, train_transform

# Settings a resumed run must share with its checkpoint: anything else (epochs, patience...) may change.
FIXED_ON_RESUME = ("model.name", "model.heads", "data.size", "data.fold", "data.folds", "data.corrections",
                   "data.age_young", "data.age_old", "train.seed")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device=cuda but no CUDA GPU is visible; use train.device=auto or cpu")
    return torch.device(name)


def resolve_amp(name: str, device: torch.device) -> torch.dtype | None:
    if name == "none" or (name == "auto" and device.type != "cuda"):
        return None
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if name == "bf16" else torch.float16


def _get(cfg: Config, key: str):
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def selection_score(metrics: dict) -> float:
    """Macro F1 over the 18 classes; where validation has no fully labelled photo (mixed partial
    manifests), the mean of the per-task F1s that exist."""
    if metrics.get("macro_f1") is not None:
        return metrics["macro_f1"]
    tasks = [metrics[k] for k in ("mask_f1", "gender_f1", "age_f1") if metrics.get(k) is not None]
    return float(np.mean(tasks)) if tasks else 0.0


@dataclass
class Prepared:
    """Everything derived from the data for one run: the table, the split and the datasets."""

    table: pd.DataFrame
    train_idx: np.ndarray
    val_idx: np.ndarray
    train_ds: engine.PhotoDataset
    val_ds: engine.PhotoDataset


def prepare_data(cfg: Config, data: str | Path, *, log: Callable[[str], None] = print,
                 progress: bool = True) -> Prepared:
    table, report = load_table(data, cutoffs=cfg.cutoffs, corrections=cfg.data.corrections)
    if cfg.data.corrections != "none":
        log(report.summary())
    train_idx, val_idx = splits.train_val_indices(table, fold=cfg.data.fold, k=cfg.data.folds, seed=cfg.train.seed)
    targets = engine.targets_of(table)
    if cfg.model.heads == "single" and not (targets[train_idx] >= 0).all(1).any():
        raise UserError(f"{data}: no photo has all three labels, which a single 18-way head needs; use model.heads=multi")
    cache = engine.preload(list(table["path"]), cfg.size, progress=progress) if cfg.data.cache else None
    paths = list(table["path"])

    def subset(idx: np.ndarray, transform) -> engine.PhotoDataset:
        return engine.PhotoDataset([paths[i] for i in idx], targets[idx], transform,
                                   cache=None if cache is None else cache[idx])

    return Prepared(table, train_idx, val_idx, subset(train_idx, train_transform(cfg.data.augment, cfg.size)),
                    subset(val_idx, eval_transform(cfg.size)))


def make_loader(ds: engine.PhotoDataset, cfg: Config, device: torch.device, *, train: bool,
                generator: torch.Generator | None = None) -> DataLoader:
    """The one place that decides batching: training (sampler, drop_last) or in-order evaluation."""
    sampler = None
    if train:
        if cfg.train.sampler == "weighted":
            weights = torch.as_tensor(engine.sample_weights(ds.targets.numpy()), dtype=torch.double)
            sampler = WeightedRandomSampler(weights, len(ds), replacement=True, generator=generator)
        else:
            sampler = RandomSampler(ds, generator=generator)
    return DataLoader(ds, batch_size=cfg.train.batch_size, sampler=sampler, num_workers=cfg.data.workers,
                      pin_memory=cfg.data.pin_memory and device.type == "cuda",
                      drop_last=train and len(ds) > cfg.train.batch_size, generator=generator)


def _param_groups(model: MaskNet, cfg: Config) -> list[dict]:
    """Backbone at lr * backbone_lr_mult, heads at lr; no weight decay on biases and norm weights."""
    groups = []
    for params, scale in ((model.backbone_parameters(), cfg.model.backbone_lr_mult), (model.head_parameters(), 1.0)):
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        groups.append({"params": decay, "lr": cfg.train.lr * scale, "weight_decay": cfg.train.weight_decay})
        groups.append({"params": no_decay, "lr": cfg.train.lr * scale, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def _optimizer(model: MaskNet, cfg: Config) -> torch.optim.Optimizer:
    groups = _param_groups(model, cfg)
    if cfg.train.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.train.lr)
    return torch.optim.SGD(groups, lr=cfg.train.lr, momentum=cfg.train.momentum, nesterov=True)


def _check_run_folder(out: Path, resume: bool) -> None:
    if resume:
        if not (out / "last.pt").is_file():
            raise UserError(f"{out}: nothing to resume (no last.pt); start a new run without --resume")
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: already holds files; pass --resume to continue that run, or choose a new folder")


def train(cfg: Config, data: str | Path, out: str | Path, *, resume: bool = False,
          stop_after_epoch: int | None = None, progress: bool = True,
          log: Callable[[str], None] = print) -> dict:
    """Train on DATA's training folds, validate on the held-out person fold, write RUN/.

    stop_after_epoch ends the call early, as an interruption would; --resume continues from last.pt
    and reaches the same metrics as an uninterrupted run with the same seed.
    Returns summary.json's content (or {'stopped_after_epoch': n} when stopped early).
    """
    out = Path(out)
    cfg = config_mod.from_dict(cfg.to_dict())  # a private copy: resolved values are filled in below
    _check_run_folder(out, resume)
    ckpt = engine.load_checkpoint(out / "last.pt") if resume else None
    if ckpt is not None:
        saved = config_mod.from_dict(ckpt["config"])
        changed = [f"{k} ({_get(saved, k)} -> {_get(cfg, k)})" for k in FIXED_ON_RESUME if _get(saved, k) != _get(cfg, k)]
        if changed:
            raise UserError(f"{out}/last.pt was trained with other settings: {', '.join(changed)}; "
                            "resume with the run's own config or start a new run")
    device = resolve_device(cfg.train.device)
    amp_dtype = resolve_amp(cfg.train.amp, device)
    channels_last = cfg.train.channels_last and device.type == "cuda"
    seed = cfg.train.seed
    torch.manual_seed(seed)

    prep = prepare_data(cfg, data, log=log, progress=progress)
    log(f"data: {len(prep.train_idx)} training photos, {len(prep.val_idx)} validation photos "
        f"({prep.table.iloc[prep.val_idx]['person'].nunique()} people held out, fold {cfg.data.fold} of {cfg.data.folds})")
    # On resume the weights come from last.pt: never fetch pretrained ones again.
    model = build_model(cfg.model.name, cfg.model.heads, "none" if ckpt else cfg.model.weights,
                        drop_rate=cfg.model.drop_rate, mean=cfg.data.mean, std=cfg.data.std).to(device)
    # Write the normalisation actually used (the backbone's pretrained config unless overridden),
    # so config.yaml is the fully resolved setting, not "whatever the model said".
    cfg.data.mean = cfg.data.mean or [round(v / 255, 6) for v in model.mean.flatten().tolist()]
    cfg.data.std = cfg.data.std or [round(v / 255, 6) for v in model.std.flatten().tolist()]
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _optimizer(model, cfg)
    steps_per_epoch = len(make_loader(prep.train_ds, cfg, device, train=True))
    total = steps_per_epoch * cfg.train.epochs
    schedule = engine.warmup_cosine(total, int(cfg.train.warmup_epochs * steps_per_epoch), cfg.train.min_lr_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    train_targets = prep.train_ds.targets.numpy()
    loss_fn = engine.MultiTaskLoss(
        cfg.model.heads, smoothing=cfg.train.label_smoothing,
        gamma=cfg.train.focal_gamma if cfg.train.loss == "focal" else 0.0,
        weights={k: w.to(device) for k, w in engine.balanced_weights(train_targets, cfg.model.heads).items()}
        if cfg.train.class_weights else None)
    val_loader = make_loader(prep.val_ds, cfg, device, train=False)
    val_targets = prep.val_ds.targets.numpy()

    history: list[dict] = []
    best_score, best_epoch, start_epoch, stale = -1.0, 0, 0, 0
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise UserError(f"{out}/last.pt does not fit {cfg.model.name} ({cfg.model.heads} heads): "
                            f"{str(exc).splitlines()[0]}") from None
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        history, best_score, best_epoch = list(ckpt["history"]), ckpt["best_score"], ckpt["best_epoch"]
        start_epoch, stale = ckpt["epoch"], ckpt["stale"]
        log(f"resuming {out} after epoch {start_epoch} (best macro F1 so far {best_score:.4f} at epoch {best_epoch})")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", config_mod.dump(cfg))
    writer = None
    if cfg.train.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=start_epoch + 1 if start_epoch else None)
    run_start = time.perf_counter()
    try:
        for epoch in range(start_epoch, cfg.train.epochs):
            if cfg.train.patience and stale >= cfg.train.patience:
                break
            # Everything random in an epoch derives from (seed, epoch): resuming replays it exactly.
            epoch_seed = seed * 100_003 + epoch
            torch.manual_seed(epoch_seed)
            prep.train_ds.set_epoch_seed(epoch_seed)
            loader = make_loader(prep.train_ds, cfg, device, train=True, generator=torch.Generator().manual_seed(epoch_seed))
            stats = engine.train_one_epoch(
                model, loader, optimizer, scheduler, loss_fn, device=device, amp_dtype=amp_dtype, scaler=scaler,
                frozen=epoch < cfg.model.freeze_epochs, channels_last=channels_last, log_every=cfg.train.log_every,
                desc=f"epoch {epoch + 1}/{cfg.train.epochs}", progress=progress)
            probs = engine.predict_proba(model, val_loader, device=device, amp_dtype=amp_dtype,
                                         channels_last=channels_last, desc="validate", progress=progress)
            metrics = compute_metrics(val_targets, probs)
            row = {"epoch": epoch + 1, "train_loss": stats["train_loss"], "val_loss": log_loss(val_targets, probs),
                   **metrics, "lr": optimizer.param_groups[-1]["lr"], "images_per_s": stats["images_per_s"],
                   "seconds": stats["train_seconds"]}
            history.append(row)
            score = selection_score(metrics)
            improved = score > best_score
            if improved:
                best_score, best_epoch, stale = score, epoch + 1, 0
            else:
                stale += 1
            state = {"model": model.state_dict(), "config": cfg.to_dict(), "epoch": epoch + 1,
                     "data": str(Path(data).resolve()), "history": history, "best_score": best_score,
                     "best_epoch": best_epoch, "stale": stale}
            if improved:
                engine.save_checkpoint(out / "best.pt", state)
            engine.save_checkpoint(out / "last.pt", {**state, "optimizer": optimizer.state_dict(),
                                                     "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict()})
            write_csv(out / "metrics.csv", pd.DataFrame(history))
            if writer is not None:
                for k, v in row.items():
                    if k != "epoch" and v is not None:
                        writer.add_scalar(k, v, epoch + 1)
                writer.flush()
            shown = "  ".join(f"{k} {row[k]:.4f}" for k in ("train_loss", "val_loss", *METRIC_KEYS) if row[k] is not None)
            log(f"epoch {epoch + 1}/{cfg.train.epochs}  {shown}  {row['images_per_s']:.0f} img/s"
                + ("  *best" if improved else ""))
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < cfg.train.epochs:
                return {"stopped_after_epoch": epoch + 1}
    finally:
        if writer is not None:
            writer.close()
    return finish_run(out, prep, cfg, model, history, best_epoch, device, amp_dtype,
                      seconds=time.perf_counter() - run_start, log=log, progress=progress)


def finish_run(out: Path, prep: Prepared, cfg: Config, model: MaskNet, history: list[dict], best_epoch: int,
               device: torch.device, amp_dtype: torch.dtype | None, *, seconds: float,
               log: Callable[[str], None], progress: bool) -> dict:
    """Load best.pt into ``model``, predict the validation split once more, write summary, confusion and
    predictions: the summary describes exactly the checkpoint that predict and classify will use."""
    model.load_state_dict(engine.load_checkpoint(out / "best.pt")["model"])
    val_loader = make_loader(prep.val_ds, cfg, device, train=False)
    probs = engine.predict_proba(model, val_loader, device=device, amp_dtype=amp_dtype,
                                 channels_last=cfg.train.channels_last and device.type == "cuda",
                                 desc="best model", progress=progress)
    targets = prep.val_ds.targets.numpy()
    metrics = compute_metrics(targets, probs)
    selected_by = "macro_f1" if metrics["macro_f1"] is not None else "mean_task_f1"
    summary = {**metrics, "val_loss": log_loss(targets, probs), "best_epoch": best_epoch, "epochs": len(history),
               "planned_epochs": cfg.train.epochs, "selected_by": selected_by,
               "train_photos": len(prep.train_idx), "val_photos": len(prep.val_idx),
               "val_people": int(prep.table.iloc[prep.val_idx]["person"].nunique()),
               "model": cfg.model.name, "heads": cfg.model.heads, "device": device.type, "seconds": round(seconds, 1)}
    val = prep.table.iloc[prep.val_idx].reset_index(drop=True)
    pred = probs.argmax(1)
    predictions = pd.DataFrame({"path": val["path"], "person": val["person"], "label": val["label"], "pred": pred,
                                "confidence": probs.max(1).round(4)})
    write_csv(out / "val_predictions.csv", predictions)
    if metrics["macro_f1"] is not None:
        plot_confusion(confusion(targets, probs), labels.class_names(cfg.cutoffs), out / "confusion.png",
                       title=f"{cfg.model.name}, validation fold {cfg.data.fold}: macro F1 {metrics['macro_f1']:.3f}")
    write_json(out / "summary.json", summary)
    shown = ", ".join(f"{k} {summary[k]:.4f}" for k in METRIC_KEYS if summary[k] is not None)
    log(f"best epoch {best_epoch} of {len(history)}: {shown}; run in {out}")
    return summary
