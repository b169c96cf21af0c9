"""The one batching recipe: training (sampler, drop_last) or in-order evaluation, and the sampler weights."""

from __future__ import annotations


import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, Subset, WeightedRandomSampler

from ..choices import SAMPLERS
from ..config import default_workers, unknown_choice


def sample_weights(targets: np.ndarray) -> np.ndarray:
    """Per-photo draw weights for the weighted sampler: rare classes (60+) drawn as often as common ones.
    Photos with an unknown label are grouped by what they do know."""
    keys = np.array(["/".join(map(str, row)) for row in np.asarray(targets)])
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def make_loader(ds: Dataset, *, batch_size: int, workers: int, device: torch.device, train: bool,
                sampler: str = "none", pin_memory: bool = True, generator: torch.Generator | None = None,
                rank: int = 0, world: int = 1) -> DataLoader:
    """Training: shuffled (or weighted) draws, last partial batch dropped when there is more than one
    batch; with several processes, this process's shard of the epoch. Evaluation: every photo once, in
    order (with several processes: the photos rank, rank + world, ..., see ``eval_rows``)."""
    if sampler not in SAMPLERS:
        raise unknown_choice("train.sampler", sampler)
    chosen = None
    if not train and world > 1:
        ds = Subset(ds, eval_rows(len(ds), rank, world).tolist())
    if train and world > 1:
        weights = None
        if sampler == "weighted":
            weights = torch.as_tensor(sample_weights(ds.targets.numpy()), dtype=torch.double)
        chosen = ShardSampler(len(ds), rank=rank, world=world, weights=weights,
                              generator=generator or torch.Generator().manual_seed(0))
    elif train:
        if sampler == "weighted":
            weights = torch.as_tensor(sample_weights(ds.targets.numpy()), dtype=torch.double)
            chosen = WeightedRandomSampler(weights, len(ds), replacement=True, generator=generator)
        else:
            chosen = RandomSampler(ds, generator=generator)
    per_process = len(ds) if not train or world == 1 else -(-len(ds) // world)
    return DataLoader(ds, batch_size=batch_size, sampler=chosen, num_workers=workers,
                      pin_memory=pin_memory and device.type == "cuda",
                      drop_last=train and per_process > batch_size, generator=generator)


def eval_rows(n: int, rank: int, world: int) -> np.ndarray:
    """The evaluation rows one process predicts: rank, rank + world, ... (each row exactly once overall)."""
    return np.arange(rank, n, world)


def loader_for(ds: Dataset, cfg, device: torch.device, *, train: bool,
               generator: torch.Generator | None = None) -> DataLoader:
    """``make_loader`` with a config's batch size, workers, sampler and pin_memory."""
    from .runtime import rank_and_world

    rank, world = rank_and_world()
    workers = default_workers() if cfg.data.workers is None else cfg.data.workers
    return make_loader(ds, batch_size=cfg.train.batch_size, workers=workers, device=device, train=train,
                       sampler=cfg.train.sampler, pin_memory=cfg.data.pin_memory, generator=generator,
                       rank=rank, world=world)


class ShardSampler(Sampler[int]):
    """One process's share of an epoch: every process draws the same full order from the same
    generator (a permutation, or weighted draws with replacement), pads it to a multiple of the world
    size and takes every world-th index from its rank: the shards are disjoint and together cover the
    epoch, for the plain and the weighted sampler alike."""

    def __init__(self, n: int, *, rank: int, world: int, generator: torch.Generator,
                 weights: torch.Tensor | None = None) -> None:
        self.n, self.rank, self.world, self.generator, self.weights = n, rank, world, generator, weights

    def __len__(self) -> int:
        return -(-self.n // self.world)

    def __iter__(self):
        if self.weights is not None:
            order = torch.multinomial(self.weights, self.n, replacement=True, generator=self.generator)
        else:
            order = torch.randperm(self.n, generator=self.generator)
        padded = torch.cat([order, order[: len(self) * self.world - self.n]])
        return iter(padded[self.rank::self.world].tolist())
