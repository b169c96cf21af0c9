"""Albumentations presets. Every pipeline resizes to the configured (width, height) first, so train
and inference never disagree on the size, and augmentations run on the small image. Outputs stay
uint8 HWC; the model normalises on the device.

Presets, after the write-up this project grew from:
  none    resize only (what validation and inference always use)
  hflip   + horizontal flip
  flips   + horizontal and vertical flips (+4% accuracy in the write-up)
  light   + horizontal flip, small shift/scale/rotation, brightness/contrast jitter
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

PRESETS = ("none", "hflip", "flips", "light")


class Transform:
    """A seeded Albumentations pipeline: ``transform(image, seed)`` is a pure function of its inputs,
    so a resumed run augments exactly as an uninterrupted one, whatever the worker count."""

    def __init__(self, *, preset: str, size: tuple[int, int]) -> None:
        width, height = size
        # INTER_AREA: the same downscaling as engine.preload, so cached and uncached runs see alike pixels.
        ops: list = [A.Resize(height=height, width=width, interpolation=cv2.INTER_AREA)]
        if preset == "none":
            pass
        elif preset == "hflip":
            ops += [A.HorizontalFlip(p=0.5)]
        elif preset == "flips":
            ops += [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
        elif preset == "light":
            ops += [A.HorizontalFlip(p=0.5),
                    A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-10, 10), p=0.7),
                    A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5)]
        else:
            raise ValueError(f"unknown augmentation preset {preset!r}; expected one of {', '.join(PRESETS)}")
        self.random = preset != "none"
        self.pipeline = A.Compose(ops)

    def __call__(self, image: np.ndarray, seed: int | None = None) -> np.ndarray:
        if self.random:
            self._seed(seed)
        return self.pipeline(image=image)["image"]

    def _seed(self, seed: int | None) -> None:
        # Compose.set_random_seed hands every child the *same* seed, so a horizontal and a vertical
        # flip would always fire together. Give each child a seed of its own, derived from one seed.
        self.pipeline.set_random_seed(seed)
        children = np.random.SeedSequence(seed).generate_state(len(self.pipeline.transforms))
        for transform, child in zip(self.pipeline.transforms, children):
            transform.set_random_seed(int(child))


def train_transform(preset: str, size: tuple[int, int]) -> Transform:
    return Transform(preset=preset, size=size)


def eval_transform(size: tuple[int, int]) -> Transform:
    return Transform(preset="none", size=size)
