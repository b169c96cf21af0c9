"""Where dlib's model files come from, loaded once per process.

dlib itself is the `dlib-bin` wheel (Boost licence); the model files ship inside the
`face-recognition-models` wheel (its files are CC0 / public domain by their author, Davis King):
  mmod_human_face_detector.dat           the CNN (MMOD) face detector
  shape_predictor_5_face_landmarks.dat   5 landmarks (eye corners, nose) used to align the face
  dlib_face_recognition_resnet_model_v1.dat  the ResNet descriptor: 128-d, trained for identity on
                                         ~3 million faces; 99.38% on LFW with a 0.6 distance threshold
The 68-point predictor in the same wheel is never used: its training set (iBUG 300-W) is licensed for
academic research only. Nothing is downloaded: no file present, no face model (one clear error).
"""

from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path

from ..errors import UserError

DETECTOR_FILE = "mmod_human_face_detector.dat"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL_HINT = "install the face model: pip install dlib-bin face-recognition-models"
_lock = threading.Lock()


def model_dir() -> Path:
    """The folder of face-recognition-models' files. The package's own __init__ imports
    pkg_resources, which new setuptools no longer has, so it is located without being imported."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the face model files are not installed; {INSTALL_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    missing = [f for f in (DETECTOR_FILE, LANDMARKS_FILE, DESCRIPTOR_FILE) if not (folder / f).is_file()]
    if missing:
        raise UserError(f"{folder}: face model file(s) missing: {', '.join(missing)}; {INSTALL_HINT}")
    return folder


def dlib_module():
    """dlib, imported; a UserError saying what to install where it is missing."""
    try:
        import dlib
    except ImportError as exc:
        raise UserError(f"dlib cannot be imported ({exc}); {INSTALL_HINT}") from None
    return dlib


def available() -> str | None:
    """None when the face model can load here, else the one-line reason it cannot."""
    try:
        dlib_module()
        model_dir()
    except UserError as exc:
        return str(exc)
    return None


@lru_cache(maxsize=None)
def load(name: str):
    """One dlib object per process (and name): 'hog', 'cnn', 'landmarks', 'descriptor'."""
    dlib = dlib_module()
    with _lock:
        if name == "hog":
            return dlib.get_frontal_face_detector()
        folder = model_dir()
        if name == "cnn":
            return dlib.cnn_face_detection_model_v1(str(folder / DETECTOR_FILE))
        if name == "landmarks":
            return dlib.shape_predictor(str(folder / LANDMARKS_FILE))
        if name == "descriptor":
            return dlib.face_recognition_model_v1(str(folder / DESCRIPTOR_FILE))
    raise ValueError(f"unknown face model {name!r}")
