"""Augmentation presets (Albumentations 2.x), chosen by name and composed with ``+``.

A photo goes through two stages:

  preprocess  deterministic, the same in training and inference, and cacheable: the crop of ``data.crop``
              (none, center or face: see data.crops), then a resize to data.size.
  augment     random, training only, on the resized image (so it costs little): flips, rotations,
              contrast, colour, blur, dropout, random resized crops (``data.augment``).

``PRESETS`` is the one table of augmentation names: config choices, ``--help`` and the ablation runner
read it. Evaluation never augments: ``eval_transform`` is preprocess only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..choices import AUGMENTATIONS, canonical_augment, parse_augment  # noqa: F401  (read from here too)
from .preprocess import Preprocess


@dataclass(frozen=True)
class Preset:
    help: str
    # (albumentations, size) -> the augment stage's ops. Albumentations is handed in, not imported by this
    # module: it imports torch, and the config reads these names on paths that must start without torch
    # (the ONNX backend).
    ops: Callable[[Any, tuple[int, int]], list] | None = None


_OPS: dict[str, Callable[[Any, tuple[int, int]], list] | None] = {
    "none": None,
    "hflip": lambda A, s: [A.HorizontalFlip(p=0.5)],
    "vflip": lambda A, s: [A.VerticalFlip(p=0.5)],
    "rotate90": lambda A, s: [A.RandomRotate90(p=1.0), A.Resize(height=s[1], width=s[0])],
    "contrast": lambda A, s: [A.CLAHE(clip_limit=(1, 4), p=0.5),
                              A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.3, p=0.7)],
    "colorjitter": lambda A, s: [A.ColorJitter(brightness=(0.8, 1.2), contrast=(0.8, 1.2), saturation=(0.8, 1.2),
                                               hue=(-0.05, 0.05), p=0.8)],
    "blur": lambda A, s: [A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.5), p=0.3)],
    "dropout": lambda A, s: [A.CoarseDropout(num_holes_range=(1, 4), hole_height_range=(0.05, 0.15),
                                             hole_width_range=(0.05, 0.15), fill=128, p=0.5)],
    "randomresizedcrop": lambda A, s: [A.RandomResizedCrop(size=(s[1], s[0]), scale=(0.6, 1.0),
                                                           ratio=(0.9 * s[0] / s[1], 1.1 * s[0] / s[1]),
                                                           interpolation=cv2.INTER_AREA, p=1.0)],
    "trivialaugment": lambda A, s: [_auto().trivial_augment()],
    "randaugment": lambda A, s: [_auto().rand_augment()],
    "flips": lambda A, s: [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)],  # configs from before presets composed
}
PRESETS: dict[str, Preset] = {name: Preset(text, _OPS[name]) for name, text in AUGMENTATIONS.items()}
assert set(_OPS) == set(AUGMENTATIONS), "every preset of choices.AUGMENTATIONS has its ops here, and no other"


def _auto():
    """The torchvision auto-augment module, imported when a pipeline uses it (it imports torch)."""
    from . import autoaugment

    return autoaugment


class Transform:
    """Preprocess, then (training only) a seeded Albumentations pipeline.

    ``transform(image, seed, key)`` is a pure function of its inputs, so a resumed run augments exactly
    as an uninterrupted one, whatever the worker count. ``preprocessed=True`` skips the first stage for
    images that come from the decoded-photo cache, which stores them already cropped and resized.
    """

    def __init__(self, *, preset: str, size: tuple[int, int], train: bool, crop: str = "none",
                 boxes: dict[str, tuple[int, int, int, int] | None] | None = None, detector=None) -> None:
        names = parse_augment(preset)
        self.preprocess = Preprocess(size=size, crop=crop, boxes=boxes, detector=detector)
        self.pipeline = None
        if train and any(PRESETS[n].ops for n in names):
            import albumentations

            ops = [op for n in names if PRESETS[n].ops for op in PRESETS[n].ops(albumentations, size)]
            self.pipeline = albumentations.Compose(ops)
        self.random = self.pipeline is not None

    def __call__(self, image: np.ndarray, seed: int | None = None, key: str | None = None, *,
                 preprocessed: bool = False) -> np.ndarray:
        if not preprocessed:
            image = self.preprocess(image, key)
        if self.pipeline is None:
            return image
        self._seed(seed)
        return self.pipeline(image=image)["image"]

    def _seed(self, seed: int | None) -> None:
        # Compose.set_random_seed hands every child the *same* seed, so a horizontal and a vertical
        # flip would always fire together. Give each child a seed of its own, derived from one seed.
        self.pipeline.set_random_seed(seed)
        children = np.random.SeedSequence(seed).generate_state(len(self.pipeline.transforms))
        for transform, child in zip(self.pipeline.transforms, children):
            transform.set_random_seed(int(child))


def train_transform(preset: str, size: tuple[int, int], *, crop: str = "none", boxes=None,
                    detector=None) -> Transform:
    """The training transform: the crop and resize, then the augmentation ``preset``, seeded per photo."""
    return Transform(preset=preset, size=size, train=True, crop=crop, boxes=boxes, detector=detector)


def eval_transform(size: tuple[int, int], crop: str = "none", *, boxes=None, detector=None) -> Transform:
    """Preprocess only: the crop and the resize. Never augments."""
    return Transform(preset="none", size=size, train=False, crop=crop, boxes=boxes, detector=detector)
