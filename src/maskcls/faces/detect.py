"""The detector cascade: each photo goes through the detectors in order, and the first that finds a
face decides its box. Measured on the real development set's masked faces (benchmarks/real_photos.py,
docs/faces.md): dlib's HOG detector is fast and precise but misses most faces behind a mask;
OpenCV's Haar cascades (they ship inside opencv-python) catch many of those; dlib's CNN (MMOD) detector
finds still others, at 10-30x HOG's cost, so it is in the cascade only when asked for.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from ..choices import DEFAULT_CASCADE, DETECTORS, check_cascade  # noqa: F401  (read from here too)
from . import models

HOG_MAX_WIDTH = 400  # HOG on a copy at most this wide: a 384x512 photo's face is ~200 px, found at once
HAAR_WIDTH = 192  # as the face crop always did: 4x faster than full size, the same faces found
CNN_MAX_WIDTH = 256  # MMOD finds faces down to ~80 px; a 384x512 photo's face stays above that
HAAR_FILES = ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml", "haarcascade_profileface.xml")
_local = threading.local()


@dataclass(frozen=True)
class Detection:
    """A face box (x, y, w, h) in the photo's own pixels, the detector that found it and its score
    (HOG and CNN: dlib's detection confidence; Haar: the cascade's level weight)."""

    x: int
    y: int
    w: int
    h: int
    detector: str
    score: float

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) in the photo's pixels."""
        return self.x, self.y, self.w, self.h


def _scaled(image: np.ndarray, max_width: int) -> tuple[np.ndarray, float]:
    import cv2

    w = image.shape[1]
    if w <= max_width:
        return image, 1.0
    s = max_width / w
    return cv2.resize(image, (max_width, round(image.shape[0] * s)), interpolation=cv2.INTER_AREA), s


def _largest(found: list[tuple[float, float, float, float, float]], scale: float, name: str) -> Detection | None:
    if not found:
        return None
    x, y, w, h, score = max(found, key=lambda b: b[2] * b[3])
    return Detection(*(int(round(v / scale)) for v in (x, y, w, h)), detector=name, score=float(score))


def _hog(image: np.ndarray) -> Detection | None:
    small, s = _scaled(image, HOG_MAX_WIDTH)
    rects, scores, _ = models.load("hog").run(small, 0, 0.0)
    return _largest([(r.left(), r.top(), r.width(), r.height(), sc) for r, sc in zip(rects, scores)], s, "hog")


def _cnn(image: np.ndarray) -> Detection | None:
    small, s = _scaled(image, CNN_MAX_WIDTH)
    found = models.load("cnn")(np.ascontiguousarray(small), 0)
    return _largest([(d.rect.left(), d.rect.top(), d.rect.width(), d.rect.height(), d.confidence) for d in found],
                    s, "cnn")


def _haar(image: np.ndarray) -> Detection | None:
    import cv2

    if not hasattr(_local, "cascades"):  # CascadeClassifier is not thread-safe: one set per thread
        _local.cascades = [cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, n)) for n in HAAR_FILES]
    small, s = _scaled(image, HAAR_WIDTH)
    grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    min_side = max(12, int(0.2 * grey.shape[1]))  # a face fills a good part of these portraits
    for cascade in _local.cascades:
        # Fine scale steps and 3 neighbours: on synthetic faces twice the hits of (1.1, 4), no false boxes.
        rects, _, weights = cascade.detectMultiScale3(grey, scaleFactor=1.05, minNeighbors=3,
                                                      minSize=(min_side, min_side), outputRejectLevels=True)
        if len(rects):
            return _largest([(*r, w) for r, w in zip(rects, np.ravel(weights))], s, "haar")
    return None


_RUN = {"hog": _hog, "haar": _haar, "cnn": _cnn}


def detect(image: np.ndarray, cascade: tuple[str, ...] = DEFAULT_CASCADE) -> Detection | None:
    """The largest face in an RGB uint8 image (H x W x 3) from the first detector of ``cascade`` that
    finds one, or None."""
    for name in cascade:
        found = _RUN[name](image)
        if found is not None and found.w > 0 and found.h > 0:
            return found
    return None
