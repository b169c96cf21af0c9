"""Face boxes for ``data.crop=face``: the face model's detector cascade (faces.detect,
``data.face_detectors``) and its cache (faces.cache, shared with `maskcls faces`, the audit and the
identity checks), so a face box has one home. A margin keeps the hair (it tells gender) and the chin.

The write-up this project grew from found that a tight face crop did not help because it cut the
hair away; the margin is the setting that decides that (``data.face_margin``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..faces.compute import compute_faces
from ..choices import DEFAULT_CASCADE, check_cascade
from ..faces.detect import detect


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


class FaceBoxes:
    """Every photo's crop box from the face cache (computing the faces it lacks, as `maskcls faces`).

    ``boxes(paths)`` returns path -> crop box (x0, y0, x1, y1) or None where no face was found (the
    caller then centre-crops); ``fallbacks`` counts those, ``detected`` the photos computed afresh.
    """

    def __init__(self, *, margin: float, size: tuple[int, int], cache_dir: str | Path | None = None,
                 workers: int | None = None, cascade: str = "+".join(DEFAULT_CASCADE)) -> None:
        self.margin, self.aspect = margin, size[0] / size[1]
        self.cache_dir = cache_dir
        self.cascade = check_cascade(cascade)
        self.workers = workers
        self.detected = 0
        self.fallbacks = 0

    def boxes(self, paths: list[str], *, progress: bool = True) -> dict[str, tuple[int, int, int, int] | None]:
        """Each photo's crop box: its face grown by the margin, or None where no face was found (from the face cache)."""
        faces = compute_faces(paths, cache_dir=self.cache_dir, cascade=self.cascade, workers=self.workers,
                              progress=progress)
        self.detected = faces.computed
        out: dict[str, tuple[int, int, int, int] | None] = {}
        for rec in faces.table.itertuples(index=False):
            out[rec.path] = (None if not isinstance(rec.detector, str) else  # NaN or None: no face
                             grow_box((int(rec.x), int(rec.y), int(rec.w), int(rec.h)), (int(rec.width), int(rec.height)),
                                      margin=self.margin, aspect=self.aspect))
        self.fallbacks = sum(box is None for box in out.values())
        return out

    def box_of(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """The crop box for an in-memory image (no cache: arrays have no file to key on)."""
        found = detect(image, self.cascade)
        if found is None:
            return None
        return grow_box(found.box, (image.shape[1], image.shape[0]), margin=self.margin, aspect=self.aspect)
