"""Mixup and CutMix for the multi-head model: timm's ``Mixup`` mixes the photos, and the same mixing
(one lambda, one partner per photo) is applied to the labels of every head.

timm's Mixup mixes one target tensor of ``num_classes``. Our targets are one column per task (or one
18-way class), some unknown (-1). So the mixer hands timm the row numbers 0..N-1 as "classes": the soft
target timm returns is then the (N, N) mixing matrix M (row i: lam on i, 1 - lam on its partner), and
each head's soft labels are M @ one_hot(head labels). Unknown labels are all-zero rows, so a mixed row
carries only its known share. Class weights and label smoothing stay in the loss
(``losses.soft_cross_entropy``), which reduces to the plain masked cross-entropy when nothing is mixed.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from timm.data.mixup import Mixup

from ..errors import UserError
from .losses import head_size, head_targets


class Mixer:
    """``mixer(images, targets) -> (images, {head: (N, K) soft labels})``.

    images: (N, 3, H, W) uint8 or float; targets: (N, len(TASKS)) task labels, -1 = unknown.
    The random draws come from a private NumPy stream (timm draws from ``np.random``), seeded per epoch
    with ``set_epoch_seed``, so a resumed run mixes exactly as an uninterrupted one.
    """

    def __init__(self, *, heads: str, mixup: float = 0.0, cutmix: float = 0.0, switch_prob: float = 0.5,
                 prob: float = 1.0) -> None:
        if mixup <= 0 and cutmix <= 0:
            raise ValueError("Mixer needs mixup > 0 or cutmix > 0")
        self.heads = heads
        self.names = list(head_targets(torch.zeros(1, 3, dtype=torch.long), heads))
        # label_smoothing=0: smoothing belongs to the loss, once, for mixed and unmixed batches alike.
        self.timm = Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, prob=prob, switch_prob=switch_prob, mode="batch",
                          label_smoothing=0.0)
        self._state = np.random.RandomState(0).get_state()

    def set_epoch_seed(self, seed: int) -> None:
        """The seed of this epoch's mixing draws (a resumed run mixes as an uninterrupted one)."""
        self._state = np.random.RandomState(seed % 2**32).get_state()

    def check_heads(self, heads: Iterable[str]) -> None:
        """Refuse a model whose heads are not the ones the mixed labels are built for."""
        heads = sorted(heads)
        if heads != sorted(self.names):
            raise UserError(f"mixup/cutmix: the model has heads {', '.join(heads)} but the labels are mixed "
                            f"for {', '.join(self.names)} (model.heads={self.heads}); the model and model.heads "
                            "must agree")

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n = images.shape[0]
        images = images.float()
        even = n - n % 2  # timm mixes an even batch; an odd last photo stays unmixed
        matrix = torch.eye(n, device=images.device)
        if even:
            outer = np.random.get_state()
            np.random.set_state(self._state)
            try:
                self.timm.num_classes = even  # the "classes" are the rows: timm's target is the mixing matrix
                _, mixed = self.timm(images[:even], torch.arange(even, device=images.device))
            finally:
                self._state = np.random.get_state()
                np.random.set_state(outer)
            matrix[:even, :even] = mixed
        return images, mix_labels(matrix, targets, self.heads)


def mix_labels(matrix: torch.Tensor, targets: torch.Tensor, heads: str) -> dict[str, torch.Tensor]:
    """{head: (N, K) soft labels} = matrix @ one_hot(labels), unknown labels contributing nothing.

    matrix: (N, N), row i the weights of the photos mixed into photo i; targets: (N, len(TASKS)), -1 unknown.
    """
    out = {}
    for name, t in head_targets(targets, heads).items():
        onehot = F.one_hot(t.clamp(min=0), head_size(name)).float() * (t >= 0).float()[:, None]
        out[name] = matrix.float() @ onehot
    return out


def build_mixer(cfg) -> Mixer | None:
    """The configured mixer, or None when train.mixup and train.cutmix are both 0."""
    if cfg.train.mixup <= 0 and cfg.train.cutmix <= 0:
        return None
    return Mixer(heads=cfg.model.heads, mixup=cfg.train.mixup, cutmix=cfg.train.cutmix,
                 switch_prob=cfg.train.mix_switch, prob=cfg.train.mix_prob)
