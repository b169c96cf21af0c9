"""train(cfg, data, out) -> summary: one training run, the function the CLI, the loops and the tests call.

RUN/ holds config.yaml, best.pt (best validation macro F1), last.pt (every epoch, for --resume),
metrics.csv, summary.json, curves.png, per_class_f1.png, confusion.png, val_predictions.csv,
val_probs.csv, train_margins.csv (each training photo's margin averaged over epochs, for the audit) and
tb/ (TensorBoard). Nothing is written before the first epoch ends, so a run stopped
in epoch 1 leaves no folder to clean up or resume.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from .. import config as config_mod
from .. import labels
from ..config import FACE_MODEL, Config
from ..data.images import PhotoDataset
from ..data.fingerprint import refuse_other_data
from ..data.prepare import Prepared, prepare
from ..errors import UserError
from ..faces.features import no_face_count
from ..fileio import claim_folder, write_csv, write_json, write_text
from ..metrics import (METRIC_KEYS, compute_metrics, confusion, format_scores, log_loss, per_class_f1, scored,
                       selection_score)
from ..figures import plot_confusion, plot_curves, plot_per_class_f1
from .averaging import Ema, Swa, build_averaging
from .budget import Budget
from .loaders import loader_for
from .mixing import Mixer, build_mixer
from .loop import predict_proba, train_one_epoch
from .margins import Indexed, MarginTracker
from .losses import build_loss
from .model import MaskNet, model_for
from .optim import build_optimizer, build_scheduler
from .runs import check_run_folder, load_checkpoint, probs_frame, run_lock, save_checkpoint
from .loaders import eval_rows
from . import trackers
from .runtime import (Runtime, all_mean, barrier, gather_rows, is_main, is_out_of_memory, out_of_memory_error,
                      sync_buffers)
from .threads import apply as apply_threads


@dataclass
class Session:
    """Everything one training run mutates, built once by ``_setup``."""

    model: MaskNet
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    loss_fn: Callable
    train_ds: PhotoDataset
    val_ds: PhotoDataset
    val_loader: DataLoader
    runtime: Runtime
    val_targets: np.ndarray  # scored with data.score_age_* (the competition's groups by default)
    net: torch.nn.Module  # what runs the batches: the model, or torch.compile's wrapper around it
    mixer: Mixer | None = None  # train.mixup / train.cutmix
    average: Ema | Swa | None = None  # train.ema / train.swa
    margins: MarginTracker | None = None  # each training photo's margin per epoch, for the label audit


def train(cfg: Config, data: str | Path | pd.DataFrame | Prepared, out: str | Path, *, resume: bool = False,
          stop_after_epoch: int | None = None, progress: bool = False, log: Callable[[str], None] | None = None,
          budget: Budget | None = None) -> dict:
    """Train on DATA's training folds, validate on the held-out person fold ``data.fold``, write RUN/.

    With data.fold null (``train --fold none``) every person trains, nothing is validated and the last
    epoch is kept; ``budget`` says where train.epochs came from (default: the config), for summary.json.

    DATA is a path (competition folder or manifest), a DataFrame in the manifest columns, or a
    ``Prepared`` dataset shared with other trainings (nothing is scanned or decoded again).
    stop_after_epoch ends the call early, as an interruption would; ``resume`` continues from last.pt
    and reaches the same metrics as an uninterrupted run. Returns summary.json's content (or
    {'stopped_after_epoch': n} when stopped early). Silent unless asked: ``progress=True`` draws
    progress bars, ``log`` (e.g. print) receives the per-epoch and summary lines.
    """
    log = log or _silent
    if isinstance(cfg, (str, Path)):  # a built-in name or a YAML file, as load_config takes
        cfg = config_mod.load_config(cfg)
    out = Path(out)
    if not is_main():  # under torchrun: rank 0 holds the lock, writes the files and talks
        return _train(cfg, data, out, resume=resume, stop_after_epoch=stop_after_epoch, progress=False,
                      log=lambda _: None, budget=budget)
    with run_lock(out):
        return _train(cfg, data, out, resume=resume, stop_after_epoch=stop_after_epoch, progress=progress, log=log,
                      budget=budget)


def _train(cfg: Config, data, out: Path, *, resume: bool, stop_after_epoch: int | None, progress: bool,
           log: Callable[[str], None], budget: Budget | None) -> dict:
    cfg = config_mod.from_dict(cfg.to_dict())  # a private copy: resolved values are filled in below
    prepared, resume, ckpt, s, budget = _open_run(cfg, data, out, resume=resume, progress=progress, log=log,
                                                  budget=budget)
    held_out = cfg.data.fold is not None
    # The fingerprints of the photos this run learns from travel in its checkpoints: evaluate uses them
    # to refuse scoring those photos again, whatever path or copy they come back under.
    train_photos = torch.from_numpy(prepared.photo_digests()[prepared.split(cfg.data.fold)[0]])
    history, best_score, best_epoch, start_epoch, stale, seconds_before = _progress_so_far(ckpt, cfg, out, log=log)
    tracker: trackers.Trackers | None = None
    best_state = None  # best.pt's weights, kept in memory so that no process has to read them back
    run_start = time.perf_counter()
    # a test's or a scheduler's stop before the last epoch (one at or after it is no stop)
    stop_at = stop_after_epoch if stop_after_epoch is not None and stop_after_epoch < cfg.train.epochs else None
    try:
        for epoch in range(start_epoch, cfg.train.epochs):
            if cfg.train.patience and stale >= cfg.train.patience:
                break
            row = _run_epoch(s, cfg, epoch, progress=progress)
            history.append(row)
            score = selection_score(row)
            # train.select=last keeps every epoch as it comes: the validation people choose nothing
            improved = cfg.train.select == "last" or score > best_score
            best_score, best_epoch, stale = (score, epoch + 1, 0) if improved else (best_score, best_epoch, stale + 1)
            state = {"epoch": epoch + 1, "history": history, "best_score": best_score, "best_epoch": best_epoch,
                     "stale": stale, "seconds": seconds_before + time.perf_counter() - run_start,
                     **_run_facts(cfg, prepared, s, train_photos, None if held_out else budget)}
            if improved:
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in state["model"].items()}
            if is_main():
                _write_epoch(out, cfg, s, state, improved=improved, history=history)
                tracker = tracker or trackers.Trackers(cfg, out, start_epoch=start_epoch, resume=resume, log=log)
                tracker.log_epoch(row, epoch + 1)
                log(_epoch_line(cfg, row, epoch, improved))
            if stop_at is not None and epoch + 1 >= stop_at:
                return {"stopped_after_epoch": epoch + 1}
        if isinstance(s.average, Swa):
            best_state, best_epoch = _finish_swa(s, cfg, out, prepared, history, train_photos, best_state, best_epoch,
                                                 log=log)
        barrier()  # rank 0's files are complete before any process moves on
        seconds = seconds_before + time.perf_counter() - run_start
        return _conclude(out, prepared, cfg, s, history, best_epoch, best_state, budget, tracker, seconds=seconds,
                         log=log, progress=progress)
    except Exception as exc:
        if tracker is not None:
            tracker.close(failed=True)
            tracker = None
        if is_out_of_memory(exc):
            raise out_of_memory_error(cfg.train.batch_size, cfg.data.size, str(s.runtime.device)) from None
        raise
    finally:
        if tracker is not None:
            tracker.close()


def _run_facts(cfg: Config, prepared: Prepared, s: Session, train_photos: torch.Tensor, budget: Budget | None) -> dict:
    """What every checkpoint carries besides the epoch's progress: the weights, the config, the data and
    the fingerprints of the photos trained on, the data's identity, the margins' state and a final fit's budget."""
    return {"model": _evaluated(s).state_dict(), "config": cfg.to_dict(), "data": prepared.source,
            "train_photos": train_photos, "data_identity": prepared.identity(),
            "margins": s.margins.reduced().state_dict(), **({} if budget is None else {"budget": budget.to_dict()})}


