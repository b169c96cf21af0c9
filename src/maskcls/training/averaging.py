"""Weight averaging: an exponential moving average per step (timm's ModelEmaV3) or stochastic weight
averaging of the last epochs (torch.optim.swa_utils, BatchNorm statistics recomputed).

Both keep their average beside the trained model; fit.py evaluates and saves the average and puts its
state in last.pt, so a resumed run continues the same average.
"""

from __future__ import annotations

import torch
from timm.utils.model_ema import ModelEmaV3
from torch.optim.swa_utils import AveragedModel, update_bn
from torch.utils.data import DataLoader

from .model import MaskNet


class Ema:
    """The moving average of ``model``'s parameters and buffers, updated after every optimizer step.

    timm's decay warm-up (decay = 1 - (1 + step)^(-2/3), capped at ``decay``) keeps the first steps from
    being dominated by the initial weights: runs of a few hundred steps still get a useful average.
    """

    def __init__(self, model: MaskNet, decay: float) -> None:
        self.ema = ModelEmaV3(model, decay=decay, use_warmup=True)

    @property
    def module(self) -> MaskNet:
        """The averaged model."""
        return self.ema.module

    def update(self, model: MaskNet, step: int) -> None:
        """step: optimizer steps taken so far (including this one), which sets the warm-up decay."""
        self.ema.update(model, step=step)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights, for the checkpoint."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the averaged weights from a checkpoint."""
        self.module.load_state_dict(state)


class Swa:
    """Equal-weight average of the end-of-epoch weights from epoch ``start`` (1-based) on."""

    def __init__(self, model: MaskNet, start: int) -> None:
        self.start = start
        self.averaged = AveragedModel(model, use_buffers=False)

    @property
    def module(self) -> MaskNet:
        """The averaged model."""
        return self.averaged.module

    @property
    def count(self) -> int:
        """How many epochs' weights are in the average."""
        return int(self.averaged.n_averaged.item())

    def end_of_epoch(self, model: MaskNet, epoch: int) -> None:
        """epoch: the 1-based epoch just finished."""
        if epoch >= self.start:
            self.averaged.update_parameters(model)

    def finalize(self, loader: DataLoader, device: torch.device) -> MaskNet:
        """The averaged model with BatchNorm statistics recomputed by one pass over ``loader`` (an
        average of weights has no statistics of its own: the averaged ones would not match it)."""
        update_bn(_inputs_on(loader, device), self.module)
        return self.module

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The average and its count, for the checkpoint."""
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the average and its count from a checkpoint."""
        self.averaged.load_state_dict(state)


def _inputs_on(loader: DataLoader, device: torch.device):
    """The model inputs of every batch, on ``device`` (update_bn would move a tensor, not face features' dict)."""
    for images, _ in loader:
        if isinstance(images, dict):
            yield {k: v.to(device) for k, v in images.items()}
        else:
            yield images.to(device)


def build_averaging(cfg, model: MaskNet) -> Ema | Swa | None:
    """The configured average (train.ema or train.swa; config.check refuses both), or None."""
    if cfg.train.ema > 0:
        return Ema(model, cfg.train.ema)
    if cfg.train.swa > 0:
        return Swa(model, cfg.train.swa)
    return None
