"""`maskcls export RUN --out model.onnx`: the trained model (or a k-fold run's ensemble) as ONNX that
needs no maskcls to run.

The graph takes decoded photos: uint8 RGB, (N, H, W, 3), at the input size its metadata declares (the
training photos' size by default, ``--input-size`` otherwise). The run's crop (none or center), its area
resize and its normalisation are inside the graph, so onnxruntime, numpy and a photo decoder are all a
user needs. A ``data.crop=face`` run takes the face crop already resized to the run's size instead (the box
comes from dlib's detectors, outside the graph); `export --info` says which. A run trained with face
features takes a second input, ``faces`` (N, 128) float32: dlib's descriptor of each photo's face (NaN
rows for no face; the standardization is inside). It returns ``probs`` (N, 18) and the per-task ``mask``
(N, 3), ``gender`` (N, 2), ``age`` (N, 3), the marginals of ``probs``. The run's resolved config, the data
it trained on and its training photos' fingerprints travel in the file's metadata, so the file alone is
enough to serve (``serve.backends`` loads it back). The batch dimension is dynamic.
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
from ..data.table import refuse_output_inside
from ..errors import UserError
from ..fileio import atomic_path, check_replaceable, require_file
from ..config import FACE_MODEL
from ..training.model import FACE_SIZE, class_log_probs
from .backends import BACKENDS, TorchMember

OUTPUTS = ("probs", *(t.name for t in labels.TASKS))


# The metadata's "contract": 2 is photos in (N, H, W, 3) with the crop and resize inside. Files without
# it took preprocessed images (N, 3, h, w) and are refused with a line saying to export again.
CONTRACT = 2


class _Photos(nn.Module):
    """uint8 photos (N, H, W, 3) -> the run's crop and area resize as float pixels (N, 3, h, w), rounded and
    clipped as the uint8 resize of training is. One matrix per axis (data.preprocess.resize_matrix)."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("rows", torch.from_numpy(rows))  # (h, H)
        self.register_buffer("cols", torch.from_numpy(np.ascontiguousarray(cols.T)))  # (W, w)

    def forward(self, photos: torch.Tensor) -> torch.Tensor:
        x = photos.permute(0, 3, 1, 2).float()
        return torch.matmul(torch.matmul(self.rows, x), self.cols).round().clamp(0, 255)


class _Exported(nn.Module):
    """Photos in; the mean of the members' 18-class probabilities, and its per-task marginals, out."""

    def __init__(self, models: list[nn.Module], photos: nn.Module | None) -> None:
        super().__init__()
        self.members = nn.ModuleList(models)
        self.photos = photos  # None: the input is already at the model's size (face crop, or no CNN)
        for t in labels.TASKS:
            onehot = torch.zeros(labels.NUM_CLASSES, t.size)
            onehot[torch.arange(labels.NUM_CLASSES), torch.as_tensor(t.of_class)] = 1.0
            self.register_buffer(f"to_{t.name}", onehot)

    def forward(self, images: torch.Tensor, faces: torch.Tensor | None = None):
        images = images.permute(0, 3, 1, 2) if self.photos is None else self.photos(images)
        inputs = images if faces is None else {"images": images, "faces": faces}
        probs = torch.stack([class_log_probs(m(inputs)).exp() for m in self.members]).mean(0)
        return (probs, *(probs @ getattr(self, f"to_{t.name}") for t in labels.TASKS))


