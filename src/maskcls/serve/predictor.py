"""Load a run, a k-fold run or several runs once, and predict photos or in-memory images with them.

An ensemble averages the members' 18-class probabilities (each member with its own size and
normalisation, and with the same test-time augmentation); the per-task answers are the marginals
of that average, so the class and the task answers never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import labels
from ..config import FACE_MODEL, Config
from ..data.images import ArrayDataset, PhotoDataset, read_rgb
from ..data.diskcache import DiskCache
from ..data.faces import FaceBoxes
from ..faces.cache import default_cache_dir
from ..data.prepare import preprocess_key
from ..data.transforms import eval_transform
from ..progress import bar as progress_bar
from ..training.loaders import make_loader
from ..training.model import mirrored
from ..training.runtime import resolve_device
from .backends import Member, backend as backend_spec, check_device, check_members, check_tta
from .onnx_predictor import OnnxPredictor, member_faces
from .inputs import normalise_items

Item = str | Path | np.ndarray


class Predictor:
    """``Predictor(run)`` loads the model(s) once; ``predict(items)`` returns a DataFrame.

    run: a run folder, a `--fold all` run folder (all its folds) or a list of them (an ensemble); with
    another backend, what that backend loads (see serve.backends.BACKENDS).
    items: photo paths and/or RGB uint8 arrays of shape (H, W, 3), any size.
    """

    def __init__(self, run: str | Path | Sequence[str | Path], *, device: str = "auto", tta: str = "none",
                 workers: int = 0, batch_size: int | None = None, backend: str = "torch") -> None:
        self.tta = check_tta(tta)
        spec = backend_spec(backend)
        check_device(backend, device)
        self.device = resolve_device(device) if spec.gpu else torch.device("cpu")
        self.workers, self.batch_size, self.backend = workers, batch_size, backend
        # ONNX files take whole photos and need no torch: one path serves them (serve.onnx_predictor)
        self._onnx = OnnxPredictor(run, tta=tta, batch_size=batch_size) if backend == "onnx" else None
        self.members: list[Member] = self._onnx.members if self._onnx else spec.load(run, self.device)
        self.runs = [m.source for m in self.members]
        if not self._onnx:
            check_members(self.members)
        self.config = self.members[0].config
        self.cutoffs = self.config.cutoffs

    @property
    def n_models(self) -> int:
        """Models averaged in all (an exported k-fold run counts k)."""
        return sum(m.n_models for m in self.members)

    def member_probs(self, items: Sequence[Item], *, progress: bool = False) -> list[np.ndarray]:
        """(N, 18) probabilities of each member, in ``items`` order, each after its own preprocessing.
        ``items``: what ``serve.inputs.normalise_items`` accepts (paths, PIL images, arrays, a batch)."""
        if self._onnx is not None:
            return self._onnx.member_probs(items, progress=progress)
        items, _ = normalise_items(items)
        out = []
        descriptors: dict[str, np.ndarray] = {}  # per detector cascade, shared by the members that read faces
        for i, member in enumerate(self.members):
            cfg = member.config
            faces = member_faces(cfg, items, descriptors, progress=progress)
            pixels = cfg.model.name != FACE_MODEL  # the descriptor-only heads read no pixels
            transform = self._transform(cfg, items, progress=progress) if pixels else None
            if all(isinstance(x, (str, Path)) for x in items):
                paths = [str(x) for x in items]
                cache = None
                if cfg.data.cache == "disk" and pixels:  # the same preprocessed photos training used, if cached
                    cache = DiskCache(cfg.data.cache_dir or default_cache_dir()).rows(
                        paths, transform.preprocess, preprocess_key(cfg), progress=progress)
                ds = PhotoDataset(paths, np.full((len(items), len(labels.TASKS)), -1), transform, cache=cache,
                                  faces=faces, images=pixels)
            else:
                ds = ArrayDataset([read_rgb(x) if isinstance(x, (str, Path)) and pixels else x for x in items],
                                  transform, faces=faces, decode=pixels)
            loader = make_loader(ds, batch_size=self.batch_size or cfg.train.batch_size, workers=self.workers,
                                 device=self.device, train=False, pin_memory=cfg.data.pin_memory)
            desc = "predict" if len(self.members) == 1 else f"model {i + 1}/{len(self.members)}"
            out.append(self._loader_probs(member, loader, desc=desc, progress=progress))
        return out

    def _loader_probs(self, member: Member, loader, *, desc: str, progress: bool) -> np.ndarray:
        """One member over every batch, in order; hflip TTA averages the photo and its mirror image."""
        chunks = []
        for images, _ in progress_bar(loader, desc=desc, unit="batch", disable=not progress, leave=False):
            probs = member.probs(images)
            if self.tta == "hflip":
                probs = (probs + member.probs(mirrored(images))) / 2
            chunks.append(np.asarray(probs, dtype=np.float32))
        return np.concatenate(chunks) if chunks else np.zeros((0, labels.NUM_CLASSES), np.float32)

    def _transform(self, cfg: Config, items: list[Item], *, progress: bool):
        """The run's own preprocessing: its crop (face boxes from the shared disk cache) and size."""
        if cfg.data.crop != "face":
            return eval_transform(cfg.size, cfg.data.crop)
        faces = FaceBoxes(margin=cfg.data.face_margin, size=cfg.size, cache_dir=cfg.data.cache_dir or None,
                          cascade=cfg.data.face_detectors)
        paths = [str(x) for x in items if isinstance(x, (str, Path))]
        boxes = faces.boxes(paths, progress=progress) if paths else {}
        return eval_transform(cfg.size, cfg.data.crop, boxes=boxes, detector=faces)

    def predict_proba(self, items: Sequence[Item], *, progress: bool = False) -> np.ndarray:
        """(N, 18): the mean of the members' class probabilities."""
        return np.mean(self.member_probs(items, progress=progress), axis=0)

    def predict(self, items: Sequence[Item], *, progress: bool = False) -> pd.DataFrame:
        """One row per item: input (the path, or the item's position), class, mask, gender, age group
        (names), confidence, p0..p17 and the per-task probabilities p_mask_0.., p_gender_0.., p_age_0..

        items: photo paths, PIL images, uint8 or float arrays (greyscale, RGB or RGBA), one or a list
        or a batch array (N, H, W[, C]); converted as training converts photos (serve.inputs)."""
        items, names = normalise_items(items)
        probs = self.predict_proba(items, progress=progress)
        return pd.concat([pd.DataFrame({"input": names}), answers_frame(probs, self.cutoffs)], axis=1)


def answers_frame(probs: np.ndarray, cutoffs: labels.AgeCutoffs) -> pd.DataFrame:
    """One row per photo: class, each task's answer (names), confidence, then ``labels.prob_columns()``."""
    cls = probs.argmax(1)
    frame = pd.DataFrame({"class": cls, **labels.answer_names(cls, cutoffs), "confidence": probs.max(1)})
    return pd.concat([frame, pd.DataFrame(labels.prob_values(probs), columns=labels.prob_columns())], axis=1)