def _conclude(out: Path, prepared: Prepared, cfg: Config, s: Session, history: list[dict], best_epoch: int,
              best_state: dict | None, budget: Budget | None, tracker, *, seconds: float,
              log: Callable[[str], None], progress: bool) -> dict:
    """After the last epoch: a held-out run's best model scored and summarized (finish_run), a final fit's
    last one (finish_final_fit); the summary (and the model, with train.mlflow_model) sent to the trackers."""
    held_out = cfg.data.fold is not None
    if held_out:
        summary = finish_run(out, prepared, cfg, s, history, best_epoch, best_state=best_state, seconds=seconds,
                             log=log, progress=progress)
    else:
        summary = finish_final_fit(out, prepared, cfg, s, history, budget, seconds=seconds, log=log)
    if tracker is not None:
        kept = s.model if held_out else _evaluated(s)  # finish_run loaded best.pt's weights into s.model
        tracker.log_summary(summary, model=kept if cfg.train.mlflow_model else None, log=log)
    return summary


def _open_run(cfg: Config, data, out: Path, *, resume: bool, progress: bool, log: Callable[[str], None],
              budget: Budget | None) -> tuple[Prepared, bool, dict | None, Session, Budget | None]:
    """Everything before the first epoch: claim OUT, check the trackers, set threads, prepare and check the
    data, read the checkpoint to resume from, build the session, and say what will be trained on what.
    Returns (prepared data, whether resuming, the checkpoint or None, the session, a final fit's budget)."""
    claim_folder(out, data=data, ours=lambda name: True)  # the data, link and file rules; a run's own below
    resume = check_run_folder(out, resume)
    if is_main():
        trackers.check(cfg)  # MLflow missing or its server unreachable: say so before any work
    threads = apply_threads(cfg.train.threads)
    if threads.reduced:  # once per process: after it, torch's count is already the lowered one
        log(threads.describe())
    prepared = data if isinstance(data, Prepared) else prepare(cfg, data, log=log)
    prepared.check(cfg)
    ckpt = _resume_checkpoint(out, cfg, prepared) if resume else None
    s = _setup(cfg, prepared, ckpt, progress=progress)
    faces = prepared.face_boxes(cfg, progress=progress)
    if faces is not None:
        log(f"data.crop=face: no face found in {faces.fallbacks} of {len(prepared.table)} photos; those are centre-cropped")
    if s.model.face is not None:
        log(face_features_line(cfg, s.train_ds.faces, s.val_ds.faces))
    if cfg.data.fold is None:
        budget = _final_budget(cfg, ckpt, budget)
    log(_data_line(cfg, prepared, s, budget))
    return prepared, resume, ckpt, s, budget


