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
from ..config import Config
from ..data.images import ArrayDataset, PhotoDataset, read_rgb
from ..data.diskcache import DiskCache
from ..data.faces import FaceBoxes, default_cache_dir
from ..data.prepare import preprocess_key
from ..data.transforms import crop_of, eval_transform
from ..errors import UserError
from ..progress import bar as progress_bar
from ..training.loaders import make_loader
from ..training.loop import predict_proba
from ..training.runs import is_fold_parent, load_run
from ..training.runtime import Runtime, resolve_device
from .backends import BACKENDS, TTA_CHOICES

Item = str | Path | np.ndarray


def expand_runs(runs: str | Path | Sequence[str | Path]) -> list[Path]:
    """Run folders of every member: a `--fold all` run stands for all its fold-K/ runs."""
    if isinstance(runs, (str, Path)):
        runs = [runs]
    out: list[Path] = []
    for run in runs:
        run = Path(run)
        if is_fold_parent(run):
            out += sorted((p.parent for p in run.glob("fold-*/best.pt")), key=lambda p: int(p.name.split("-")[1]))
        else:
            out.append(run)
    if not out:
        raise UserError("no run given")
    seen: dict[Path, Path] = {}
    for run in out:  # the same model twice is not an ensemble: it would only weigh that model double
        key = run.resolve()
        if key in seen:
            raise UserError(f"{run} is given twice (also as {seen[key]}); list each run once")
        seen[key] = run
    return out


class Predictor:
    """``Predictor(run)`` loads the model(s) once; ``predict(items)`` returns a DataFrame.

    run: a run folder, a `--fold all` run folder (all its folds) or a list of them (an ensemble).
    items: photo paths and/or RGB uint8 arrays of shape (H, W, 3), any size.
    """

    def __init__(self, run: str | Path | Sequence[str | Path], *, device: str = "auto", tta: str = "none",
                 workers: int = 0, batch_size: int | None = None, backend: str = "torch") -> None:
        if tta not in TTA_CHOICES:
            raise UserError(f"tta must be one of {', '.join(TTA_CHOICES)}, got {tta!r}")
        if backend not in BACKENDS:
            raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.device = resolve_device(device) if backend == "torch" else torch.device("cpu")
        self.tta, self.workers, self.batch_size, self.backend = tta, workers, batch_size, backend
        if backend == "onnx":
            from .export import OnnxModel

            paths = [Path(run)] if isinstance(run, (str, Path)) else [Path(r) for r in run]
            self.runs = [p if p.suffix == ".onnx" else p / "model.onnx" for p in paths]
            self.members = []
            for path in self.runs:
                onnx_model = OnnxModel(path)
                self.members.append((onnx_model, onnx_model.config, {"data": onnx_model.data}))
        else:
            given = [Path(run)] if isinstance(run, (str, Path)) else [Path(r) for r in run]
            onnx_files = [p for p in given if p.suffix == ".onnx"]
            if onnx_files:
                raise UserError(f"{onnx_files[0]}: an exported ONNX model; run it with --backend onnx "
                                "(the default backend loads run folders)")
            self.runs = expand_runs(run)
            self.members = [load_run(r, self.device) for r in self.runs]
        for member in self.members:
            # A checkpoint's stored config never chooses where this command writes: caches go where the
            # user's own settings say ($MASKCLS_CACHE or ~/.cache/maskcls), whatever the run recorded.
            member[1].data.cache_dir = ""
        cutoffs = {m[1].cutoffs for m in self.members}
        if len(cutoffs) > 1:
            raise UserError("the runs of an ensemble use different age cut-offs "
                            f"({'; '.join(f'young {c.young}, old {c.old}' for c in sorted(cutoffs, key=lambda c: (c.young, c.old)))}); "
                            "their classes do not mean the same")
        self.config = self.members[0][1]
        self.cutoffs = self.config.cutoffs

    def member_probs(self, items: Sequence[Item], *, progress: bool = False) -> list[np.ndarray]:
        """(N, 18) probabilities of each member, in ``items`` order."""
        items = _check_items(items)
        out = []
        for i, (model, cfg, _) in enumerate(self.members):
            transform = self._transform(cfg, items, progress=progress)
            if all(isinstance(x, (str, Path)) for x in items):
                paths = [str(x) for x in items]
                cache = None
                if cfg.data.cache == "disk":  # the same preprocessed photos training used, if cached
                    cache = DiskCache(cfg.data.cache_dir or default_cache_dir()).rows(
                        paths, transform.preprocess, preprocess_key(cfg), progress=progress)
                ds = PhotoDataset(paths, np.full((len(items), len(labels.TASKS)), -1), transform, cache=cache)
            else:
                ds = ArrayDataset([read_rgb(x) if isinstance(x, (str, Path)) else x for x in items], transform)
            loader = make_loader(ds, batch_size=self.batch_size or cfg.train.batch_size, workers=self.workers,
                                 device=self.device, train=False, pin_memory=cfg.data.pin_memory)
            desc = "predict" if len(self.members) == 1 else f"model {i + 1}/{len(self.members)}"
            if self.backend == "onnx":
                out.append(_onnx_probs(model, loader, tta=self.tta, desc=desc, progress=progress))
                continue
            runtime = Runtime.from_settings(device=self.device.type, amp=cfg.train.amp, channels_last=False)
            out.append(predict_proba(model, loader, runtime=runtime, tta=self.tta, desc=desc, progress=progress))
        return out

    def _transform(self, cfg: Config, items: list[Item], *, progress: bool):
        """The run's own preprocessing: its crop (face boxes from the shared disk cache) and size."""
        if crop_of(cfg.data.augment) != "face":
            return eval_transform(cfg.size, cfg.data.augment)
        faces = FaceBoxes(margin=cfg.data.face_margin, size=cfg.size, cache_dir=cfg.data.cache_dir or None)
        paths = [str(x) for x in items if isinstance(x, (str, Path))]
        boxes = faces.boxes(paths, progress=progress) if paths else {}
        return eval_transform(cfg.size, cfg.data.augment, boxes=boxes, detector=faces)

    def predict_proba(self, items: Sequence[Item], *, progress: bool = False) -> np.ndarray:
        """(N, 18): the mean of the members' class probabilities."""
        return np.mean(self.member_probs(items, progress=progress), axis=0)

    def predict(self, items: Sequence[Item], *, progress: bool = False) -> pd.DataFrame:
        """One row per item: class, mask, gender, age group (names), confidence, p0..p17 and the per-task
        probabilities p_mask_0.., p_gender_0.., p_age_0.."""
        probs = self.predict_proba(items, progress=progress)
        return answers_frame(probs, self.cutoffs)


