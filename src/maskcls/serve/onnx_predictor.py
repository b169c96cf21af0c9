"""Serve exported ONNX files without torch: decode each photo, bring it to the graph's input, run
onnxruntime. `predict`, `classify` and ``Predictor(..., backend="onnx")`` all come here.

The graph crops, resizes and normalises whole photos itself (serve.export), so a photo needs only a
resize to the input size the file declares when it has another size. A ``data.crop=face`` export takes
the face crop at the run's size, which is cut here with the face boxes training used (data.faces).
This module and what it imports load neither torch nor Albumentations (a test checks), so the command
starts in a fraction of the PyTorch path's time (benchmarks/onnx_startup.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import labels
from ..config import FACE_MODEL, Config
from ..photos import read_rgb
from ..progress import bar as progress_bar
from .backends import OnnxMember, Runs, check_members, check_tta, load_onnx
from .inputs import normalise_items

Item = str | Path | np.ndarray


def member_faces(cfg: Config, items: Sequence[Item], descriptors: dict[str, np.ndarray], *,
                 progress: bool) -> np.ndarray | None:
    """The face descriptors a member reads (None when it reads none), computed once per detector cascade
    and shared through ``descriptors`` by the members that read them."""
    if not cfg.model.face_features:
        return None
    from ..faces.features import face_descriptors

    if cfg.data.face_detectors not in descriptors:
        descriptors[cfg.data.face_detectors] = face_descriptors(
            items, cache_dir=cfg.data.cache_dir or None, cascade=cfg.data.face_detectors, progress=progress)
    return descriptors[cfg.data.face_detectors]


class OnnxPredictor:
    """``OnnxPredictor(files)`` loads exported files once; ``predict_proba(items)`` averages them.

    The same answers as ``Predictor`` with the PyTorch backend, within the export's check (1e-4), except
    where OpenCV's uint8 resize rounds a pixel the other way."""

    backend = "onnx"

    def __init__(self, run: Runs, *, tta: str = "none", batch_size: int | None = None) -> None:
        self.tta = check_tta(tta)
        self.batch_size = batch_size
        self.members: list[OnnxMember] = load_onnx(run)
        check_members(self.members)
        self.runs = [m.source for m in self.members]
        self.config = self.members[0].config
        self.cutoffs = self.config.cutoffs

    @property
    def n_models(self) -> int:
        """Models averaged in all (an exported k-fold run counts k)."""
        return sum(m.n_models for m in self.members)

    def member_probs(self, items: Sequence[Item], *, progress: bool = False) -> list[np.ndarray]:
        """(N, 18) probabilities of each member, in ``items`` order."""
        items, _ = normalise_items(items)
        descriptors: dict[str, np.ndarray] = {}
        out = []
        for i, member in enumerate(self.members):
            faces = member_faces(member.config, items, descriptors, progress=progress)
            prepare = self._preparer(member, items, progress=progress)
            step = self.batch_size or member.config.train.batch_size
            desc = "predict" if len(self.members) == 1 else f"model {i + 1}/{len(self.members)}"
            chunks = []
            for start in progress_bar(range(0, len(items), step), desc=desc, unit="batch", disable=not progress,
                                      leave=False):
                index = list(range(start, min(start + step, len(items))))
                images = np.stack([prepare(j) for j in index])
                feed: Any = images if faces is None else {"images": images, "faces": faces[index]}
                probs = member.probs(feed)
                if self.tta == "hflip":  # the mirror image; a face's descriptor stays (training.model.mirrored)
                    mirror = images[:, :, ::-1]
                    probs = (probs + member.probs(mirror if faces is None else {**feed, "images": mirror})) / 2
                chunks.append(np.asarray(probs, dtype=np.float32))
            out.append(np.concatenate(chunks) if chunks else np.zeros((0, labels.NUM_CLASSES), np.float32))
        return out

    def _preparer(self, member: OnnxMember, items: list[Item], *, progress: bool) -> Callable[[int], np.ndarray]:
        """item index -> the (H, W, 3) uint8 array the member's graph takes."""
        from ..data.preprocess import Preprocess, resize

        cfg = member.config

        def decoded(j: int) -> np.ndarray:
            x = items[j]
            return read_rgb(x) if isinstance(x, (str, Path)) else x

        if cfg.model.name == FACE_MODEL:  # no CNN: the image input is a placeholder
            return lambda j: np.zeros((1, 1, 3), np.uint8)
        if member.crop_in_graph:
            return lambda j: resize(decoded(j), member.input_size)
        from ..data.faces import FaceBoxes  # a face crop: the box comes from the detectors, as in training

        detector = FaceBoxes(margin=cfg.data.face_margin, size=cfg.size, cache_dir=cfg.data.cache_dir or None,
                             cascade=cfg.data.face_detectors)
        paths = [str(x) for x in items if isinstance(x, (str, Path))]
        boxes = detector.boxes(paths, progress=progress) if paths else {}
        crop = Preprocess(size=cfg.size, crop="face", boxes=boxes, detector=detector)
        return lambda j: crop(decoded(j), str(items[j]) if isinstance(items[j], (str, Path)) else None)

    def predict_proba(self, items: Sequence[Item], *, progress: bool = False) -> np.ndarray:
        """(N, 18): the mean of the members' class probabilities."""
        return np.mean(self.member_probs(items, progress=progress), axis=0)
