"""maskcls: train and serve a mask / gender / age classifier for face photos.

The Python API (each name is imported on first use, so ``import maskcls`` stays fast):

    cfg = maskcls.load_config("demo", ["train.epochs=5"])        # a built-in name or a YAML file, then overrides
    summary = maskcls.train(cfg, "DATA", "runs/r1")              # DATA: folder, .csv manifest or DataFrame
    cv = maskcls.train_folds(cfg, "DATA", "runs/cv")             # every person-level fold + out-of-fold probs
    prepared = maskcls.prepare(cfg, "DATA")                      # scan + decode once, train many times
    predictor = maskcls.Predictor("runs/r1")                     # load once (a run, a k-fold run, or a list)
    frame = predictor.predict([path, pil_image, array, ...])     # labels and probabilities per item
    scores = maskcls.score_submission("submission.csv", "truth.csv")   # macro F1, ..., chance

train and train_folds are silent unless asked: progress=True draws bars, log=print prints the lines.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.2.0"

_API = {
    "load_config": "maskcls.config",
    "Config": "maskcls.config",
    "train": "maskcls.training.fit",
    "train_folds": "maskcls.training.folds",
    "prepare": "maskcls.data.prepare",
    "Prepared": "maskcls.data.prepare",
    "Predictor": "maskcls.serve.predictor",
    "UserError": "maskcls.errors",
    "evaluate_run": "maskcls.serve.predict",
    "score_submission": "maskcls.serve.score",
    "chance_metrics": "maskcls.metrics",
    "compute_metrics": "maskcls.metrics",
}
__all__ = sorted(_API)


def __dir__() -> list[str]:
    """dir(maskcls) lists the public API, which is imported on first use, and the module's own dunder
    names; the helpers this file imports (import_module, Any, annotations) are not API."""
    return sorted({*_API, "__version__", *(n for n in globals() if n.startswith("__") and n.endswith("__"))})


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'maskcls' has no attribute {name!r}")