def _final_budget(cfg: Config, ckpt: dict | None, budget: Budget | None) -> Budget:
    """A final fit's budget: the one given; else, resumed, the one its first call recorded (unless its epochs
    changed); else the config's epochs."""
    saved = Budget(**_budget_fields(ckpt["budget"])) if ckpt and ckpt.get("budget") else None
    return budget or (saved if saved and saved.epochs == cfg.train.epochs else Budget(cfg.train.epochs, "config"))


def _progress_so_far(ckpt: dict | None, cfg: Config, out: Path, *, log: Callable[[str], None]) -> tuple:
    """(history, best score, best epoch, epochs done, epochs without a better score, seconds so far): nothing
    for a new run; a resumed run's, with best.pt completed where the stop came before it was written."""
    if not ckpt:
        return [], -1.0, 0, 0, 0, 0.0
    start_epoch, best_score, best_epoch = ckpt["epoch"], ckpt["best_score"], ckpt["best_epoch"]
    if best_epoch == start_epoch and is_main():  # best.pt may not have been saved yet
        resumable_only = ("optimizer", "scheduler", "scaler", "train_model", "swa")
        save_checkpoint(out / "best.pt", {k: v for k, v in ckpt.items() if k not in resumable_only})
    # With SWA the run's result is the average, not this best single epoch: say so, or the line misleads.
    swa = (f"; best.pt becomes the SWA average of epochs {cfg.train.swa}-{cfg.train.epochs} when training ends"
           if cfg.train.swa else "")
    log(f"resuming {out} after epoch {start_epoch} " + (
        f"(best single epoch so far: macro F1 {best_score:.4f} at epoch {best_epoch}{swa})" if cfg.data.fold is not None
        else "(no one held out: nothing validated, the last epoch is kept)"))
    return (list(ckpt["history"]), best_score, best_epoch, start_epoch, ckpt["stale"],
            float(ckpt.get("seconds", 0.0)))


