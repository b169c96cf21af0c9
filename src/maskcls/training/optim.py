"""Optimizer, parameter groups, the warm-up + cosine schedule, and backbone freezing."""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..choices import OPTIMIZERS, SCHEDULES
from ..config import unknown_choice
from .model import MaskNet


def param_groups(model: MaskNet, cfg) -> list[dict]:
    """Backbone at lr * backbone_lr_mult, heads at lr; no weight decay on biases and norm weights."""
    groups = []
    for params, scale in ((model.backbone_parameters(), cfg.model.backbone_lr_mult), (model.head_parameters(), 1.0)):
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        groups.append({"params": decay, "lr": cfg.train.lr * scale, "weight_decay": cfg.train.weight_decay})
        groups.append({"params": no_decay, "lr": cfg.train.lr * scale, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


# What each name of choices.OPTIMIZERS builds: (param groups, cfg) -> optimizer.
_OPTIMIZERS: dict[str, Callable] = {
    "adamw": lambda groups, cfg: torch.optim.AdamW(groups, lr=cfg.train.lr),
    "sgd": lambda groups, cfg: torch.optim.SGD(groups, lr=cfg.train.lr, momentum=cfg.train.momentum, nesterov=True),
}
assert set(_OPTIMIZERS) == set(OPTIMIZERS), "every optimizer of choices.OPTIMIZERS is built here, and no other"


def build_optimizer(model: MaskNet, cfg) -> torch.optim.Optimizer:
    """train.optimizer by name; a name this does not know is an error, never a silent stand-in."""
    if cfg.train.optimizer not in _OPTIMIZERS:
        raise unknown_choice("train.optimizer", cfg.train.optimizer)
    return _OPTIMIZERS[cfg.train.optimizer](param_groups(model, cfg), cfg)


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float) -> Callable[[int], float]:
    """Linear warm-up to 1, then cosine down to ``min_ratio``; a function of the optimizer step."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, cfg, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """train.schedule by name (choices.SCHEDULES): constant, or cosine (linear warm-up, then cosine decay per step)."""
    if cfg.train.schedule not in _SCHEDULES:
        raise unknown_choice("train.schedule", cfg.train.schedule)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _SCHEDULES[cfg.train.schedule](cfg, steps_per_epoch))


# What each name of choices.SCHEDULES gives: (cfg, steps per epoch) -> the lr factor of an optimizer step.
_SCHEDULES: dict[str, Callable] = {
    "cosine": lambda cfg, steps: warmup_cosine(steps * cfg.train.epochs, int(cfg.train.warmup_epochs * steps),
                                               cfg.train.min_lr_ratio),
    "constant": lambda cfg, steps: (lambda step: 1.0),
}
assert set(_SCHEDULES) == set(SCHEDULES), "every schedule of choices.SCHEDULES is made here, and no other"


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The MaskNet inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def set_backbone_frozen(model: MaskNet, frozen: bool) -> None:
    """Freeze (or release) the backbone; a frozen backbone also keeps its BatchNorm statistics."""
    model = unwrap(model)
    for p in model.backbone.parameters():
        p.requires_grad_(not frozen)
    if frozen:
        model.backbone.eval()
