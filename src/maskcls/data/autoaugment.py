"""Automatic augmentation policies (torchvision's TrivialAugmentWide and RandAugment) as Albumentations
steps, so they compose with the other presets on the uint8 HWC arrays of the augment stage.

Albumentations 2 has no such policies; torchvision's draw from torch's global generator. The step draws
a seed from its own Albumentations generator (which ``Transform`` seeds per photo) and runs the policy
under that seed with torch's generator state saved and restored: the same photo and seed give the same
result, and nothing outside the step sees a changed random state.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np
import torch
from torchvision.transforms import v2


class TorchvisionPolicy(A.ImageOnlyTransform):
    """Apply a torchvision v2 policy (a callable on a (3, H, W) uint8 tensor) to an (H, W, 3) uint8 array."""

    def __init__(self, policy: v2.Transform, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.policy = policy

    def get_params(self) -> dict[str, Any]:
        """A seed for the torchvision policy, drawn from Albumentations' generator (so the seeding rule holds)."""
        return {"policy_seed": int(self.random_generator.integers(0, 2**31 - 1))}

    def apply(self, img: np.ndarray, policy_seed: int = 0, **params: Any) -> np.ndarray:
        """The torchvision policy applied to an (H, W, 3) uint8 image with ``policy_seed``."""
        chw = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(policy_seed)
            out = self.policy(chw)
        return np.ascontiguousarray(out.permute(1, 2, 0).numpy())


def trivial_augment() -> TorchvisionPolicy:
    """TrivialAugment (Mueller & Hutter 2021): one random op at a random strength per photo."""
    return TorchvisionPolicy(v2.TrivialAugmentWide())


def rand_augment(num_ops: int = 2, magnitude: int = 9) -> TorchvisionPolicy:
    """RandAugment (Cubuk et al. 2020) with timm's and torchvision's usual N=2, M=9."""
    return TorchvisionPolicy(v2.RandAugment(num_ops=num_ops, magnitude=magnitude))