def _write_epoch(out: Path, cfg: Config, s: Session, state: dict, *, improved: bool, history: list[dict]) -> None:
    """Rank 0's files after an epoch: config.yaml, last.pt, best.pt when it improved, metrics.csv."""
    out.mkdir(parents=True, exist_ok=True)  # first write: only now does the run folder exist
    write_text(out / "config.yaml", config_mod.dump(cfg))
    # last.pt before best.pt: a stop between them leaves a run that --resume continues (and
    # completes best.pt from last.pt); a folder with no checkpoint at all is started afresh.
    save_checkpoint(out / "last.pt", {**state, **_average_state(s), "optimizer": s.optimizer.state_dict(),
                                      "scheduler": s.scheduler.state_dict(), "scaler": s.scaler.state_dict()})
    if improved:
        save_checkpoint(out / "best.pt", state)
    write_csv(out / "metrics.csv", pd.DataFrame(history))


def _epoch_line(cfg: Config, row: dict, epoch: int, improved: bool) -> str:
    """'epoch 3/12  train_loss ...  macro_f1 ...  412 img/s  *best'."""
    shown = "  ".join(f"{k} {row[k]:.4f}" for k in ("train_loss", "val_loss", *METRIC_KEYS) if row[k] is not None)
    return (f"epoch {epoch + 1}/{cfg.train.epochs}  {shown}  {row['images_per_s']:.0f} img/s"
            + ("  *best" if improved and cfg.train.select != "last" else ""))


def _silent(_: str) -> None:
    return None


def _data_line(cfg: Config, prepared: Prepared, s: Session, budget: Budget | None) -> str:
    """The log line that says who trains and who is held out (no one, for a final fit)."""
    if cfg.data.fold is None:
        return (f"data: {len(s.train_ds)} training photos of {prepared.table['person'].nunique()} people, no one held "
                f"out (data.fold=null): nothing is validated; {budget.describe()}; the last epoch is kept")
    n_val_people = prepared.table.iloc[prepared.split(cfg.data.fold)[1]]["person"].nunique()
    grouped = (f"; {prepared.face_grouped['ids']} ids with a matching face kept in {prepared.face_grouped['groups']} "
               "group(s)" if prepared.face_grouped else "")
    return (f"data: {len(s.train_ds)} training photos, {len(s.val_ds)} validation photos ({n_val_people} people "
            f"held out, fold {cfg.data.fold} of {cfg.data.folds}{grouped})")


def _budget_fields(saved: dict) -> dict:
    return {"epochs": int(saved["epochs"]), "source": str(saved["source"]),
            "best_epochs": tuple(saved.get("best_epochs", ()))}


def face_features_line(cfg: Config, train_faces: np.ndarray, val_faces: np.ndarray) -> str:
    """The log line that counts the photos without a face, which the heads read as zeros plus the flag."""
    what = ("the heads read the face descriptor alone" if cfg.model.name == FACE_MODEL else
            "the 18-way head reads the face descriptor beside the CNN" if cfg.model.heads == "single" else
            "the gender and age heads read the face descriptor beside the CNN")
    val = f" and {no_face_count(val_faces)} of {len(val_faces)} validation" if cfg.data.fold is not None else ""
    return (f"face features ({cfg.data.face_detectors}): {what}; no face found in {no_face_count(train_faces)} of "
            f"{len(train_faces)} training{val} photos (they read a zero descriptor and the no-face flag)")


