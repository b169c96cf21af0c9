"""The preprocess crop (``data.crop``): deterministic, the same in training and inference, so it is cached
with the decoded photo and travels with a run to serving. Its names, help and old spellings are declared
in maskcls.choices (re-exported here); this module holds the centre crop's geometry.
"""

from __future__ import annotations

from ..choices import CROPS, LEGACY_PRESETS, check_crop, note_legacy, split_legacy  # noqa: F401

# Fraction of the photo the common baseline's CenterCrop((320, 256)) keeps of a 384x512 photo.
CENTER_CROP_FRACTION = (256 / 384, 320 / 512)  # (width, height)


def center_box(width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the centre crop in a width x height photo."""
    cw, ch = round(width * CENTER_CROP_FRACTION[0]), round(height * CENTER_CROP_FRACTION[1])
    x0, y0 = (width - cw) // 2, (height - ch) // 2
    return x0, y0, x0 + cw, y0 + ch
