"""The one decoder: ``read_rgb`` is the only function that turns a photo file into pixels. Training,
validate (so "validate is clean" means "training can read every photo"), the reports and the face model
all call it. It sits on the ground floor, beside labels and errors, so the face model (faces/) can
decode a photo without importing the data layer above it.

Policy for broken files: a photo that does not decode completely is an error naming the file. That
includes a truncated JPEG, which libjpeg would otherwise decode "successfully" with grey rows at the
bottom and a warning that names no file: a model should not train on half a face without anyone
knowing. Photos with more than ``MAX_PIXELS`` pixels are refused before decoding (decompression bombs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError

# 40 megapixels: 200x the competition's photos; larger ones are refused unread.
MAX_PIXELS = 40_000_000
MIN_SIDE = 8  # pixels: anything smaller is a thumbnail, an icon or a misread array, not a face photo


class PhotoError(UserError):
    """A photo that cannot be used; the message names the file."""


def sixteen_to_eight(arr: np.ndarray) -> np.ndarray:
    """16-bit pixels as 8 bits, one rule for files and arrays: the 16-bit range (0..65535) divided by
    257 when any value is above 255; pixels that already fit 0..255 are kept (an 8-bit photo saved in a
    16-bit container)."""
    arr = np.asarray(arr, dtype=np.uint32)
    scale = 257 if arr.max(initial=0) > 255 else 1
    return (arr // scale).clip(0, 255).astype(np.uint8)


def pil_to_rgb(im: Image.Image) -> np.ndarray:
    """A decoded PIL image as (H, W, 3) uint8 RGB: the EXIF orientation applied, greyscale, RGBA
    (alpha dropped), palette, CMYK and 16-bit modes converted, as every photo read from disk is."""
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = Image.fromarray(sixteen_to_eight(np.asarray(im, dtype=np.uint32)), "L")
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode a photo completely as (H, W, 3) uint8 RGB, or raise ``PhotoError`` naming the file.

    Greyscale, RGBA, palette, CMYK and 16-bit photos come back as 8-bit RGB; the EXIF orientation
    is applied (as a phone's gallery shows the photo).
    """
    try:
        return _decode(path, path)
    except FileNotFoundError:
        raise PhotoError(f"{path}: photo not found") from None


def decode_bytes(data: bytes, name: str = "photo") -> np.ndarray:
    """``read_rgb`` of a photo held in memory (an upload): the same decoder, the same limits, and the
    errors name ``name`` without the hint to run validate."""
    import io

    return _decode(io.BytesIO(data), name, hint="")


def _decode(source, name, *, hint: str | None = None) -> np.ndarray:
    hint = VALIDATE_HINT if hint is None else hint
    try:
        with Image.open(source) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise PhotoError(f"{name}: photo is {w}x{h} pixels, over the {MAX_PIXELS:,}-pixel limit "
                                 "(refused before decoding; resize it first)")
            if min(w, h) < MIN_SIDE:  # the rule arrays follow too (serve.inputs)
                raise PhotoError(f"{name}: {w}x{h} pixels is not a photo (each side at least {MIN_SIDE})")
            im.load()  # full decode: a truncated JPEG raises here instead of coming back half grey
            return pil_to_rgb(im)
    except (PhotoError, FileNotFoundError):
        raise
    except UnidentifiedImageError:
        raise PhotoError(f"{name}: photo does not decode (not a JPEG, PNG or other image file){hint}") from None
    except Exception as exc:  # PIL raises many types for broken files; each means "not a usable photo"
        raise PhotoError(f"{name}: photo does not decode ({exc}){hint}") from None


# Said where a broken photo stops another command; `maskcls validate` itself lists it without the hint.
VALIDATE_HINT = "; run `maskcls validate` on the data"


def decode_error(path: str | Path) -> str | None:
    """What is wrong with a photo (``read_rgb``'s message without the path and the hint to validate),
    or None if it decodes."""
    try:
        read_rgb(path)
    except PhotoError as exc:
        text = str(exc)
        prefix = f"{path}: "
        return (text[len(prefix):] if text.startswith(prefix) else text).removesuffix(VALIDATE_HINT)
    return None