def _resume_checkpoint(out: Path, cfg: Config, prepared: Prepared) -> dict:
    """last.pt, after checking that the resumed run keeps its data and its settings."""
    ckpt = load_checkpoint(out / "last.pt")
    if not isinstance(ckpt, dict) or not {"model", "config", "optimizer", "epoch"} <= set(ckpt):
        raise UserError(f"{out}/last.pt is not a maskcls training checkpoint")
    if ckpt.get("data_identity"):  # by content: a copy of the data resumes, the same path edited does not
        refuse_other_data(str(out), ckpt["data_identity"], prepared.identity(), prepared.source)
    elif ckpt.get("data") != prepared.source:
        raise UserError(f"{out} was trained on {ckpt.get('data')}, not on {prepared.source}; resume it with its "
                        "own data or start a new run")
    changed = config_mod.resume_conflicts(config_mod.from_dict(ckpt["config"]), cfg)
    if changed:
        raise UserError(f"{out}/last.pt was trained with other settings: {', '.join(changed)}. A resumed run keeps "
                        f"its settings (only {', '.join(config_mod.RESUMABLE_CHANGES)} may change); "
                        "start a new run to try others")
    return ckpt


def _setup(cfg: Config, prepared: Prepared, ckpt: dict | None, *, progress: bool) -> Session:
    runtime = Runtime.from_settings(device=cfg.train.device, amp=cfg.train.amp, channels_last=cfg.train.channels_last)
    train_ds, val_ds = prepared.datasets(cfg, cfg.data.fold, progress=progress)
    if cfg.model.heads == "single" and not (train_ds.targets.numpy() >= 0).all(1).any():
        raise UserError(f"{prepared.source}: no photo has all three labels, which a single 18-way head needs; "
                        "use model.heads=multi")
    torch.manual_seed(cfg.train.seed)
    # On resume the weights come from last.pt: never fetch pretrained ones again.
    model = model_for(cfg, "none" if ckpt else None).to(runtime.device)
    # Write the normalisation actually used (the backbone's pretrained config unless overridden),
    # so config.yaml is the fully resolved setting, not "whatever the model said".
    cfg.data.mean = cfg.data.mean or [round(v / 255, 6) for v in model.mean.flatten().tolist()]
    cfg.data.std = cfg.data.std or [round(v / 255, 6) for v in model.std.flatten().tolist()]
    if model.face is not None and not ckpt:  # on resume the standardization comes back with the weights
        model.face.fit(train_ds.faces)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, len(loader_for(train_ds, cfg, runtime.device, train=True)))
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.amp_dtype == torch.float16)
    if ckpt:
        _load_training_state(ckpt, cfg, model, optimizer, scheduler, scaler)
    margins = MarginTracker(len(train_ds))
    if ckpt and "margins" in ckpt:
        # the sums of every process, already reduced: rank 0 keeps them, the others start at zero
        if is_main():
            margins.load_state_dict(ckpt["margins"])
    loss_fn = build_loss(cfg, train_ds.targets.numpy(), runtime.device)
    mixer = build_mixer(cfg)
    if mixer is not None:
        mixer.check_heads(model.heads.keys())
    average = build_averaging(cfg, model)
    if ckpt and isinstance(average, Ema):
        average.load_state_dict(ckpt["model"])  # last.pt's "model" is the average; "train_model" the trained weights
    elif ckpt and isinstance(average, Swa) and "swa" in ckpt:
        average.load_state_dict(ckpt["swa"])
    return Session(model, optimizer, scheduler, scaler, loss_fn, train_ds, val_ds,
                   loader_for(val_ds, cfg, runtime.device, train=False), runtime,
                   prepared.score_targets[prepared.split(cfg.data.fold)[1]], _network(model, cfg, runtime), mixer,
                   average, margins)


def _load_training_state(ckpt: dict, cfg: Config, model: torch.nn.Module, optimizer, scheduler, scaler) -> None:
    """Resume: the trained weights, the optimizer's, the schedule's and the loss scaler's state from last.pt."""
    try:
        model.load_state_dict(ckpt.get("train_model", ckpt["model"]))
    except RuntimeError as exc:
        raise UserError(f"last.pt does not fit {cfg.model.name} ({cfg.model.heads} heads): "
                        f"{str(exc).splitlines()[0]}") from None
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    scaler.load_state_dict(ckpt["scaler"])


