"""In-sample training dynamics for the label audit: each training photo's margin, per task, averaged
over the epochs it was trained on (Area Under the Margin, Pleiss et al. 2020).

The margin of a photo in a task is p(given label) minus the largest probability of another label,
from the very outputs the training step computed (augmented photo, train mode): no extra forward
pass. A correctly labelled photo is learnt early and its margin climbs towards +1; a mislabeled one
fights the photos that look like it and stays low or negative for most of training, which is what
makes the average a label-error signal even though the photo was trained on. Probabilities rather
than logits keep every margin in [-1, 1], so heads and epochs average on one scale.

RUN/train_margins.csv (written by ``fit``): path, margin_mask, margin_gender, margin_age (the mean
over epochs, empty where the label is unknown) and epochs (how many epochs the photo was seen in).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from .. import labels
from .runtime import rank_and_world

MARGIN_COLUMNS = [f"margin_{t.name}" for t in labels.TASKS]


class Indexed(Dataset):
    """A training dataset whose samples also carry their row index (so a batch's margins find their photos)."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self.targets = ds.targets  # the weighted sampler reads them

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return (*self.ds[i], i)


def head_probs(outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-task (B, size) probabilities from either head layout (the single head's are its marginals)."""
    if "class" in outputs:
        p = outputs["class"].detach().float().softmax(1)
        return {t.name: torch.zeros(p.shape[0], t.size, device=p.device).index_add_(
            1, torch.as_tensor(t.of_class, device=p.device), p) for t in labels.TASKS}
    return {t.name: outputs[t.name].detach().float().softmax(1) for t in labels.TASKS}


def margins(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, K) probabilities, (B,) labels (-1 unknown) -> (B,) p(label) - max other p (NaN where unknown)."""
    known = target >= 0
    t = target.clamp(min=0)
    given = probs.gather(1, t[:, None]).squeeze(1)
    other = probs.scatter(1, t[:, None], -1.0).max(1).values
    return torch.where(known, given - other, torch.full_like(given, float("nan")))


class MarginTracker:
    """Running sums of each training photo's per-task margin and of the epochs it was seen in."""

    def __init__(self, n: int) -> None:
        self.sums = torch.zeros(n, len(labels.TASKS), dtype=torch.float64)
        self.counts = torch.zeros(n, len(labels.TASKS), dtype=torch.float64)

    def update(self, outputs: dict[str, torch.Tensor], targets: torch.Tensor, index: torch.Tensor) -> None:
        """Add one batch. targets: (B, len(TASKS)), -1 unknown; index: (B,) rows of the training set.

        A photo drawn twice in one epoch (the weighted sampler draws with replacement) counts twice,
        as it was trained on twice."""
        probs = head_probs(outputs)
        m = torch.stack([margins(probs[t.name], targets[:, j].to(probs[t.name].device))
                         for j, t in enumerate(labels.TASKS)], 1).double().cpu()
        known = ~torch.isnan(m)
        idx = index.cpu().long()
        self.sums.index_add_(0, idx, torch.nan_to_num(m))
        self.counts.index_add_(0, idx, known.double())

    def reduced(self) -> MarginTracker:
        """The sums over every process (each saw its own shard of each epoch)."""
        if rank_and_world()[1] == 1:
            return self
        out = MarginTracker(0)
        out.sums, out.counts = self.sums.clone(), self.counts.clone()
        dist.all_reduce(out.sums)
        dist.all_reduce(out.counts)
        return out

    def state_dict(self) -> dict:
        """The margins' sums and counts, for the checkpoint."""
        return {"sums": self.sums, "counts": self.counts}

    def load_state_dict(self, state: dict) -> None:
        """Restore the sums and counts (kept only when the shapes match this data)."""
        if tuple(state["sums"].shape) == tuple(self.sums.shape):
            self.sums, self.counts = state["sums"].clone(), state["counts"].clone()

    def frame(self, paths: list[str]) -> pd.DataFrame:
        """train_margins.csv: one row per training photo, in training-set order."""
        counts = self.counts.numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(counts > 0, self.sums.numpy() / np.maximum(counts, 1), np.nan)
        out = pd.DataFrame(mean.round(5), columns=MARGIN_COLUMNS)
        out.insert(0, "path", list(paths))
        out["epochs"] = counts.max(1).astype(int)
        return out
