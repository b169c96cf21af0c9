"""Plain PyTorch training pieces: photo dataset, masked multi-task loss, one epoch, prediction,
checkpoints. No framework: the loop in train.py reads top to bottom."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from . import labels
from .errors import UserError
from .fileio import atomic_path
from .model import MaskNet, class_log_probs
from .transforms import Transform


def read_rgb(path: str) -> np.ndarray:
    """Decode a photo as 8-bit RGB; greyscale, RGBA, palette and 16-bit PNGs all come back as 3 channels."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f"{path}: photo does not decode (run `maskcls validate` on the data)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def targets_of(table: pd.DataFrame) -> np.ndarray:
    """(N, 3) int64 array of (mask, gender, age_group), -1 where unknown."""
    return table[["mask", "gender", "age_group"]].fillna(-1).to_numpy(dtype=np.int64)


def preload(paths: list[str], size: tuple[int, int], *, progress: bool = True) -> np.ndarray:
    """Decode and resize every photo once: (N, H, W, 3) uint8. Training then never re-parses files."""
    width, height = size
    out = np.empty((len(paths), height, width, 3), np.uint8)

    def load(i: int) -> None:
        out[i] = cv2.resize(read_rgb(paths[i]), (width, height), interpolation=cv2.INTER_AREA)

    with ThreadPoolExecutor(4) as pool:
        list(tqdm(pool.map(load, range(len(paths))), total=len(paths), desc="caching photos", unit="photo",
                  disable=not progress))
    return out


class PhotoDataset(Dataset):
    """Photos (from files or a preloaded array) -> (uint8 CHW tensor, (3,) int64 targets).

    Each sample's augmentation is seeded from (epoch seed, index), so results do not depend on the
    number of workers or on whether the run was resumed.
    """

    def __init__(self, paths: list[str], targets: np.ndarray, transform: Transform, *,
                 cache: np.ndarray | None = None) -> None:
        self.paths = list(paths)
        self.targets = torch.as_tensor(targets, dtype=torch.int64)
        self.transform = transform
        self.cache = cache
        self.epoch_seed = 0

    def set_epoch_seed(self, seed: int) -> None:
        self.epoch_seed = seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.cache[i] if self.cache is not None else read_rgb(self.paths[i])
        img = self.transform(img, seed=(self.epoch_seed * 1_000_003 + i) % (2**32))
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), self.targets[i]


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
                         smoothing: float = 0.0, gamma: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy (focal when gamma > 0) over rows whose target is known (>= 0).

    Rows with target -1 contribute nothing; a batch with no known rows gives 0, not NaN.
    """
    known = target >= 0
    t = target.clamp(min=0)
    logits = logits.float()
    loss = F.cross_entropy(logits, t, reduction="none", label_smoothing=smoothing)
    if gamma > 0:
        pt = logits.softmax(1).gather(1, t[:, None]).squeeze(1)
        loss = loss * (1 - pt).pow(gamma)
    w = known.float() if weight is None else known.float() * weight[t]
    return (loss * w).sum() / w.sum().clamp(min=1e-8)


class MultiTaskLoss:
    """Sum of per-head masked losses. targets: (N, 3) (mask, gender, age_group), -1 = unknown."""

    def __init__(self, heads: str, *, smoothing: float = 0.0, gamma: float = 0.0,
                 weights: dict[str, torch.Tensor] | None = None) -> None:
        self.heads, self.smoothing, self.gamma = heads, smoothing, gamma
        self.weights = weights or {}

    def __call__(self, outputs: dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        return sum(masked_cross_entropy(outputs[k], t, weight=self.weights.get(k), smoothing=self.smoothing,
                                        gamma=self.gamma) for k, t in head_targets(targets, self.heads).items())


def head_targets(targets: torch.Tensor, heads: str) -> dict[str, torch.Tensor]:
    if heads == "single":
        full = (targets >= 0).all(1)
        label = labels.encode(targets[:, 0], targets[:, 1], targets[:, 2])
        return {"class": torch.where(full, label, torch.full_like(label, -1))}
    return {"mask": targets[:, 0], "gender": targets[:, 1], "age": targets[:, 2]}


def balanced_weights(targets: np.ndarray, heads: str) -> dict[str, torch.Tensor]:
    """Inverse-frequency class weights per head ('balanced': mean weight 1 over known rows)."""
    out = {}
    for k, t in head_targets(torch.as_tensor(targets), heads).items():
        n = labels.TASKS.get(k, labels.NUM_CLASSES)
        counts = torch.bincount(t[t >= 0], minlength=n).float()
        w = torch.where(counts > 0, counts.sum() / (n * counts.clamp(min=1)), torch.ones_like(counts))
        out[k] = w
    return out


def sample_weights(targets: np.ndarray) -> np.ndarray:
    """Per-photo draw weights for the weighted sampler: rare classes (60+) drawn as often as common ones.
    Photos with an unknown label are grouped by what they do know."""
    keys = np.array(["/".join(map(str, row)) for row in targets])
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float) -> Callable[[int], float]:
    """Linear warm-up to 1, then cosine down to ``min_ratio``; a function of the optimizer step."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def set_backbone_frozen(model: MaskNet, frozen: bool) -> None:
    """Freeze (or release) the backbone; a frozen backbone also keeps its BatchNorm statistics."""
    for p in model.backbone.parameters():
        p.requires_grad_(not frozen)
    if frozen:
        model.backbone.eval()


def train_one_epoch(model: MaskNet, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, loss_fn: MultiTaskLoss, *,
                    device: torch.device, amp_dtype: torch.dtype | None, scaler: torch.amp.GradScaler,
                    frozen: bool = False, channels_last: bool = False, log_every: int = 20,
                    desc: str = "train", progress: bool = True) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss and images/s. Syncs with the device only to log."""
    model.train()
    set_backbone_frozen(model, frozen)
    running = torch.zeros((), device=device)
    seen, steps = 0, 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False, dynamic_ncols=True)
    for images, targets in bar:
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            outputs = model(images)
        loss = loss_fn(outputs, targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        running += loss.detach()
        seen += images.shape[0]
        steps += 1
        if steps % log_every == 0:
            bar.set_postfix(loss=f"{running.item() / steps:.3f}", img_s=f"{seen / (time.perf_counter() - start):.0f}")
    seconds = time.perf_counter() - start
    return {"train_loss": running.item() / max(steps, 1), "images_per_s": seen / max(seconds, 1e-9),
            "train_seconds": seconds}


@torch.no_grad()
def predict_proba(model: MaskNet, loader: DataLoader, *, device: torch.device, amp_dtype: torch.dtype | None = None,
                  tta: str = "none", channels_last: bool = False, desc: str = "predict",
                  progress: bool = True) -> np.ndarray:
    """(N, 18) class probabilities for every photo of ``loader``, in order. tta: none | hflip."""
    if tta not in ("none", "hflip"):
        raise UserError(f"tta must be none or hflip, got {tta!r}")
    model.eval()
    chunks = []
    for images, _ in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False, dynamic_ncols=True):
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            probs = class_log_probs(model(images)).exp()
            if tta == "hflip":
                probs = (probs + class_log_probs(model(images.flip(3))).exp()) / 2
        chunks.append(probs.float())
    if not chunks:
        return np.zeros((0, labels.NUM_CLASSES), np.float32)
    return torch.cat(chunks).cpu().numpy()


def save_checkpoint(path: str | Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict:
    """Load with weights_only=True: a checkpoint is data, never code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt files raise several types; all are the user's broken file
        raise UserError(f"{path}: not a readable maskcls checkpoint ({exc})") from None