def _onnx_probs(model, loader, *, tta: str, desc: str, progress: bool) -> np.ndarray:
    """The same batches as the PyTorch path, through onnxruntime; hflip TTA averages the mirror image."""
    chunks = []
    for images, _ in progress_bar(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        batch = images.numpy()
        probs = model.probs(batch)
        if tta == "hflip":
            probs = (probs + model.probs(batch[..., ::-1])) / 2
        chunks.append(probs)
    return np.concatenate(chunks) if chunks else np.zeros((0, labels.NUM_CLASSES), np.float32)


def answers_frame(probs: np.ndarray, cutoffs: labels.AgeCutoffs) -> pd.DataFrame:
    """One row per photo: class, each task's answer (names), confidence, then ``labels.prob_columns()``."""
    cls = probs.argmax(1)
    frame = pd.DataFrame({"class": cls, **labels.answer_names(cls, cutoffs), "confidence": probs.max(1)})
    return pd.concat([frame, pd.DataFrame(labels.prob_values(probs), columns=labels.prob_columns())], axis=1)


def _check_items(items: Sequence[Item]) -> list[Item]:
    if isinstance(items, (str, Path)):
        items = [items]
    elif isinstance(items, np.ndarray):
        items = list(items) if items.ndim == 4 else [items]
    items = list(items)
    for i, x in enumerate(items):
        if isinstance(x, np.ndarray):
            if x.dtype != np.uint8 or x.ndim != 3 or x.shape[2] != 3 or min(x.shape[:2]) < 1:
                raise UserError(f"image {i}: expected an RGB uint8 array of shape (H, W, 3), got {x.dtype} {x.shape}")
        elif not isinstance(x, (str, Path)):
            raise UserError(f"item {i}: expected a photo path or an RGB uint8 array, got {type(x).__name__}")
        elif not Path(x).is_file():
            raise UserError(f"{x}: {'not a photo file' if Path(x).exists() else 'no such photo'}")
    return items
