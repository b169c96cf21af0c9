"""What ``Predictor.predict`` accepts, brought to one form: photo paths and (H, W, 3) uint8 RGB arrays.

Accepted: a path (str or Path), a PIL image, a numpy array (uint8 0..255; uint16, scaled as a 16-bit
photo file is; another integer type within 0..255; float: 0..1, or 0..255 when any value is above 1,
never negative), at least 8 pixels a side, greyscale (H, W) or (H, W, 1), RGB (H, W, 3) or RGBA (H, W, 4; alpha
dropped, as PIL's conversion of an RGBA photo drops it); one item, a list of items, or a batch array
(N, H, W, C) / (N, H, W). A PIL image goes through the same conversion as a photo read from disk.
Each item is labelled for the returned frame's ``input`` column: its path, or its position.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..photos import MIN_SIDE

Item = str | Path | np.ndarray


def _is_image(x: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return False
    return isinstance(x, Image.Image)


def array_to_rgb(x: np.ndarray, where: str = "image") -> np.ndarray:
    """One image array -> (H, W, 3) uint8 RGB. Float values in 0..1 are scaled by 255."""
    x = np.asarray(x)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    if x.ndim == 2:
        x = np.repeat(x[:, :, None], 3, axis=2)
    if x.ndim != 3 or x.shape[2] not in (3, 4) or min(x.shape[:2]) < 1:
        raise UserError(f"{where}: expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {x.shape}")
    if min(x.shape[:2]) < MIN_SIDE:  # (64, 48, 2) read as 48x2 images, a channels-first array, ...
        raise UserError(f"{where}: {x.shape[1]}x{x.shape[0]} pixels is not a photo (each side at least {MIN_SIDE}); "
                        "give (H, W), (H, W, C) or a batch (N, H, W, C) with C last")
    x = x[:, :, :3]
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.dtype == np.uint16:  # a 16-bit photo: scaled as a 16-bit file is, never clipped to white
        from ..photos import sixteen_to_eight

        return sixteen_to_eight(x)
    if x.dtype == bool or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise UserError(f"{where}: expected uint8, uint16, integer or float pixels, got {x.dtype}")
    values = x.astype(np.float64)
    if not np.isfinite(values).all():
        raise UserError(f"{where}: the image holds NaN or infinite values")
    if np.issubdtype(x.dtype, np.floating) and values.min(initial=0) < 0:
        # a normalised tensor (mean subtracted): clipping it at 0 would darken the photo without a word
        raise UserError(f"{where}: float pixels from {values.min():.3g} to {values.max():.3g}; give 0..1 or 0..255 "
                        "(undo a mean/std normalisation first)")
    if np.issubdtype(x.dtype, np.floating) and values.max(initial=0) <= 1.0:
        values = values * 255.0
    elif np.issubdtype(x.dtype, np.integer) and (values.min(initial=0) < 0 or values.max(initial=0) > 255):
        # Another integer type with values outside 8 bits: its range is unknown (12-bit? signed?), and
        # clipping would turn the photo white or black without a word.
        raise UserError(f"{where}: {x.dtype} pixels from {values.min():g} to {values.max():g}; give uint8 (0..255), "
                        "uint16 (scaled as 16-bit photos are) or float (0..1)")
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def normalise_items(items: Any) -> tuple[list[Item], list[str | int]]:
    """(items as paths and RGB uint8 arrays, each item's label for the ``input`` column)."""
    from ..photos import pil_to_rgb

    if isinstance(items, (str, Path)) or _is_image(items):
        items = [items]
    elif isinstance(items, np.ndarray):
        # a batch (N, H, W, C) or (N, H, W) of greyscale; one image otherwise
        if items.ndim == 3 and items.shape[0] in (1, 3, 4) and items.shape[2] not in (1, 3, 4):
            raise UserError(f"an array of shape {items.shape} looks channels-first (C, H, W); give (H, W, C) "
                            "(np.transpose(x, (1, 2, 0))), or a list of greyscale images")
        batch = items.ndim == 4 or (items.ndim == 3 and items.shape[2] not in (1, 3, 4))
        items = list(items) if batch else [items]
    elif not isinstance(items, Sequence):
        try:
            items = list(items)
        except TypeError:
            raise UserError(f"expected photo paths, PIL images or image arrays, got {type(items).__name__}") from None
    out: list[Item] = []
    names: list[str | int] = []
    for i, x in enumerate(items):
        if isinstance(x, (str, Path)):
            if not Path(x).is_file():
                raise UserError(f"{x}: {'not a photo file' if Path(x).exists() else 'no such photo'}")
            out.append(x)
            names.append(str(x))
        elif _is_image(x):
            out.append(pil_to_rgb(x))
            names.append(i)
        elif isinstance(x, np.ndarray):
            out.append(array_to_rgb(x, where=f"image {i}"))
            names.append(i)
        else:
            raise UserError(f"item {i}: expected a photo path, a PIL image or an image array, got {type(x).__name__}")
    return out, names
