"""The learning-rate range test (Smith 2017, as in fastai and torch-lr-finder): a short run with the
rate rising exponentially each step, the loss recorded, stopped when the loss blows up.

``lr_find(cfg, data, out)`` trains the configured model, loss, augmentation and mixing on the training
folds of data.fold (the photos ``train`` would learn from), writes OUT/lr_find.csv and OUT/lr_find.png,
and keeps no weights: nothing of the short run survives it but the curve.
``suggest_lr`` is the pure part: the rate at the steepest descent of the smoothed loss;
``suggestion_band`` the same over several smoothings, which says when the suggestion cannot be trusted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ..config import Config
from ..data.prepare import Prepared, prepare
from ..errors import UserError
from ..fileio import claim_folder, write_csv
from ..progress import bar as progress_bar
from .loaders import loader_for
from .losses import build_loss
from .mixing import build_mixer
from .model import model_for
from .optim import build_optimizer, set_backbone_frozen
from .runtime import Runtime

FILES = ("lr_find.csv", "lr_find.png")


def smooth(losses: np.ndarray, beta: float = 0.9) -> np.ndarray:
    """Exponential moving average with bias correction (fastai's), so the first values are not pulled to 0."""
    out, avg = np.empty(len(losses)), 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def suggest_lr(lrs: np.ndarray, smoothed: np.ndarray) -> float:
    """The rate where the smoothed loss falls fastest (per factor of the rate) before its minimum; the
    minimum's rate / 10 when the descent is too short to have a slope. lrs: increasing, same length."""
    lrs, smoothed = np.asarray(lrs, float), np.asarray(smoothed, float)
    if len(lrs) != len(smoothed) or len(lrs) < 2:
        raise ValueError("suggest_lr needs at least two (rate, loss) points of equal count")
    lowest = int(np.argmin(smoothed))
    if not fell(smoothed):  # never below the range tested: a rate the test did not try is no suggestion
        return float(max(lrs[lowest] / 10, lrs[0]))
    slope = np.gradient(smoothed[: lowest + 1], np.log(lrs[: lowest + 1]))
    return float(lrs[int(np.argmin(slope))])


def fell(smoothed: np.ndarray) -> bool:
    """Whether the smoothed loss fell at some rate of the test: its lowest value comes after the first three
    steps (too few before it for a slope). If not, no rate tried helped, and suggest_lr falls back to the
    minimum's rate / 10, at least the range's start."""
    return int(np.argmin(np.asarray(smoothed, float))) >= 3


SMOOTHINGS = (0.8, 0.9, 0.95, 0.98)  # the EMA betas the suggestion is compared across (0.9: the one reported)
UNSTABLE = 3.0  # the suggestion moves by more than this factor across them: the curve cannot tell


def suggestion_band(lrs: np.ndarray, losses: np.ndarray) -> tuple[float, float]:
    """(lowest, highest) suggestion over ``SMOOTHINGS``: a short or noisy curve moves its steepest descent
    with the smoothing, and a suggestion that moves by a factor of ``UNSTABLE`` or more is a guess."""
    found = [suggest_lr(lrs, smooth(np.asarray(losses, float), beta)) for beta in SMOOTHINGS]
    return float(min(found)), float(max(found))


def _sweep(cfg: Config, train_ds, *, start_lr: float, end_lr: float, steps: int, diverge: float,
           progress: bool) -> tuple[list[float], list[float], bool]:
    """The test itself: a fresh model trained ``steps`` optimizer steps with the rate growing geometrically
    from start_lr to end_lr (the run's own loss, mixing and precision); (rates, losses, stopped early)."""
    runtime = Runtime.from_settings(device=cfg.train.device, amp=cfg.train.amp, channels_last=cfg.train.channels_last)
    torch.manual_seed(cfg.train.seed)
    model = model_for(cfg).to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    growth = (end_lr / start_lr) ** (1 / (steps - 1))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: start_lr / cfg.train.lr * growth ** i)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.amp_dtype == torch.float16)
    loss_fn = build_loss(cfg, train_ds.targets.numpy(), runtime.device)
    mixer = build_mixer(cfg)
    if mixer is not None:
        mixer.check_heads(model.heads.keys())
        mixer.set_epoch_seed(cfg.train.seed)
    model.train()
    set_backbone_frozen(model, False)
    lrs, losses, best, stopped = [], [], math.inf, False
    bar = progress_bar(total=steps, desc="lr-find", unit="step", disable=not progress, leave=False)
    epoch = 0
    while len(lrs) < steps and not stopped:
        train_ds.set_epoch_seed(cfg.train.seed * 100_003 + epoch)
        loader = loader_for(train_ds, cfg, runtime.device, train=True,
                            generator=torch.Generator().manual_seed(cfg.train.seed + epoch))
        for images, targets in loader:
            images, targets = runtime.images(images), targets.to(runtime.device)
            if mixer is not None:
                images, targets = mixer(images, targets)
            lrs.append(optimizer.param_groups[-1]["lr"])
            with runtime.autocast():
                outputs = model(images)
            loss = loss_fn(outputs, targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            losses.append(loss.item())
            bar.update(1)
            smoothed = smooth(np.array(losses))[-1]
            best = min(best, smoothed)
            if not math.isfinite(smoothed) or smoothed > diverge * best:
                stopped = True  # the loss has blown up: later rates say nothing
            if stopped or len(lrs) >= steps:
                break
        epoch += 1
    bar.close()
    del model, optimizer  # no weights survive the test
    return lrs, losses, stopped and len(lrs) < steps  # a blow-up at the last step stopped nothing


def lr_find(cfg: Config, data: str | Path | pd.DataFrame | Prepared, out: str | Path, *, start_lr: float = 1e-7,
            end_lr: float = 10.0, steps: int = 100, diverge: float = 4.0, force: bool = False, progress: bool = True,
            log: Callable[[str], None] = print) -> dict:
    """Run the range test; returns {'suggested_lr', 'min_loss_lr', 'steps', 'stopped_early', 'band', 'unstable',
    'fell', 'files'}.

    The head rate goes from start_lr to end_lr geometrically over ``steps`` optimizer steps (the backbone
    at model.backbone_lr_mult times it, as in training); the run stops early once the smoothed loss
    exceeds ``diverge`` times its lowest value. The suggestion is for train.lr.
    """
    if not 0 < start_lr < end_lr:
        raise UserError(f"the start rate must be positive and below the end rate, got {start_lr:g} "
                        f"and {end_lr:g}")
    if steps < 5:
        raise UserError(f"--steps must be at least 5 to draw a curve, got {steps}")
    out = Path(out)
    claim_folder(out, data=data, ours=lambda name: name in FILES,
                 owner="a range test's")
    there = [name for name in FILES if (out / name).exists()]
    if there and not force:
        raise UserError(f"{out} already holds {', '.join(there)}; pass --force to replace, or choose another folder")
    prepared = data if isinstance(data, Prepared) else prepare(cfg, data, log=log)
    prepared.check(cfg)
    train_ds, _ = prepared.datasets(cfg, cfg.data.fold, progress=progress)
    if len(train_ds) < cfg.train.batch_size:
        raise UserError(f"the training folds hold {len(train_ds)} photos, fewer than one batch of "
                        f"train.batch_size={cfg.train.batch_size}; lower train.batch_size or use more data")
    lrs, losses, stopped = _sweep(cfg, train_ds, start_lr=start_lr, end_lr=end_lr, steps=steps, diverge=diverge,
                                  progress=progress)
    lrs_a, losses_a = np.array(lrs), np.array(losses)
    finite = np.isfinite(losses_a)
    lrs_a, losses_a = lrs_a[finite], losses_a[finite]
    if len(lrs_a) < 2:
        raise UserError("the loss was not a number from the first steps; lower --start-lr or check the data")
    smoothed = smooth(losses_a)
    suggested = suggest_lr(lrs_a, smoothed)
    band = suggestion_band(lrs_a, losses_a)
    unstable = band[1] / band[0] >= UNSTABLE
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "lr_find.csv", pd.DataFrame({"lr": lrs_a, "loss": losses_a, "smoothed": smoothed}))
    from ..figures import plot_lr_find

    plot_lr_find(lrs_a, losses_a, smoothed, suggested, out / "lr_find.png", band=band, unstable=unstable,
                 title=f"{cfg.model.name}: learning-rate range test ({len(lrs_a)} steps)")
    return {"suggested_lr": suggested, "min_loss_lr": float(lrs_a[int(np.argmin(smoothed))]), "steps": len(lrs_a),
            "stopped_early": stopped, "band": list(band), "unstable": unstable, "fell": fell(smoothed),
            "files": [str(out / name) for name in FILES]}
