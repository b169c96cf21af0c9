"""The deterministic preprocess every path shares: the crop of ``data.crop``, then an area resize to
``data.size``. Training, prediction, the decoded-photo cache and the exported ONNX graph all read it.

This module needs numpy and OpenCV only (no torch, no Albumentations), so the ONNX serving path, which
must start without torch, crops and resizes with the same code. ``resize_matrix`` writes the same
resize as a matrix, which the ONNX graph multiplies by (serve.export).
"""

from __future__ import annotations

import numpy as np

from ..choices import check_crop
from .crops import center_box


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (width, height) with INTER_AREA, as every cached and uncached path does."""
    import cv2

    width, height = size
    if img.shape[1] == width and img.shape[0] == height:
        return img
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)


def resize_matrix(n_in: int, start: int, stop: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 weights: row i is output pixel i of ``resize`` along one axis, after keeping
    pixels start..stop-1 (the crop). OpenCV's area resize is separable and linear in the pixels, so
    resizing the identity gives its exact weights: image (H, W) -> rows_matrix @ image @ cols_matrix.T."""
    import cv2

    n_crop = stop - start
    if n_crop == n_out:
        inner = np.eye(n_out, dtype=np.float32)
    else:  # each column of the identity is one input pixel; resizing the column axis only
        inner = cv2.resize(np.eye(n_crop, dtype=np.float32), (n_crop, n_out), interpolation=cv2.INTER_AREA)
    out = np.zeros((n_out, n_in), np.float32)
    out[:, start:stop] = inner
    return out


class Preprocess:
    """Crop (``data.crop``: none, center, or face: a given box per photo) then resize to (width, height);
    deterministic.

    ``boxes`` maps a photo's path to its face box (x0, y0, x1, y1); photos without one (or arrays
    passed without a key) get the centre crop, as a photo with no face found does.
    """

    def __init__(self, *, size: tuple[int, int], crop: str = "none",
                 boxes: dict[str, tuple[int, int, int, int] | None] | None = None, detector=None) -> None:
        self.size, self.crop, self.boxes, self.detector = size, check_crop(crop), boxes or {}, detector

    def box(self, image: np.ndarray, key: str | None = None) -> tuple[int, int, int, int]:
        """The crop box for this photo: its face box (looked up, or detected when unknown and a
        detector is given), else the centre crop."""
        box = None
        if self.crop == "face":
            if key is not None and key in self.boxes:
                box = self.boxes[key]
            elif self.detector is not None:
                box = self.detector.box_of(image)
        return box or center_box(image.shape[1], image.shape[0])

    def __call__(self, image: np.ndarray, key: str | None = None) -> np.ndarray:
        if self.crop != "none":
            x0, y0, x1, y1 = self.box(image, key)
            image = image[y0:y1, x0:x1]
        return resize(image, self.size)


