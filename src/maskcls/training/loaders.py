"""The one batching recipe: training (sampler, drop_last) or in-order evaluation, and the sampler weights."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, WeightedRandomSampler


def sample_weights(targets: np.ndarray) -> np.ndarray:
    """Per-photo draw weights for the weighted sampler: rare classes (60+) drawn as often as common ones.
    Photos with an unknown label are grouped by what they do know."""
    keys = np.array(["/".join(map(str, row)) for row in np.asarray(targets)])
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def make_loader(ds: Dataset, *, batch_size: int, workers: int, device: torch.device, train: bool,
                sampler: str = "none", pin_memory: bool = True,
                generator: torch.Generator | None = None) -> DataLoader:
    """Training: shuffled (or weighted) draws, last partial batch dropped when there is more than one
    batch. Evaluation: every photo once, in order."""
    chosen = None
    if train:
        if sampler == "weighted":
            weights = torch.as_tensor(sample_weights(ds.targets.numpy()), dtype=torch.double)
            chosen = WeightedRandomSampler(weights, len(ds), replacement=True, generator=generator)
        else:
            chosen = RandomSampler(ds, generator=generator)
    return DataLoader(ds, batch_size=batch_size, sampler=chosen, num_workers=workers,
                      pin_memory=pin_memory and device.type == "cuda",
                      drop_last=train and len(ds) > batch_size, generator=generator)


def default_workers() -> int:
    """The machine's cores, at most 8: past that, decoding rarely keeps up with the model anyway."""
    return min(8, os.cpu_count() or 1)


def loader_for(ds: Dataset, cfg, device: torch.device, *, train: bool,
               generator: torch.Generator | None = None) -> DataLoader:
    """``make_loader`` with a config's batch size, workers, sampler and pin_memory."""
    workers = default_workers() if cfg.data.workers is None else cfg.data.workers
    return make_loader(ds, batch_size=cfg.train.batch_size, workers=workers, device=device, train=train,
                       sampler=cfg.train.sampler, pin_memory=cfg.data.pin_memory, generator=generator)
