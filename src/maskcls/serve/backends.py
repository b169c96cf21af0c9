"""Serving backends: one member type, and the ``BACKENDS`` table that the predictor, export and the CLI read.

A *member* is one loaded model (or an exported ensemble) ready to serve:

    probs(images)  uint8 images (N, 3, H, W), already cropped and resized by its preprocessing
                   -> (N, 18) float32 class probabilities
    config         the run's resolved settings; its preprocessing is data.size, data.crop and
                   data.face_margin, its classes are data.age_young/age_old
    source         where it came from: a run folder or a file
    data           the data it was trained on, as ``describe`` wrote it ("" when unknown)
    train_photos   int64 fingerprints of its training photos (data.fingerprint), or None
    n_models       how many models it averages inside (an exported k-fold run holds k)

``BACKENDS`` maps a name to its loader, file suffix and help line (in the manner of Ultralytics'
``export_formats()`` table). Adding a backend is a member class and a row here, plus its tests.

This module imports no torch, onnxruntime, albumentations or even numpy at import time: the CLI reads
the table's names for ``--backend`` and must start fast. What a backend needs is imported when it is used.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import UserError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..config import Config

Runs = str | Path | Sequence[str | Path]

# Test-time augmentation: none, or hflip (the mean of the photo's and its mirror image's probabilities).
TTA_CHOICES = ("none", "hflip")
# What `evaluate` scores: val, the run's own validation fold (DATA must be its training data); all, every
# labelled photo; auto, val on the training data, else all.
SPLITS = ("auto", "val", "all")

# `maskcls serve`'s limits and batching (serve.server), here so the command line reads their defaults
# without importing the server (asyncio alone costs every command 30 ms at start-up).
MAX_BYTES = 20 * 1024 * 1024  # a request body; a 384x512 JPEG is ~50 KB, a phone photo a few MB
MAX_PHOTOS = 64  # photos in one request
BODY_SECONDS = 30.0  # a body not read in full by then is a 408: a stalled client never holds the server


@dataclass(frozen=True)
class ServeOptions:
    max_batch: int = 32  # photos run as one batch at most
    max_wait_ms: float = 5.0  # how long the first photo of a batch waits for others; 0 with max_batch 1: no batching
    max_bytes: int = MAX_BYTES
    max_photos: int = MAX_PHOTOS
    body_seconds: float = BODY_SECONDS


class Member(Protocol):
    config: Config
    source: Path
    data: str
    train_photos: np.ndarray | None
    n_models: int

    def probs(self, images: Any) -> np.ndarray:
        """uint8 (N, 3, H, W) array or tensor (with face features: {"images": that, "faces": (N, 128)
        float32, NaN rows for no face}) -> (N, 18) float32 class probabilities."""
        ...


@dataclass(frozen=True)
class Backend:
    help: str
    suffix: str  # the file a member of this backend is loaded from; "" for a run folder
    gpu: bool  # whether it runs on --device (else always on the CPU)
    load: Callable[[Runs, "torch.device"], list[Member]]  # (runs as the user gave them, device) -> members


def _as_paths(runs: Runs) -> list[Path]:
    return [Path(runs)] if isinstance(runs, (str, Path)) else [Path(r) for r in runs]


def _refuse_other_formats(paths: list[Path], name: str) -> None:
    """A file another backend serves, given to this one: say which backend runs it."""
    for path in paths:
        other = next((n for n, b in BACKENDS.items() if n != name and b.suffix and path.suffix == b.suffix), None)
        if other is not None:
            raise UserError(f"{path}: an exported {other} model; run it with --backend {other} "
                            f"(--backend {name} loads {BACKENDS[name].suffix or 'run folders'})")


# ------------------------------------------------------------------------------------------- torch
class TorchMember:
    """A run's best.pt (else last.pt) model in PyTorch, on ``device`` with the run's mixed precision."""

    n_models = 1

    def __init__(self, model: Any, config: Config, checkpoint: dict, source: Path, device: torch.device) -> None:
        import numpy as np

        from ..training.runtime import Runtime

        self.model, self.config, self.source = model.eval(), config, source
        self.data = str(checkpoint.get("data") or "")
        self.data_identity = checkpoint.get("data_identity")  # the labels and photos it learned from
        photos = checkpoint.get("train_photos")
        self.train_photos = None if photos is None else np.asarray(photos.numpy(), dtype=np.int64)
        self.runtime = Runtime.from_settings(device=device.type, amp=config.train.amp, channels_last=False)

    def probs(self, images: Any) -> np.ndarray:
        """uint8 images (N, 3, h, w), preprocessed (with face features a dict) -> (N, 18) probabilities."""
        import torch

        from ..training.model import class_log_probs

        inputs = ({k: torch.as_tensor(v) for k, v in images.items()} if isinstance(images, dict)
                  else torch.as_tensor(images))
        with torch.no_grad(), self.runtime.autocast():
            out = class_log_probs(self.model(self.runtime.images(inputs))).exp()
        return out.float().cpu().numpy()


def load_torch(runs: Runs, device: torch.device) -> list[Member]:
    """Run folders; a `--fold all` run stands for its fold models."""
    from ..training.runs import expand_runs, load_run

    _refuse_other_formats(_as_paths(runs), "torch")
    members: list[Member] = []
    for run in expand_runs(runs):
        model, cfg, ckpt = load_run(run, device)
        members.append(TorchMember(model, cfg, ckpt, run, device))
    return members


# -------------------------------------------------------------------------------------------- onnx
class OnnxMember:
    """A file written by ``maskcls export``, served with onnxruntime on the CPU. Its metadata carries
    the run's config, the data it trained on and its training photos' fingerprints."""

    def __init__(self, path: str | Path) -> None:
        import numpy as np
        import onnxruntime as ort

        from .. import config as config_mod

        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such ONNX file; create it with `maskcls export RUN --out {path}`")
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for unreadable files
            raise UserError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "config" not in meta:
            raise UserError(f"{path}: not exported by maskcls (no config in its metadata)")
        if meta.get("contract") != "2":  # serve.export.CONTRACT; older files took preprocessed images
            raise UserError(f"{path}: exported by an older maskcls, whose graph takes preprocessed images; export "
                            "the run again (`maskcls export RUN --force`): the graph now takes whole photos")
        _, height, width, _ = self.session.get_inputs()[0].shape
        self.input_size = (int(width), int(height))  # (width, height) of the images the graph takes
        self.crop_in_graph = bool(json.loads(meta.get("preprocessing", "{}")).get("in_graph", False))
        self.config = config_mod.from_dict(json.loads(meta["config"]))
        self.source = path
        self.data = meta.get("data", "")
        self.n_models = len(json.loads(meta.get("runs", "[]")) or [0])
        photos = meta.get("train_photos")  # files exported before they were kept have none
        self.train_photos = None if photos is None else np.asarray(json.loads(photos), dtype=np.int64)

    def probs(self, images: Any) -> np.ndarray:
        """uint8 (N, H, W, 3) images at ``input_size`` (with face features {"images", "faces"})."""
        import numpy as np

        def array(x, dtype):
            return np.ascontiguousarray(x.numpy() if hasattr(x, "numpy") else x, dtype=dtype)

        if isinstance(images, dict):  # face features: the descriptor is the graph's second input
            feed = {"images": array(images["images"], np.uint8), "faces": array(images["faces"], np.float32)}
        else:
            feed = {"images": array(images, np.uint8)}
        return self.session.run(["probs"], feed)[0]


def load_onnx(runs: Runs, device: torch.device | None = None) -> list[Member]:
    """.onnx files, or run folders holding model.onnx (``maskcls export``'s default place)."""
    suffix = BACKENDS["onnx"].suffix
    for p in _as_paths(runs):
        if p.is_file() and p.suffix != suffix:
            raise UserError(f"{p}: not an ONNX file; --backend onnx takes a {suffix} file (maskcls export) or a run "
                            f"folder holding model{suffix}")
    return [OnnxMember(p if p.suffix == suffix else p / f"model{suffix}") for p in _as_paths(runs)]


BACKENDS: dict[str, Backend] = {
    "torch": Backend("PyTorch: run folders (best.pt), on --device", "", True, load_torch),
    "onnx": Backend("onnxruntime on the CPU: RUN/model.onnx or a .onnx file given as RUN (maskcls export)",
                    ".onnx", False, load_onnx),
}


def check_members(members: Sequence[Member]) -> None:
    """Members that can serve together: one set of age cut-offs (else the classes do not mean the same),
    and the face model installed where one reads faces. Caches go where the user's own settings say
    ($MASKCLS_CACHE or ~/.cache/maskcls), never where a checkpoint recorded."""
    from ..config import face_setting
    from ..faces.features import require_face_model

    for member in members:
        member.config.data.cache_dir = ""
    cutoffs = {m.config.cutoffs for m in members}
    if len(cutoffs) > 1:
        raise UserError("the runs of an ensemble use different age cut-offs "
                        f"({'; '.join(f'young {c.young}, old {c.old}' for c in sorted(cutoffs, key=lambda c: (c.young, c.old)))}); "
                        "their classes do not mean the same")
    readers = [m for m in members if m.config.model.face_features]
    if readers:
        require_face_model(f"{readers[0].source} was trained with {face_setting(readers[0].config)} and")


def backend(name: str) -> Backend:
    """The backend called ``name``; a UserError naming the choices otherwise."""
    if name not in BACKENDS:
        raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    return BACKENDS[name]


def check_device(name: str, device: str) -> None:
    """A backend that runs on the CPU only refuses a GPU it was asked for, rather than ignore it."""
    if not backend(name).gpu and device not in ("auto", "cpu"):
        raise UserError(f"--device {device}: --backend {name} runs on the CPU only; drop --device, or use "
                        "--backend torch for a GPU")


def check_tta(tta: str) -> str:
    """``tta`` when it is a known test-time augmentation; a UserError otherwise."""
    if tta not in TTA_CHOICES:
        raise UserError(f"tta must be one of {', '.join(TTA_CHOICES)}, got {tta!r}")
    return tta