def export_run(run: str | Path, out: str | Path | None = None, *, force: bool = False, opset: int = 17,
               input_size: tuple[int, int] | None = None) -> dict:
    """Write the ONNX file (default RUN/model.onnx), check it against PyTorch with onnxruntime and
    return {"out", "max_abs_diff", "models", "size", "input", "faces", "crop_in_graph"}.

    input_size: (width, height) of the photos the graph takes; default the training photos' size (the
    most common among the first photos of the data the run trained on)."""
    import onnx
    import onnxruntime  # noqa: F401  (the check below needs it: missing, it fails before any work)

    suffix = BACKENDS["onnx"].suffix
    first = Path(run if isinstance(run, (str, Path)) else run[0])
    out = Path(out) if out is not None else first / f"model{suffix}"
    if out.suffix != suffix:
        raise UserError(f"{out}: the export is an {suffix} file")
    check_replaceable(out, force=force)
    members: list[TorchMember] = BACKENDS["torch"].load(run, torch.device("cpu"))
    for member in members:  # never into the data a run learned from, as every command that writes
        if member.data:
            refuse_output_inside(member.data, out)
    if len({(m.config.data.size, m.config.data.crop, m.config.data.face_margin if m.config.data.crop == "face" else None,
             m.config.cutoffs, m.config.model.face_features and m.config.data.face_detectors) for m in members}) > 1:
        raise UserError("the runs use different sizes, crops, age cut-offs or face features; export them one by one")
    cfg: Config = members[0].config
    if crop_in_graph(cfg):
        input_size = input_size or training_photo_size(members[0].data)
    else:
        input_size = None  # the model's own size (face crop) or a placeholder (no CNN)
    module = _Exported([m.model for m in members], photos_module(cfg, input_size)).eval()
    names = input_names(cfg)
    example = example_inputs(cfg, 2, input_size)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        # The TorchScript-based exporter: it needs no extra package (the torch.export-based one needs
        # onnxscript) and handles these static CNN graphs well.
        torch.onnx.export(module, example, str(tmp), input_names=names, output_names=list(OUTPUTS),
                          dynamic_axes={**{k: {0: "batch"} for k in names}, **{k: {0: "batch"} for k in OUTPUTS}},
                          opset_version=opset, dynamo=False)
        model = onnx.load(str(tmp))
        for key, value in _metadata(cfg, members, input_size).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        diff = _largest_difference(module, tmp, cfg, input_size)
    return {"out": str(out), "max_abs_diff": diff, "models": len(members), "size": cfg.data.size,
            "input": input_shape(cfg, input_size), "faces": cfg.model.face_features, "crop_in_graph": crop_in_graph(cfg)}


def _metadata(cfg: Config, members: list, input_size: tuple[int, int] | None) -> dict[str, str]:
    """The file's metadata: the version, the input contract, the config, the runs and their data, what
    the model is (``describe_model``) and the fingerprints of the photos it trained on."""
    meta = {"maskcls_version": __version__, "contract": str(CONTRACT), "config": json.dumps(cfg.to_dict()),
            "runs": json.dumps([str(m.source.resolve()) for m in members]), "data": members[0].data,
            **{k: json.dumps(v) for k, v in describe_model(cfg, input_size).items()}}
    known = [m.train_photos for m in members if m.train_photos is not None]
    if known:  # evaluate refuses to score these photos with the file, as with the run
        meta["train_photos"] = json.dumps(np.unique(np.concatenate(known)).tolist())
    return meta


def _largest_difference(module: torch.nn.Module, path: Path, cfg: Config, input_size: tuple[int, int] | None) -> float:
    """The largest absolute difference between PyTorch's outputs and onnxruntime's for the file at ``path``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    check = example_inputs(cfg, 3, input_size)
    with torch.no_grad():
        expected = [t.numpy() for t in module(*check)]
    got = session.run(list(OUTPUTS), {k: v.numpy() for k, v in zip(input_names(cfg), check)})
    return max(float(np.abs(a - b).max()) for a, b in zip(expected, got))


def crop_in_graph(cfg: Config) -> bool:
    """Whether the graph crops and resizes whole photos itself: every crop but the face's (whose box comes
    from dlib's detectors), and only for a model that reads pixels."""
    return cfg.model.name != FACE_MODEL and cfg.data.crop != "face"


def training_photo_size(data: str) -> tuple[int, int]:
    """(width, height) most common among the first 50 photos of the data a run trained on."""
    from collections import Counter

    from PIL import Image

    from ..data.table import scan

    hint = "give the photos' size with --input-size WIDTHxHEIGHT"
    if not data or data == "DataFrame" or not Path(data).exists():
        raise UserError(f"the data this run trained on ({data or 'unknown'}) is not here to read its photos' size; {hint}")
    sizes: Counter = Counter()
    for path in scan(data).table["path"].head(50):
        try:
            with Image.open(path) as im:
                sizes[im.size] += 1
        except OSError:
            continue
    if not sizes:
        raise UserError(f"{data}: none of its first photos could be read for their size; {hint}")
    return sizes.most_common(1)[0][0]


def photos_module(cfg: Config, input_size: tuple[int, int] | None) -> nn.Module | None:
    """The in-graph crop and resize from photos of input_size (width, height) to the run's size."""
    if input_size is None:
        return None
    from ..data.preprocess import resize_matrix

    width, height = input_size
    x0, y0, x1, y1 = center_box_of(cfg, input_size)
    out_w, out_h = cfg.size
    return _Photos(resize_matrix(height, y0, y1, out_h), resize_matrix(width, x0, x1, out_w))


