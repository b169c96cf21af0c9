"""`maskcls export RUN --out model.onnx`: the trained model (or a k-fold run's ensemble) as ONNX.

The graph takes uint8 images (N, 3, H, W) at the run's size after the run's preprocessing (crop and
resize, which ``predict --backend onnx`` does exactly as for PyTorch); normalisation is inside. A run
trained with face features takes a second input, ``faces`` (N, 128) float32: dlib's descriptor of each
photo's face (NaN rows for no face; the standardization is inside), which `export --info` documents. It
returns ``probs`` (N, 18) and the per-task ``mask`` (N, 3), ``gender`` (N, 2), ``age`` (N, 3), the
marginals of ``probs``. The run's resolved config, the data it trained on and its training photos'
fingerprints travel in the file's metadata, so the file alone is enough to serve (``serve.backends``
loads it back). The batch dimension is dynamic.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__, labels
from ..config import Config
from ..errors import UserError
from ..fileio import atomic_path, check_replaceable, require_file
from ..config import FACE_MODEL
from ..training.model import FACE_SIZE, class_log_probs
from .backends import BACKENDS, TorchMember

OUTPUTS = ("probs", *(t.name for t in labels.TASKS))


class _Exported(nn.Module):
    """The mean of the members' 18-class probabilities, and its per-task marginals."""

    def __init__(self, models: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(models)
        for t in labels.TASKS:
            onehot = torch.zeros(labels.NUM_CLASSES, t.size)
            onehot[torch.arange(labels.NUM_CLASSES), torch.as_tensor(t.of_class)] = 1.0
            self.register_buffer(f"to_{t.name}", onehot)

    def forward(self, images: torch.Tensor, faces: torch.Tensor | None = None):
        inputs = images if faces is None else {"images": images, "faces": faces}
        probs = torch.stack([class_log_probs(m(inputs)).exp() for m in self.members]).mean(0)
        return (probs, *(probs @ getattr(self, f"to_{t.name}") for t in labels.TASKS))


def export_run(run: str | Path, out: str | Path | None = None, *, force: bool = False, opset: int = 17) -> dict:
    """Write the ONNX file (default RUN/model.onnx), check it against PyTorch with onnxruntime and
    return {"out", "max_abs_diff", "models", "size"}."""
    import onnx
    import onnxruntime as ort

    suffix = BACKENDS["onnx"].suffix
    first = Path(run if isinstance(run, (str, Path)) else run[0])
    out = Path(out) if out is not None else first / f"model{suffix}"
    if out.suffix != suffix:
        raise UserError(f"{out}: the export is an {suffix} file")
    check_replaceable(out, force=force)
    members: list[TorchMember] = BACKENDS["torch"].load(run, torch.device("cpu"))
    if len({(m.config.data.size, m.config.data.crop, m.config.data.face_margin if m.config.data.crop == "face" else None,
             m.config.cutoffs, m.config.model.face_features and m.config.data.face_detectors) for m in members}) > 1:
        raise UserError("the runs use different sizes, crops, age cut-offs or face features; export them one by one")
    cfg: Config = members[0].config
    module = _Exported([m.model for m in members]).eval()
    names = input_names(cfg)
    example = example_inputs(cfg, 2)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        # The TorchScript-based exporter: it needs no extra package (the torch.export-based one needs
        # onnxscript) and handles these static CNN graphs well.
        torch.onnx.export(module, example, str(tmp), input_names=names, output_names=list(OUTPUTS),
                          dynamic_axes={**{k: {0: "batch"} for k in names}, **{k: {0: "batch"} for k in OUTPUTS}},
                          opset_version=opset, dynamo=False)
        model = onnx.load(str(tmp))
        meta = {"maskcls_version": __version__, "config": json.dumps(cfg.to_dict()),
                "runs": json.dumps([str(m.source) for m in members]), "data": members[0].data,
                **{k: json.dumps(v) for k, v in describe_model(cfg).items()}}
        known = [m.train_photos for m in members if m.train_photos is not None]
        if known:  # evaluate refuses to score these photos with the file, as with the run
            meta["train_photos"] = json.dumps(np.unique(np.concatenate(known)).tolist())
        for key, value in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        check = example_inputs(cfg, 3)
        with torch.no_grad():
            expected = [t.numpy() for t in module(*check)]
        got = session.run(list(OUTPUTS), {k: v.numpy() for k, v in zip(names, check)})
        diff = max(float(np.abs(a - b).max()) for a, b in zip(expected, got))
    return {"out": str(out), "max_abs_diff": diff, "models": len(members), "size": cfg.data.size,
            "input": input_shape(cfg), "faces": cfg.model.face_features}


def input_names(cfg: Config) -> list[str]:
    """The graph's inputs: images, and with face features the face descriptor."""
    return ["images", "faces"] if cfg.model.face_features else ["images"]


def example_inputs(cfg: Config, n: int) -> tuple[torch.Tensor, ...]:
    """Random inputs of the graph's shapes (the export's trace and its check); one descriptor row is
    NaN, so the no-face path is traced and checked too."""
    width, height = cfg.size
    if cfg.model.name == FACE_MODEL:
        width = height = 1
    images = torch.randint(0, 256, (n, 3, height, width), dtype=torch.uint8)
    if not cfg.model.face_features:
        return (images,)
    faces = torch.randn(n, FACE_SIZE) * 0.1
    faces[-1] = float("nan")
    return images, faces


def input_shape(cfg: Config) -> list[int | str]:
    """The graph's input, batch first: ["N", 3, height, width] (the size setting is width x height)."""
    if cfg.model.name == FACE_MODEL:  # no CNN: a 1x1 placeholder for the images (serve.images.NO_IMAGE)
        return ["N", 3, 1, 1]
    width, height = cfg.size
    return ["N", 3, height, width]


def describe_model(cfg: Config) -> dict:
    """What a user of the file alone needs: the input, the class names, how tasks combine into
    classes, and the preprocessing done before the graph (crop, resize) and inside it (normalisation)."""
    width, height = cfg.size
    if cfg.model.name == FACE_MODEL:  # no CNN: the image input is a placeholder, and nothing is preprocessed
        images = {"name": "images", "shape": input_shape(cfg), "dtype": "uint8",
                  "what": "a placeholder the graph does not read (model.name=face-descriptor has no CNN): feed zeros "
                          "of this shape, one per photo; the answers come from the faces input"}
        preprocessing = {"photos": "none: only the face descriptor is read"}
    else:
        images = {"name": "images", "shape": input_shape(cfg), "dtype": "uint8", "channels": "RGB",
                  "size": f"{width}x{height} (width x height)"}
        preprocessing = {"crop": cfg.data.crop, "face_margin": cfg.data.face_margin if cfg.data.crop == "face" else None,
                         "resize": f"to {width}x{height}, area interpolation, after the crop",
                         "normalisation": {"mean": cfg.data.mean, "std": cfg.data.std, "scale": "pixel / 255",
                                           "where": "inside the graph: feed uint8 pixels"}}
    return {
        "input": images,
        **({"faces": {"name": "faces", "shape": ["N", FACE_SIZE], "dtype": "float32",
                      "what": "dlib's face descriptor (dlib_face_recognition_resnet_model_v1 on the face found by "
                              f"the detectors {cfg.data.face_detectors}, aligned on the 5 landmarks): `maskcls faces` "
                              "computes it; a row of NaN where no face was found; standardized inside the graph"}}
           if cfg.model.face_features else {}),
        "class_names": labels.class_names(cfg.cutoffs),
        "tasks": {t.name: {"names": list(t.names(cfg.cutoffs)), "of_class": list(t.of_class)} for t in labels.TASKS},
        "encoding": "class = mask * 6 + gender * 3 + age group; outputs probs (N, 18) and each task's marginals",
        "preprocessing": preprocessing,
    }


INFO_KEYS = ("maskcls_version", "input", "faces", "class_names", "tasks", "encoding", "preprocessing", "runs", "data")


def onnx_info(path: str | Path) -> dict:
    """The metadata of an exported file (``describe_model``'s keys and where it came from)."""
    import onnx

    path = require_file(path, "ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises protobuf's DecodeError and others for a file that is not ONNX
        raise UserError(f"{path}: not an ONNX file ({type(exc).__name__})") from None
    meta = {p.key: p.value for p in model.metadata_props}
    if "config" not in meta:
        raise UserError(f"{path}: not a maskcls export (no maskcls metadata)")
    out = {}
    for key in INFO_KEYS:
        if key in meta:
            try:
                out[key] = json.loads(meta[key])
            except json.JSONDecodeError:
                out[key] = meta[key]
    return out

