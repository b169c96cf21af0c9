"""Losses: masked cross-entropy (focal when asked) per head, summed over the tasks of ``labels.TASKS``."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import labels
from ..choices import HEADS, LOSSES
from ..config import unknown_choice


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


def soft_cross_entropy(logits: torch.Tensor, soft: torch.Tensor, *, weight: torch.Tensor | None = None,
                       smoothing: float = 0.0, gamma: float = 0.0) -> torch.Tensor:
    """``masked_cross_entropy`` for soft labels (mixup/cutmix): soft is (N, K), each row the share of each
    class, summing to at most 1 (less when a mixed-in label is unknown).

    Linear in the labels: the loss of a row mixed lam : 1 - lam is lam * loss(a) + (1 - lam) * loss(b),
    each part with its class's weight, smoothing and focal factor; a one-hot row gives exactly
    masked_cross_entropy's value.
    """
    logits = logits.float()
    log_p = logits.log_softmax(1)
    per_class = -((1 - smoothing) * log_p + smoothing * log_p.mean(1, keepdim=True))  # CE of each hard label
    if gamma > 0:
        per_class = per_class * (1 - log_p.exp()).pow(gamma)
    w = soft if weight is None else soft * weight[None, :]
    return (w * per_class).sum() / w.sum().clamp(min=1e-8)


def head_targets(targets: torch.Tensor, heads: str) -> dict[str, torch.Tensor]:
    """Targets per head. targets: (N, len(TASKS)) in TASKS order, -1 = unknown.

    multi: one column per task, keyed by the task's name (the head's name);
    single: the 18-class label, -1 unless every task is known.
    """
    if heads not in HEADS:
        raise unknown_choice("model.heads", heads)
    if heads == "single":
        full = (targets >= 0).all(1)
        label = torch.as_tensor(labels.encode_targets(targets.clamp(min=0)), device=targets.device)
        return {"class": torch.where(full, label, torch.full_like(label, -1))}
    return {task.name: targets[:, j] for j, task in enumerate(labels.TASKS)}  # multi


def head_size(name: str) -> int:
    """The outputs of head ``name``: 18 for the class head, else the task's classes (labels.HEAD_SIZES)."""
    return labels.HEAD_SIZES[name]


class MultiTaskLoss:
    """Sum of per-head masked losses. targets: (N, len(TASKS)), -1 = unknown; or {head: (N, K) soft labels}."""

    def __init__(self, heads: str, *, smoothing: float = 0.0, gamma: float = 0.0,
                 weights: dict[str, torch.Tensor] | None = None) -> None:
        self.heads, self.smoothing, self.gamma = heads, smoothing, gamma
        self.weights = weights or {}

    def __call__(self, outputs: dict[str, torch.Tensor], targets: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        if isinstance(targets, dict):  # soft labels per head, from training.mixing
            return sum(soft_cross_entropy(outputs[k], q, weight=self.weights.get(k), smoothing=self.smoothing,
                                          gamma=self.gamma) for k, q in targets.items())
        return sum(masked_cross_entropy(outputs[k], t, weight=self.weights.get(k), smoothing=self.smoothing,
                                        gamma=self.gamma) for k, t in head_targets(targets, self.heads).items())


def balanced_weights(targets: np.ndarray, heads: str) -> dict[str, torch.Tensor]:
    """Inverse-frequency class weights per head ('balanced': mean weight 1 over known rows)."""
    out = {}
    for k, t in head_targets(torch.as_tensor(targets), heads).items():
        n = head_size(k)
        counts = torch.bincount(t[t >= 0], minlength=n).float()
        out[k] = torch.where(counts > 0, counts.sum() / (n * counts.clamp(min=1)), torch.ones_like(counts))
    return out


def build_loss(cfg, train_targets: np.ndarray, device: torch.device) -> MultiTaskLoss:
    """The configured loss: smoothing, focal gamma and (optionally) balanced class weights.
    train.loss: ce (cross-entropy) or focal (the same, scaled by (1 - p)^focal_gamma)."""
    if cfg.train.loss not in LOSSES:
        raise unknown_choice("train.loss", cfg.train.loss)
    weights = None
    if cfg.train.class_weights:
        weights = {k: w.to(device) for k, w in balanced_weights(train_targets, cfg.model.heads).items()}
    return MultiTaskLoss(cfg.model.heads, smoothing=cfg.train.label_smoothing,
                         gamma=cfg.train.focal_gamma if cfg.train.loss == "focal" else 0.0, weights=weights)
