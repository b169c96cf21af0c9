"""The face descriptor as a model input (model.face_features): one (N, 128) float32 array per set of
photos, NaN rows where no face was found, computed the one way training and every kind of prediction
share: photo files through the cache of `maskcls faces` (computing what it lacks), in-memory images
directly (they have no file to key a cache on), both with the run's own detector cascade."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import models
from .compute import analyse_image, compute_faces
from .describe import DESCRIPTOR_SIZE
from ..choices import check_cascade


def require_face_model(what: str) -> None:
    """One line, before any work, when dlib or its model files cannot load here. Checked even when the
    cache could answer: a run trained with face features must behave the same on every machine."""
    reason = models.available()
    if reason is not None:
        raise UserError(f"{what} reads the face model's descriptor, which cannot load here: {reason}")


def face_descriptors(items: Sequence[str | Path | np.ndarray], *, cache_dir: str | Path | None = None,
                     cascade: str = "hog+haar", workers: int | None = None, progress: bool = False) -> np.ndarray:
    """(N, 128) float32 descriptors of ``items`` (photo paths and/or RGB uint8 arrays), NaN rows where no
    face was found (or a photo could not be read: its own decode error is reported where it is loaded)."""
    names = check_cascade(cascade)
    out = np.full((len(items), DESCRIPTOR_SIZE), np.nan, np.float32)
    paths = [(i, str(x)) for i, x in enumerate(items) if isinstance(x, (str, Path))]
    if paths:
        faces = compute_faces([p for _, p in paths], cache_dir=cache_dir, cascade=names, workers=workers,
                              progress=progress)
        out[[i for i, _ in paths]] = faces.descriptors
    for i, x in enumerate(items):
        if not isinstance(x, (str, Path)):
            record = analyse_image(np.ascontiguousarray(x), names)  # as a file's is computed, without the cache
            if record.found:
                out[i] = record.descriptor
    return out


def no_face_count(descriptors: np.ndarray) -> int:
    """Rows of ``descriptors`` with no face (NaN)."""
    return int(np.isnan(descriptors).any(1).sum())