def _network(model: torch.nn.Module, cfg: Config, runtime: Runtime) -> torch.nn.Module:
    """What the training steps call: the model, wrapped for several processes (DDP) and compiled if asked."""
    net: torch.nn.Module = model
    if runtime.world > 1:  # gradients averaged over the processes at every step
        # Frozen-backbone epochs leave backbone parameters without gradients: DDP must expect that.
        net = DistributedDataParallel(model, device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None,
                                      find_unused_parameters=cfg.model.freeze_epochs > 0)
    if cfg.train.compile:
        net = torch.compile(net)
    return net


def _run_epoch(s: Session, cfg: Config, epoch: int, *, progress: bool) -> dict:
    """Train one epoch and validate; returns metrics.csv's row."""
    # Everything random in an epoch derives from (seed, epoch): resuming replays it exactly.
    epoch_seed = cfg.train.seed * 100_003 + epoch
    torch.manual_seed(epoch_seed)
    s.train_ds.set_epoch_seed(epoch_seed)
    if s.mixer is not None:
        s.mixer.set_epoch_seed(epoch_seed)
    loader = loader_for(Indexed(s.train_ds), cfg, s.runtime.device, train=True,
                        generator=torch.Generator().manual_seed(epoch_seed))
    stats = train_one_epoch(s.net, loader, s.optimizer, s.scheduler, s.loss_fn, runtime=s.runtime, scaler=s.scaler,
                            frozen=epoch < cfg.model.freeze_epochs, log_every=cfg.train.log_every,
                            desc=f"epoch {epoch + 1}/{cfg.train.epochs}", progress=progress, mixer=s.mixer,
                            ema=s.average if isinstance(s.average, Ema) else None, record=s.margins.update)
    if isinstance(s.average, Swa):
        s.average.end_of_epoch(s.model, epoch + 1)
    row = {"epoch": epoch + 1, "train_loss": all_mean(stats["train_loss"]), "val_loss": None,
           **dict.fromkeys(METRIC_KEYS), "lr": s.optimizer.param_groups[-1]["lr"],
           "images_per_s": stats["images_per_s"] * s.runtime.world, "seconds": stats["train_seconds"]}
    probs = None
    if cfg.data.fold is not None:  # --fold none: no one to validate on
        evaluated = s.average.module if isinstance(s.average, Ema) else s.model if s.runtime.world > 1 else s.net
        probs = _validate(s, evaluated, desc="validate", progress=progress)
        row.update(val_loss=log_loss(s.val_targets, probs), **compute_metrics(s.val_targets, probs))
    if not np.isfinite(stats["train_loss"]) or (probs is not None and not np.isfinite(probs).all()):
        raise UserError(f"training diverged in epoch {epoch + 1} (the loss is not a number); lower train.lr, check "
                        "data.mean/std, or use train.amp=none")
    return row


def _evaluated(s: Session) -> torch.nn.Module:
    """The weights validation scores and best.pt holds: the moving average with train.ema, else the model
    (SWA's average replaces best.pt only once training ends: see _finish_swa)."""
    return s.average.module if isinstance(s.average, Ema) else s.model


def _average_state(s: Session) -> dict:
    """What last.pt holds beside "model" so that a resumed run continues the same average."""
    if isinstance(s.average, Ema):
        return {"train_model": s.model.state_dict()}
    if isinstance(s.average, Swa):
        return {"swa": s.average.state_dict()}
    return {}


