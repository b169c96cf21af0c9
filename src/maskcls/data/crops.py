"""The preprocess crop (``data.crop``): deterministic, the same in training and inference, so it is cached
with the decoded photo and travels with a run to serving. Random training transforms are a separate
setting (``data.augment``, see transforms.PRESETS).

Runs and configs written before the crop was its own setting spelled it inside ``data.augment``
(``centercrop+hflip``); ``split_legacy`` reads that spelling and ``note_legacy`` says so once.
This module imports nothing heavy: the config reads its names.
"""

from __future__ import annotations

import sys

CROPS: dict[str, str] = {
    "none": "the whole photo, resized to data.size",
    "center": "the common baseline's centre crop (256x320 of 384x512, width x height)",
    "face": "the face found by the face model's detector cascade (data.face_detectors, cached as `maskcls faces` "
            "caches it), grown by data.face_margin (hair and chin kept); no face found -> the centre crop",
}

# The preset names that spelled a crop inside data.augment before data.crop existed.
LEGACY_PRESETS: dict[str, str] = {"centercrop": "center", "facecrop": "face"}

# Fraction of the photo the common baseline's CenterCrop((320, 256)) keeps of a 384x512 photo.
CENTER_CROP_FRACTION = (256 / 384, 320 / 512)  # (width, height)

_noted: set[str] = set()  # legacy spellings already reported in this process


def check_crop(crop: str) -> str:
    if crop not in CROPS:
        raise ValueError(f"unknown crop {crop!r}; expected one of {', '.join(CROPS)}")
    return crop


def split_legacy(augment: str) -> tuple[str, str | None]:
    """'centercrop+hflip' -> ('hflip', 'center'); 'centercrop' -> ('none', 'center'); a spec without a
    crop comes back unchanged with None. Two crops are a ValueError naming them."""
    parts = [p.strip() for p in str(augment).split("+")]
    crops = [p for p in parts if p in LEGACY_PRESETS]
    if not crops:
        return augment, None
    if len(crops) > 1:
        raise ValueError(f"augmentation {augment!r} has two crops ({', '.join(crops)}); choose one")
    rest = [p for p in parts if p not in LEGACY_PRESETS]
    return "+".join(rest) or "none", LEGACY_PRESETS[crops[0]]


def note_legacy(augment: str, rest: str, crop: str) -> None:
    """One line on stderr, once per spelling and process: where the crop went."""
    if augment in _noted:
        return
    _noted.add(augment)
    print(f"note: data.augment={augment} spells a crop; read as data.crop={crop} and data.augment={rest} "
          "(crops are their own setting now)", file=sys.stderr)


def center_box(width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the centre crop in a width x height photo."""
    cw, ch = round(width * CENTER_CROP_FRACTION[0]), round(height * CENTER_CROP_FRACTION[1])
    x0, y0 = (width - cw) // 2, (height - ch) // 2
    return x0, y0, x0 + cw, y0 + ch
