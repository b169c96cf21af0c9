"""One training epoch and in-order prediction: the plain PyTorch loop, nothing hidden."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from .. import labels
from ..progress import bar as progress_bar
from .losses import MultiTaskLoss
from .model import MaskNet, batch_size_of, class_log_probs
from .optim import set_backbone_frozen, unwrap
from .runtime import Runtime


def train_one_epoch(model: MaskNet, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, loss_fn: MultiTaskLoss, *,
                    runtime: Runtime, scaler: torch.amp.GradScaler, frozen: bool = False, log_every: int = 20,
                    desc: str = "train", progress: bool = True, mixer=None, ema=None,
                    record: Callable[[dict, torch.Tensor, torch.Tensor], None] | None = None) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss and images/s. Syncs with the device only to log.
    mixer (training.mixing): mixes each batch's photos and labels; ema (training.averaging): updated after
    every optimizer step. With ``record``, batches carry their row indices (``margins.Indexed``) and every
    unmixed step hands its outputs, targets and indices to ``record`` (the audit's training margins: no
    extra forward pass; a mixed photo has no single given label, so mixed steps are not recorded)."""
    model.train()
    set_backbone_frozen(model, frozen)
    running = torch.zeros((), device=runtime.device)
    seen, steps = 0, 0
    start = time.perf_counter()
    bar = progress_bar(loader, desc=desc, unit="batch", disable=not progress, leave=False)
    for batch in bar:
        images, targets = batch[0], batch[1]
        images = runtime.images(images)
        targets = targets.to(runtime.device, non_blocking=True)
        if mixer is not None:
            images, targets = mixer(images, targets)
        with runtime.autocast():
            outputs = model(images)
        loss = loss_fn(outputs, targets)
        if record is not None and mixer is None:
            record(outputs, targets, batch[2])
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema is not None:
            ema.update(unwrap(model), step=scheduler.last_epoch)  # last_epoch counts steps, resumes included
        running += loss.detach()
        seen += batch_size_of(images)
        steps += 1
        if steps % log_every == 0 or steps == 1:
            # the first step too: a short epoch (fewer steps than log_every) still shows its running loss.
            # refresh=False: drawing now would show the count of the last redraw (0/N in a log file,
            # where redraws are 30 s apart); the next regular redraw shows both the count and these
            bar.set_postfix(loss=f"{running.item() / steps:.3f}", img_s=f"{seen / (time.perf_counter() - start):.0f}",
                            refresh=False)
    seconds = time.perf_counter() - start
    return {"train_loss": running.item() / max(steps, 1), "images_per_s": seen / max(seconds, 1e-9),
            "train_seconds": seconds}


@torch.no_grad()
def predict_proba(model: MaskNet, loader: DataLoader, *, runtime: Runtime, desc: str = "predict",
                  progress: bool = True) -> np.ndarray:
    """(N, 18) class probabilities for every photo of ``loader``, in order (validation; serving, with its
    test-time augmentation and backends, is serve.predictor's)."""
    model.eval()
    chunks = []
    for images, _ in progress_bar(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        images = runtime.images(images)
        with runtime.autocast():
            probs = class_log_probs(model(images)).exp()
        chunks.append(probs.float())
    if not chunks:
        return np.zeros((0, labels.NUM_CLASSES), np.float32)
    return torch.cat(chunks).cpu().numpy()