def _finish_swa(s: Session, cfg: Config, out: Path, prepared: Prepared, history: list[dict], train_photos: torch.Tensor,
                best_state: dict | None, best_epoch: int, *, log: Callable[[str], None]) -> tuple[dict | None, int]:
    """best.pt becomes the average of the epochs from train.swa on, its BatchNorm statistics recomputed
    over the training photos; (best_state, best_epoch) for finish_run."""
    if s.average.count == 0:
        log(f"train.swa: training stopped before epoch {cfg.train.swa}, so nothing was averaged; best.pt is the "
            "best single epoch")
        return best_state, best_epoch
    seed = cfg.train.seed * 100_003 + len(history)  # the statistics pass draws its photos reproducibly
    s.train_ds.set_epoch_seed(seed)
    loader = loader_for(s.train_ds, cfg, s.runtime.device, train=True, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        model = s.average.finalize(loader, s.runtime.device)
    sync_buffers(model)
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    last = len(history)
    log(f"train.swa: best.pt is the average of epochs {cfg.train.swa}-{last} ({s.average.count} epochs), "
        "BatchNorm statistics recomputed")
    if is_main():
        save_checkpoint(out / "best.pt", {"model": state, "config": cfg.to_dict(), "epoch": last,
                                          "data": prepared.source, "history": history, "best_epoch": last,
                                          "swa_epochs": [cfg.train.swa, last], "train_photos": train_photos})
    return state, last


def _validate(s: Session, model: torch.nn.Module, *, desc: str, progress: bool) -> np.ndarray:
    """(N, 18) for the whole validation fold: each process predicts its rows, then they are gathered."""
    sync_buffers(s.model)
    if model is not s.model and not isinstance(model, DistributedDataParallel):
        sync_buffers(model)  # the moving average's buffers follow each process's own batches
    probs = predict_proba(model, s.val_loader, runtime=s.runtime, desc=desc, progress=progress)
    rows = eval_rows(len(s.val_ds), s.runtime.rank, s.runtime.world)
    return gather_rows(rows, probs, len(s.val_ds))


def _summary_extras(cfg: Config, prepared: Prepared, s: Session, last: int) -> dict:
    """summary.json's entries for what a run may use: weight averaging, the face crop, face features."""
    extras: dict = {}
    if isinstance(s.average, Swa) and s.average.count:
        extras["averaged"] = f"swa: epochs {cfg.train.swa}-{last}"
    elif isinstance(s.average, Ema):
        extras["averaged"] = f"ema: decay {cfg.train.ema:g}"
    faces = prepared.face_boxes(cfg, progress=False)
    if faces is not None:
        extras["face_fallbacks"] = faces.fallbacks
    if s.model.face is not None:
        extras["face_features"] = {"no_face_train": no_face_count(s.train_ds.faces), "cascade": cfg.data.face_detectors}
        if cfg.data.fold is not None:
            extras["face_features"]["no_face_val"] = no_face_count(s.val_ds.faces)
    return extras


def finish_final_fit(out: Path, prepared: Prepared, cfg: Config, s: Session, history: list[dict], budget: Budget, *,
                     seconds: float, log: Callable[[str], None]) -> dict:
    """A run that held no one out: summary.json says so and where its epochs came from, the curves show
    the training loss alone; there is no score to write (evaluate it on other labelled people)."""
    last = len(history)
    summary = {"held_out": "none", "kept": "last_epoch", "best_epoch": last, "epochs": last,
               "planned_epochs": cfg.train.epochs, "epochs_from": budget.to_dict(), "selected_by": "last_epoch",
               "fold": None, "folds": cfg.data.folds, "train_photos": len(s.train_ds),
               "train_people": int(prepared.table["person"].nunique()), "val_photos": 0, "val_people": 0,
               "model": cfg.model.name, "heads": cfg.model.heads, "device": s.runtime.device.type,
               "processes": s.runtime.world, "seconds": round(seconds, 1),
               "seconds_per_epoch": round(seconds / max(1, last), 2), "train_loss": history[-1]["train_loss"],
               **_summary_extras(cfg, prepared, s, last)}
    margins = s.margins.reduced()  # every process takes part in the reduction
    if not is_main():
        return summary
    write_csv(out / "train_margins.csv", margins.frame(prepared.table["path"].tolist()))
    plot_curves(pd.DataFrame(history), out / "curves.png", best_epoch=last,
                title=f"{cfg.model.name}, every person (no one held out)", validated=False)
    write_json(out / "summary.json", summary)
    kept = f"the SWA average of epochs {cfg.train.swa}-{last}" if "swa" in summary.get("averaged", "") else f"epoch {last}"
    log(f"kept {kept} of {last}, trained on all {summary['train_people']} people (no one held out, so no score here: "
        f"`maskcls evaluate {out} OTHER_DATA` scores it on other labelled people); run in {out}")
    return summary


def finish_run(out: Path, prepared: Prepared, cfg: Config, s: Session, history: list[dict], best_epoch: int, *,
               seconds: float, log: Callable[[str], None], progress: bool, best_state: dict | None = None) -> dict:
    """Load best.pt's weights, predict the validation fold once more and write the summary, the
    probabilities and the figures: they describe exactly the checkpoint that predict and classify use."""
    s.model.load_state_dict(best_state if best_state is not None else load_checkpoint(out / "best.pt")["model"])
    probs = _validate(s, s.model, desc="best model", progress=progress)
    targets = s.val_targets
    metrics = scored(targets, probs)
    val_idx = prepared.split(cfg.data.fold)[1]
    val = prepared.table.iloc[val_idx].reset_index(drop=True)
    summary = {**metrics, "val_loss": log_loss(targets, probs), "best_epoch": best_epoch, "epochs": len(history),
               "planned_epochs": cfg.train.epochs,
               "selected_by": "last_epoch" if cfg.train.select == "last" else
               "macro_f1" if metrics["macro_f1"] is not None else "mean_task_f1",
               "fold": cfg.data.fold, "folds": cfg.data.folds, "train_photos": len(s.train_ds),
               "val_photos": len(val), "val_people": int(val["person"].nunique()),
               "model": cfg.model.name, "heads": cfg.model.heads, "device": s.runtime.device.type,
               "processes": s.runtime.world,
               "seconds": round(seconds, 1), "seconds_per_epoch": round(seconds / max(1, len(history)), 2),
               **_summary_extras(cfg, prepared, s, best_epoch)}  # with SWA best_epoch is the last
    margins = s.margins.reduced()  # every process takes part in the reduction
    if not is_main():
        return summary
    write_csv(out / "val_predictions.csv", pd.DataFrame({
        "path": val["path"], "person": val["person"], "label": val["label"], "pred": probs.argmax(1),
        "confidence": probs.max(1).round(4)}))
    write_csv(out / "val_probs.csv", probs_frame(val, probs, fold=cfg.data.fold))
    train_paths = prepared.table["path"].to_numpy()[prepared.split(cfg.data.fold)[0]].tolist()
    write_csv(out / "train_margins.csv", margins.frame(train_paths))
    _plot_fold(out, cfg, history, best_epoch, targets, probs, metrics)
    write_json(out / "summary.json", summary)
    what = _what_was_scored(cfg, summary, best_epoch, len(history))
    # Scored against the labels DATA records (after corrections); ablate and improve then score the same
    # people against their answer key, a second figure that this line must not be mistaken for.
    log(f"{what}, on the {summary.get('val_people')} validation people's recorded labels: "
        f"{format_scores(summary)}; run in {out}")
    return summary


def _plot_fold(out: Path, cfg: Config, history: list[dict], best_epoch: int, targets: np.ndarray, probs: np.ndarray,
               metrics: dict) -> None:
    """A held-out run's figures: its curves, and (with all three labels) per-class F1 and the confusion."""
    names = labels.class_names(cfg.score_cutoffs)
    plot_curves(pd.DataFrame(history), out / "curves.png", best_epoch=best_epoch,
                title=f"{cfg.model.name}, fold {cfg.data.fold}")
    if metrics["macro_f1"] is not None:
        counts = metrics["classes"]
        f1, support = per_class_f1(targets, probs)
        plot_per_class_f1(f1, support, names, out / "per_class_f1.png", title=f"validation fold {cfg.data.fold}",
                          macro_f1=metrics["macro_f1"], averaged=counts["averaged"],
                          with_photos=counts["with_photos"])
        plot_confusion(confusion(targets, probs), names, out / "confusion.png",
                       title=f"{cfg.model.name}, validation fold {cfg.data.fold}: macro F1 {metrics['macro_f1']:.3f}")


def _what_was_scored(cfg: Config, summary: dict, best_epoch: int, epochs: int) -> str:
    """What was scored, in words: "best epoch 3 of 5", "last epoch 5 of 5" (train.select=last: no epoch was
    chosen as best), or the SWA average, which is no epoch of the run (not an epoch whose own line differs)."""
    if "swa" in summary.get("averaged", ""):
        what = f"the SWA average of epochs {cfg.train.swa}-{best_epoch}"
    else:
        what = f"{'last' if cfg.train.select == 'last' else 'best'} epoch {best_epoch}"
    return what + f" of {epochs}"