def input_names(cfg: Config) -> list[str]:
    """The graph's inputs: images, and with face features the face descriptor."""
    return ["images", "faces"] if cfg.model.face_features else ["images"]


def example_inputs(cfg: Config, n: int, input_size: tuple[int, int] | None) -> tuple[torch.Tensor, ...]:
    """Random inputs of the graph's shapes (the export's trace and its check); one descriptor row is
    NaN, so the no-face path is traced and checked too."""
    _, height, width, _ = input_shape(cfg, input_size)
    images = torch.randint(0, 256, (n, height, width, 3), dtype=torch.uint8)
    if not cfg.model.face_features:
        return (images,)
    faces = torch.randn(n, FACE_SIZE) * 0.1
    faces[-1] = float("nan")
    return images, faces


def input_shape(cfg: Config, input_size: tuple[int, int] | None) -> list[int | str]:
    """The graph's image input, batch first: ["N", height, width, 3]."""
    if cfg.model.name == FACE_MODEL:  # no CNN: a 1x1 placeholder for the images (serve.images.NO_IMAGE)
        return ["N", 1, 1, 3]
    width, height = input_size or cfg.size
    return ["N", height, width, 3]


def describe_model(cfg: Config, input_size: tuple[int, int] | None) -> dict:
    """What a user of the file alone needs: the input contract, the class names, how tasks combine into
    classes, and what preprocessing the graph does (crop, resize, normalisation) and what it leaves."""
    width, height = cfg.size
    shape = input_shape(cfg, input_size)
    normalisation = {"mean": cfg.data.mean, "std": cfg.data.std, "scale": "pixel / 255", "where": "inside the graph"}
    if cfg.model.name == FACE_MODEL:  # no CNN: the image input is a placeholder, and nothing is preprocessed
        images = {"name": "images", "shape": shape, "dtype": "uint8",
                  "what": "a placeholder the graph does not read (model.name=face-descriptor has no CNN): feed zeros "
                          "of this shape, one per photo; the answers come from the faces input"}
        preprocessing = {"photos": "none: only the face descriptor is read"}
    elif input_size is not None:
        in_w, in_h = input_size
        box = list(center_box_of(cfg, input_size))
        images = {"name": "images", "shape": shape, "dtype": "uint8", "layout": "N x height x width x RGB",
                  "size": f"{in_w}x{in_h} (width x height)",
                  "what": f"decoded photos, RGB, {in_w}x{in_h}, as PIL's Image.open(path).convert('RGB') gives "
                          f"them; a photo of another size: resize it to {in_w}x{in_h} first (area interpolation, "
                          "e.g. PIL's Image.BOX)"}
        preprocessing = {"in_graph": True, "crop": cfg.data.crop, "crop_box": box,
                         "crop_box_is": "x0, y0, x1, y1 in input pixels",
                         "resize": f"the crop to {width}x{height}, area interpolation (OpenCV INTER_AREA), rounded",
                         "normalisation": normalisation}
    else:  # a face crop: the box comes from the face detectors, outside the graph
        images = {"name": "images", "shape": shape, "dtype": "uint8", "layout": "N x height x width x RGB",
                  "size": f"{width}x{height} (width x height)",
                  "what": f"the face crop of each photo, resized to {width}x{height} (area interpolation): the face "
                          f"box of dlib's detectors {cfg.data.face_detectors}, grown by {cfg.data.face_margin}; "
                          "the centre crop where no face is found. `maskcls predict --backend onnx` does this"}
        preprocessing = {"in_graph": False, "crop": "face", "face_margin": cfg.data.face_margin,
                         "resize": f"to {width}x{height}, area interpolation, after the crop (outside the graph)",
                         "normalisation": normalisation}
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


def center_box_of(cfg: Config, input_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The crop box the graph keeps of an input_size photo: the centre crop's, or the whole photo."""
    from ..data.crops import center_box

    width, height = input_size
    return center_box(width, height) if cfg.data.crop == "center" else (0, 0, width, height)


INFO_KEYS = ("maskcls_version", "contract", "input", "faces", "class_names", "tasks", "encoding", "preprocessing", "runs", "data")


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

