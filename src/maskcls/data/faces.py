"""Face boxes for ``data.crop=face``: OpenCV's Haar cascades (they ship inside opencv-python),
a frontal detector with fallbacks, a margin that keeps the hair (it tells gender) and the chin, and a
disk cache keyed by each photo's content so later epochs, runs and commands never detect twice.

The write-up this project grew from found that a tight face crop did not help because it cut the
hair away; the margin is the setting that decides that (``data.face_margin``).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from ..fileio import write_text
from ..progress import bar as progress_bar
from .images import read_rgb

# Tried in order; the first that finds a face wins. Masks hide the mouth and nose that the default
# frontal cascade leans on, so alt2 and the profile cascade catch some of the masked faces it misses.
CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml", "haarcascade_profileface.xml")
DETECT_WIDTH = 192  # detect on a downscaled copy: 384x512 photos need no more, and it is 4x faster
CACHE_NAME = "faceboxes-v1.json"  # bump when detection changes; the margin is applied after the cache
_local = threading.local()


def default_cache_dir() -> Path:
    """$MASKCLS_CACHE, else ~/.cache/maskcls: the on-disk caches (face boxes, preprocessed photos)."""
    return Path(os.environ.get("MASKCLS_CACHE") or Path.home() / ".cache" / "maskcls")


def _cascades() -> list[cv2.CascadeClassifier]:
    # CascadeClassifier is not thread-safe: one set per thread.
    if not hasattr(_local, "cascades"):
        _local.cascades = [cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, n)) for n in CASCADES]
    return _local.cascades


def detect_face(image: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the largest face in an RGB image, in its own pixels, or None."""
    h, w = image.shape[:2]
    scale = min(1.0, DETECT_WIDTH / w)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        grey = cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    min_side = max(12, int(0.2 * grey.shape[1]))  # a face fills a good part of these portraits
    for cascade in _cascades():
        # Fine scale steps and 3 neighbours: measured on synthetic faces, twice the hits of (1.1, 4)
        # with no false boxes; real faces are found far more easily than drawn ones.
        found = cascade.detectMultiScale(grey, scaleFactor=1.05, minNeighbors=3, minSize=(min_side, min_side))
        if len(found):
            x, y, fw, fh = max(found, key=lambda b: b[2] * b[3])
            return tuple(int(round(v / scale)) for v in (x, y, fw, fh))
    return None


def grow_box(face: tuple[int, int, int, int], image_size: tuple[int, int], *, margin: float,
             aspect: float) -> tuple[int, int, int, int]:
    """The crop (x0, y0, x1, y1) around a face box: ``margin`` of the face's width on each side, more
    above (hair) than below (chin), widened to the model's aspect (width / height) and kept inside."""
    x, y, w, h = face
    width, height = image_size
    x0, x1 = x - margin * w, x + w + margin * w
    y0, y1 = y - 1.2 * margin * h, y + h + 0.8 * margin * h
    cw, ch = x1 - x0, y1 - y0
    if cw / ch < aspect:  # too narrow for the model's frame: widen
        cw = ch * aspect
    else:
        ch = cw / aspect
    cw, ch = min(cw, width), min(ch, height)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    bx0 = int(round(min(max(cx - cw / 2, 0), width - cw)))
    by0 = int(round(min(max(cy - ch / 2, 0), height - ch)))
    return bx0, by0, bx0 + int(round(cw)), by0 + int(round(ch))


def content_key(path: str | Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


class FaceBoxes:
    """Detect faces once per photo content and keep the detections in ``cache_dir/faceboxes-v1.json``.

    ``boxes(paths)`` returns path -> crop box (x0, y0, x1, y1) or None where no face was found (the
    caller then centre-crops); ``fallbacks`` counts those. ``detected`` counts fresh detections.
    """

    def __init__(self, *, margin: float, size: tuple[int, int], cache_dir: str | Path | None = None,
                 workers: int = 4) -> None:
        self.margin, self.aspect = margin, size[0] / size[1]
        self.cache_file = Path(cache_dir or default_cache_dir()) / CACHE_NAME
        self.workers = max(1, workers)
        self.detected = 0
        self.fallbacks = 0

    def _load(self) -> dict[str, list[int] | None]:
        try:
            return json.loads(self.cache_file.read_text())
        except (OSError, ValueError):
            return {}  # no cache yet, or a damaged one: detect again

    def boxes(self, paths: list[str], *, progress: bool = True) -> dict[str, tuple[int, int, int, int] | None]:
        cache = self._load()
        keys = {}
        sizes = {}

        def work(path: str) -> None:
            key = content_key(path)
            keys[path] = key
            if key not in cache:
                img = read_rgb(path)
                sizes[path] = (img.shape[1], img.shape[0])
                found = detect_face(img)
                cache[key] = None if found is None else [*found, img.shape[1], img.shape[0]]
                self.detected += 1

        with ThreadPoolExecutor(self.workers) as pool:
            list(progress_bar(pool.map(work, paths), total=len(paths), desc="finding faces", unit="photo",
                      disable=not progress))
        if self.detected:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            write_text(self.cache_file, json.dumps(cache))
        out: dict[str, tuple[int, int, int, int] | None] = {}
        self.fallbacks = 0
        for path in paths:
            entry = cache[keys[path]]
            if entry is None:
                out[path] = None
                self.fallbacks += 1
            else:
                x, y, w, h, iw, ih = entry
                out[path] = grow_box((x, y, w, h), (iw, ih), margin=self.margin, aspect=self.aspect)
        return out

    def box_of(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """The crop box for an in-memory image (no cache: arrays have no file to key on)."""
        found = detect_face(image)
        if found is None:
            return None
        return grow_box(found, (image.shape[1], image.shape[0]), margin=self.margin, aspect=self.aspect)
