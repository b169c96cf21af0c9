"""`maskcls export RUN --out model.onnx`: the trained model (or a k-fold run's ensemble) as ONNX.

The graph takes uint8 images (N, 3, H, W) at the run's size after the run's preprocessing (crop and
resize, which ``predict --backend onnx`` does exactly as for PyTorch); normalisation is inside. It
returns ``probs`` (N, 18) and the per-task ``mask`` (N, 3), ``gender`` (N, 2), ``age`` (N, 3), the
marginals of ``probs``. The run's resolved config travels in the file's metadata, so the file alone
is enough to serve. The batch dimension is dynamic.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__, labels
from .. import config as config_mod
from ..config import Config
from ..errors import UserError
from ..fileio import atomic_path, check_replaceable
from ..training.model import class_log_probs
from ..data.transforms import crop_of
from ..training.runs import load_run
from .predictor import expand_runs

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

    def forward(self, images: torch.Tensor):
        probs = torch.stack([class_log_probs(m(images)).exp() for m in self.members]).mean(0)
        return (probs, *(probs @ getattr(self, f"to_{t.name}") for t in labels.TASKS))


def export_run(run: str | Path, out: str | Path | None = None, *, force: bool = False, opset: int = 17) -> dict:
    """Write the ONNX file (default RUN/model.onnx), check it against PyTorch with onnxruntime and
    return {"out", "max_abs_diff", "models", "size"}."""
    import onnx
    import onnxruntime as ort

    runs = expand_runs(run)
    out = Path(out) if out is not None else Path(run if not isinstance(run, (list, tuple)) else runs[0]) / "model.onnx"
    if out.suffix != ".onnx":
        raise UserError(f"{out}: the export is an .onnx file")
    check_replaceable(out, force=force)
    members = [load_run(r) for r in runs]
    sizes = {m[1].data.size for m in members}
    crops = {crop_of(m[1].data.augment) for m in members}
    if len(sizes) > 1 or len({m[1].cutoffs for m in members}) > 1 or len(crops) > 1:
        raise UserError("the runs use different sizes, crops or age cut-offs; export them one by one")
    cfg: Config = members[0][1]
    module = _Exported([m[0].eval() for m in members]).eval()
    width, height = cfg.size
    example = torch.randint(0, 256, (2, 3, height, width), dtype=torch.uint8)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        # The TorchScript-based exporter: it needs no extra package (the torch.export-based one needs
        # onnxscript) and handles these static CNN graphs well.
        torch.onnx.export(module, (example,), str(tmp), input_names=["images"], output_names=list(OUTPUTS),
                          dynamic_axes={"images": {0: "batch"}, **{k: {0: "batch"} for k in OUTPUTS}},
                          opset_version=opset, dynamo=False)
        model = onnx.load(str(tmp))
        meta = {"maskcls_version": __version__, "config": json.dumps(cfg.to_dict()),
                "runs": json.dumps([str(r) for r in runs]), "data": members[0][2].get("data") or ""}
        for key, value in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        check = torch.randint(0, 256, (3, 3, height, width), dtype=torch.uint8)
        with torch.no_grad():
            expected = [t.numpy() for t in module(check)]
        got = session.run(list(OUTPUTS), {"images": check.numpy()})
        diff = max(float(np.abs(a - b).max()) for a, b in zip(expected, got))
    return {"out": str(out), "max_abs_diff": diff, "models": len(members), "size": cfg.data.size}


class OnnxModel:
    """An exported file, served with onnxruntime on the CPU: ``probs(images_uint8_nchw) -> (N, 18)``."""

    def __init__(self, path: str | Path) -> None:
        import onnxruntime as ort

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
        self.config = config_mod.from_dict(json.loads(meta["config"]))
        self.data = meta.get("data", "")
        self.path = path
        self.n_models = len(json.loads(meta.get("runs", "[]")) or [0])

    def probs(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(["probs"], {"images": np.ascontiguousarray(images, dtype=np.uint8)})[0]
