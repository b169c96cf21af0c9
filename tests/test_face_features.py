"""model.face_features and model.name=face-descriptor: the face model's descriptor as a model input.

The photos here are noise, which says nothing about gender or age; the face cache is filled by hand with
descriptors that do (as dlib's do on real faces). So a model that reads the descriptor reads gender, and
one that ignores it cannot: every test below fails when the option is ignored.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_config
from maskcls import config as config_mod
from maskcls.cli import main
from maskcls.data.prepare import prepare
from maskcls.errors import UserError
from maskcls.faces.cache import FaceCache, FaceRecord, content_key
from maskcls.serve.predictor import Predictor
from maskcls.training.fit import train
from maskcls.training.folds import train_folds
from maskcls.training.model import FaceInput, build_model

pytest.importorskip("dlib")

AGES = (22, 45, 70)


def noise_faces(root: Path, n: int = 48, *, no_face: int = 4, seed: int = 0) -> tuple[Path, Path]:
    """(manifest, cache folder): ``n`` people, one noise photo each, mask normal; the cache holds a
    descriptor per photo whose first dimensions encode gender and age group, and no face for the
    first ``no_face`` photos."""
    rng = np.random.default_rng(seed)
    rows, items = ["path,person_id,mask,gender,age"], []
    for i in range(n):
        gender, group = i % 2, (i // 2) % 3
        path = root / "photos" / f"p{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), rng.integers(0, 256, (64, 48, 3), dtype=np.uint8))
        rows.append(f"photos/p{i:03d}.png,id{i:03d},normal,{'female' if gender else 'male'},{AGES[group]}")
        if i < no_face:
            items.append((content_key(path), FaceRecord(48, 64)))
            continue
        vec = rng.normal(size=128).astype(np.float32) * 0.05
        # spread over many dimensions, as on real faces: 48 photos cannot tell a few signal
        # dimensions from the 128 standardized ones
        vec[:40] += 0.4 if gender else -0.4
        vec[40 + 20 * group: 60 + 20 * group] += 0.5
        items.append((content_key(path), FaceRecord(48, 64, "hog", 1.0, (4, 4, 40, 40), np.zeros((5, 2)), vec)))
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    cache = root / "cache"
    with FaceCache(cache) as c:
        c.put(items, "hog+haar")
    return root / "manifest.csv", cache


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> tuple[Path, Path]:
    return noise_faces(tmp_path_factory.mktemp("noise"))


def cfg_for(cache: Path, *extra: str):
    return tiny_config("data.folds=3", "data.crop=none", "data.augment=none", f"data.cache_dir={cache}",
                       "train.trackers=none", "train.lr=0.01", "data.face_groups=false", *extra)


def test_face_input_standardizes_and_flags_missing_faces():
    layer = FaceInput()
    faces = np.array([[1.0] * 128, [3.0] * 128, [np.nan] * 128], np.float32)
    assert layer.fit(faces) == 2  # the NaN row is skipped
    out = layer(torch.from_numpy(faces))
    assert out.shape == (3, 129)
    assert out[0, :128].tolist() == pytest.approx([-1.0] * 128) and out[1, :128].tolist() == pytest.approx([1.0] * 128)
    assert out[2, :128].abs().sum() == 0 and out[:, 128].tolist() == [0.0, 0.0, 1.0]


def test_face_descriptor_heads_read_what_the_descriptor_knows_without_decoding_a_photo(noisy, tmp_path, monkeypatch):
    manifest, cache = noisy
    monkeypatch.setenv("MASKCLS_CACHE", str(cache))  # predict uses the user's cache, never the run's
    cfg = cfg_for(cache, "model.name=face-descriptor", "train.epochs=15")
    assert cfg.model.face_features  # implied by the model
    prepared = prepare(cfg, manifest, log=lambda s: None)
    lines = []
    summary = train(cfg, prepared, tmp_path / "run", log=lines.append)
    assert summary["gender_f1"] > 0.9 and summary["age_f1"] > 0.8, summary
    assert prepared.store.decoded == 0  # no pixel was read
    line = next(x for x in lines if x.startswith("face features"))
    assert "no face found in" in line and "descriptor alone" in line
    assert summary["face_features"]["no_face_train"] + summary["face_features"]["no_face_val"] == 4
    # predict reads the run back and answers the validation photos as training scored them
    val = pd.read_csv(tmp_path / "run" / "val_probs.csv")
    probs = Predictor(tmp_path / "run").predict_proba([str(manifest.parent / p) for p in val["path"]])
    want = val[[f"p{k}" for k in range(18)]].to_numpy()
    assert np.abs(probs - want).max() < 1e-3


def test_cnn_with_face_features_reads_gender_the_cnn_alone_cannot(noisy, tmp_path):
    manifest, cache = noisy
    scores = {}
    for flag in ("false", "true"):
        cfg = cfg_for(cache, f"model.face_features={flag}", "train.epochs=6")
        scores[flag] = train(cfg, manifest, tmp_path / flag)["gender_f1"]
    assert scores["true"] > 0.85 and scores["false"] < 0.75, scores


@pytest.fixture(scope="module")
def cnn_run(noisy, tmp_path_factory) -> Path:
    manifest, cache = noisy
    out = tmp_path_factory.mktemp("cnnface") / "run"
    train(cfg_for(cache, "model.face_features=true", "train.epochs=2"), manifest, out)
    return out


def test_resume_continues_a_face_features_run_to_the_same_result(noisy, tmp_path):
    manifest, cache = noisy
    cfg = cfg_for(cache, "model.face_features=true", "train.epochs=2")
    full = train(cfg, manifest, tmp_path / "full")
    assert train(cfg, manifest, tmp_path / "cut", stop_after_epoch=1) == {"stopped_after_epoch": 1}
    resumed = train(cfg, manifest, tmp_path / "cut", resume=True)
    assert resumed["macro_f1"] == full["macro_f1"] and resumed["gender_f1"] == pytest.approx(full["gender_f1"])
    a = torch.load(tmp_path / "full" / "best.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "best.pt", weights_only=True)["model"]
    assert torch.equal(a["face.mean"], b["face.mean"]) and not torch.equal(a["face.mean"], torch.zeros(128))


def test_fold_all_with_face_features_writes_out_of_fold_answers(noisy, tmp_path):
    manifest, cache = noisy
    cfg = cfg_for(cache, "model.name=face-descriptor", "train.epochs=15")
    train_folds(cfg, manifest, tmp_path / "cv", progress=False, log=lambda s: None)
    oof = pd.read_csv(tmp_path / "cv" / "oof_probs.csv")
    assert len(oof) == 48
    gender = (oof[[f"p_gender_{k}" for k in range(2)]].to_numpy().argmax(1))
    known = oof["gender"].notna()
    assert (gender[known] == oof.loc[known, "gender"].to_numpy()).mean() > 0.85


def test_onnx_export_takes_the_descriptor_as_a_second_input(cnn_run, noisy, tmp_path, capsys, monkeypatch):
    manifest, cache = noisy
    monkeypatch.setenv("MASKCLS_CACHE", str(cache))
    assert main(["export", str(cnn_run), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "faces N x 128" in capsys.readouterr().out
    assert main(["export", "--info", str(tmp_path / "m.onnx")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["faces"]["shape"] == ["N", 128] and "NaN" in info["faces"]["what"]
    paths = [str(p) for p in sorted((manifest.parent / "photos").glob("*.png"))[:8]]  # 4 of them have no face
    torch_probs = Predictor(cnn_run).predict_proba(paths)
    onnx_probs = Predictor(tmp_path / "m.onnx", backend="onnx").predict_proba(paths)
    assert np.abs(torch_probs - onnx_probs).max() < 1e-4


def test_a_face_features_run_refuses_to_predict_without_the_face_model(cnn_run, noisy, monkeypatch, capsys):
    from maskcls.faces import models

    manifest, _ = noisy
    monkeypatch.setattr(models, "available", lambda: "dlib cannot be imported (no module named dlib); install it")
    with pytest.raises(UserError, match="trained with model.face_features and reads.*cannot load here: dlib cannot be"):
        Predictor(cnn_run)
    photo = str(next((manifest.parent / "photos").glob("*.png")))
    assert main(["classify", str(cnn_run), photo]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dlib cannot be imported" in err[0] and "Traceback" not in err[0]


def test_in_memory_images_get_the_descriptor_their_file_gets(tmp_path):
    """The API's arrays are described directly, files through the cache: the same face, the same numbers."""
    skdata = pytest.importorskip("skimage.data")
    from maskcls.faces.features import face_descriptors

    face = cv2.resize(skdata.astronaut()[20:420, 80:380], (384, 512), interpolation=cv2.INTER_AREA)
    path = tmp_path / "astronaut.png"  # lossless: the file holds exactly the array
    assert cv2.imwrite(str(path), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    out = face_descriptors([path, face, np.zeros((64, 48, 3), np.uint8)], cache_dir=tmp_path / "cache", workers=0)
    assert np.isfinite(out[0]).all() and np.abs(out[0] - out[1]).max() < 1e-5
    assert np.isnan(out[2]).all()  # no face in a black photo


def test_interpret_explains_a_face_features_run_and_refuses_the_descriptor_heads(cnn_run, noisy, tmp_path,
                                                                                monkeypatch):
    from maskcls.reports.interpret import interpret

    manifest, cache = noisy
    monkeypatch.setenv("MASKCLS_CACHE", str(cache))
    summary = interpret(cnn_run, manifest, tmp_path / "page", top=4, per_state=2, progress=False, log=lambda s: None)
    assert (tmp_path / "page" / "interpret.html").is_file() and summary["n_photos"] == 16  # the validation fold
    assert summary["face_features"] and "whose share no map can show" in (tmp_path / "page" / "interpret.html").read_text()
    run = tmp_path / "desc"
    train(cfg_for(cache, "model.name=face-descriptor", "train.epochs=1"), manifest, run)
    with pytest.raises(UserError, match="no CNN"):
        interpret(run, manifest, tmp_path / "page2", progress=False, log=lambda s: None)


def test_settings_that_cannot_go_with_face_features_are_refused():
    with pytest.raises(UserError, match="model.face_features reads one face.*or use model.face_features=false"):
        config_mod.load_config("demo", ["model.face_features=true", "train.mixup=0.2"])
    # the descriptor heads read faces whatever model.face_features says: the message names the model
    with pytest.raises(UserError, match="model.name=face-descriptor reads one face.*another model.name"):
        config_mod.load_config("demo", ["model.name=face-descriptor", "model.face_features=false", "train.cutmix=1"])
    with pytest.raises(UserError, match="no CNN to load"):
        build_model("face-descriptor", "multi", "/some/weights.pth")
    # the first line of a training says what reads what
    descriptor = config_mod.load_config("demo", ["model.name=face-descriptor"])
    assert "-> face-descriptor (no CNN: heads on the face descriptor), 12 epochs" in config_mod.describe_config(
        "demo", [], descriptor)
    fused = config_mod.load_config("demo", ["model.face_features=true"])
    assert "-> regnetx_002 at 96x128 + face features," in config_mod.describe_config("demo", [], fused)
    # the model reads face features only when asked: a plain model's input stays the images
    assert build_model("test_resnet", "multi", "none").face is None


def test_export_info_of_the_descriptor_heads_says_the_image_input_is_a_placeholder(noisy, tmp_path, capsys, monkeypatch):
    manifest, cache = noisy
    monkeypatch.setenv("MASKCLS_CACHE", str(cache))
    run = tmp_path / "desc"
    train(cfg_for(cache, "model.name=face-descriptor", "train.epochs=3"), manifest, run)
    assert main(["export", str(run), "--out", str(tmp_path / "d.onnx")]) == 0
    capsys.readouterr()
    assert main(["export", "--info", str(tmp_path / "d.onnx")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input"]["shape"] == ["N", 1, 1, 3] and "placeholder" in info["input"]["what"]
    assert "size" not in info["input"] and "crop" not in info["preprocessing"]
    import onnxruntime as ort

    paths = [str(p) for p in sorted((manifest.parent / "photos").glob("*.png"))[:6]]
    from maskcls.faces.features import face_descriptors

    faces = face_descriptors(paths, cache_dir=cache)
    session = ort.InferenceSession(str(tmp_path / "d.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["probs"], {"images": np.zeros((6, 1, 1, 3), np.uint8), "faces": faces})[0]
    assert np.abs(got - Predictor(run).predict_proba(paths)).max() < 1e-4
