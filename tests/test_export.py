"""ONNX export: the graph matches PyTorch, and predict with either backend writes the same submission."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch
from PIL import Image

from maskcls.cli import main
from maskcls.data.preprocess import Preprocess
from maskcls.photos import read_rgb
from maskcls.errors import UserError
from maskcls.serve.export import OUTPUTS, export_run
from maskcls.training.fit import train
from maskcls.training.model import class_log_probs
from maskcls.serve.backends import OnnxMember
from maskcls.serve.predictor import Predictor
from maskcls.training.runs import load_checkpoint, load_run
from conftest import tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    train(tiny_config("train.epochs=1", "train.tensorboard=false", "data.folds=3"), synth_root, out,
          progress=False, log=lambda s: None)
    return out


def test_export_matches_pytorch_with_a_dynamic_batch(run, synth_root, tmp_path):
    info = export_run(run, tmp_path / "m.onnx")
    assert info["max_abs_diff"] < 1e-4 and info["models"] == 1
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    model, cfg, _ = load_run(run)
    model.eval()
    photos = [read_rgb(p) for p in sorted((synth_root / "eval" / "images").iterdir())]
    assert len({p.shape for p in photos}) == 1 and cfg.data.crop == "center"
    preprocess = Preprocess(size=cfg.size, crop=cfg.data.crop)
    for n in (1, 5):
        # whole photos in: the graph crops and resizes them itself, as training's preprocess does
        x = np.stack(photos[:n])
        got = dict(zip(OUTPUTS, session.run(list(OUTPUTS), {"images": x})))
        cropped = torch.from_numpy(np.stack([preprocess(p) for p in photos[:n]])).permute(0, 3, 1, 2)
        with torch.no_grad():
            want = class_log_probs(model(cropped)).exp().numpy()
        assert got["probs"].shape == (n, 18) and np.abs(got["probs"] - want).max() < 1e-3
        assert (got["probs"].argmax(1) == want.argmax(1)).all()
        assert got["mask"].shape == (n, 3) and np.allclose(got["mask"].sum(1), 1, atol=1e-5)
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["config"])["data"]["size"] == cfg.data.size
    # the file carries what the run carries: its preprocessing and its training photos' fingerprints
    member = OnnxMember(tmp_path / "m.onnx")
    ckpt = load_checkpoint(run / "best.pt")
    assert member.config.data.crop == cfg.data.crop == "center" and member.data == ckpt["data"]
    np.testing.assert_array_equal(np.sort(member.train_photos), np.sort(ckpt["train_photos"].numpy()))
    with pytest.raises(UserError, match="already exists"):
        export_run(run, tmp_path / "m.onnx")


def test_predict_with_both_backends_writes_the_same_submission(run, synth_root, tmp_path, capsys):
    assert main(["export", str(run)]) == 0
    out = capsys.readouterr().out
    assert "max abs difference to PyTorch" in out and "photos N x 64 x 48 x 3 (N x height x width x channels)" in out
    # the file says what it needs and what it returns
    assert main(["export", "--info", str(run / "model.onnx")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input"]["shape"] == ["N", 64, 48, 3] and len(info["class_names"]) == 18
    assert info["input"]["size"].startswith("48x64") and info["contract"] == 2
    assert info["tasks"]["age"]["of_class"][:3] == [0, 1, 2] and info["preprocessing"]["crop"] == "center"
    # the crop box in input pixels, so anyone can check what the graph keeps
    assert info["preprocessing"]["in_graph"] is True and info["preprocessing"]["crop_box"] == [8, 12, 40, 52]
    assert len(info["preprocessing"]["normalisation"]["mean"]) == 3
    assert main(["export", "--info", str(run / "config.yaml")]) == 2
    a, b = tmp_path / "torch.csv", tmp_path / "onnx.csv"
    pa, pb = tmp_path / "pt.csv", tmp_path / "po.csv"
    assert main(["predict", str(run), str(synth_root / "eval"), "--out", str(a), "--probs", str(pa)]) == 0
    assert main(["predict", str(run), str(synth_root / "eval"), "--out", str(b), "--probs", str(pb),
                 "--backend", "onnx"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(a), pd.read_csv(b))
    assert np.abs(pd.read_csv(pa).iloc[:, 1:].to_numpy() - pd.read_csv(pb).iloc[:, 1:].to_numpy()).max() < 1e-4
    capsys.readouterr()
    photo = sorted((synth_root / "eval" / "images").iterdir())[0]
    assert main(["classify", str(run), str(photo), "--backend", "onnx", "--tta", "hflip"]) == 0
    onnx_line = json.loads(capsys.readouterr().out)
    assert main(["classify", str(run), str(photo), "--tta", "hflip"]) == 0
    torch_line = json.loads(capsys.readouterr().out)
    assert onnx_line["class"] == torch_line["class"]
    assert onnx_line["confidence"] == pytest.approx(torch_line["confidence"], abs=1e-3)


def test_onnx_backend_without_an_export_is_one_message(run, tmp_path, capsys):
    other = tmp_path / "copy"
    other.mkdir()
    assert main(["classify", str(other), str(run / "config.yaml"), "--backend", "onnx"]) == 2


def _readme_onnx_example() -> str:
    readme = (Path(__file__).resolve().parents[1] / "docs" / "speed.md").read_text()
    block = readme.split("<!-- onnx-example -->", 1)[1].split("<!-- /onnx-example -->", 1)[0]
    return block.split("```python", 1)[1].split("```", 1)[0]


def test_the_readme_onnx_example_needs_no_maskcls_and_answers_as_the_predictor(run, synth_root, tmp_path):
    """The README's plain-onnxruntime block, run with maskcls and torch made unimportable, gives the
    classes Predictor gives (PyTorch backend) on the demo generator's eval photos."""
    export_run(run, tmp_path / "m.onnx")
    script = tmp_path / "classify_onnx.py"
    script.write_text(_readme_onnx_example())
    photos = sorted(str(p) for p in (synth_root / "eval" / "images").iterdir())
    guard = ("import runpy, sys\n"
             "for name in ('torch', 'maskcls', 'albumentations', 'cv2'): sys.modules[name] = None\n"
             "sys.argv = sys.argv[1:]\n"
             "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    out = subprocess.run([sys.executable, "-c", guard, str(script), str(tmp_path / "m.onnx"), *photos],
                         capture_output=True, text=True, cwd=tmp_path, check=True).stdout.splitlines()
    assert len(out) == len(photos)
    want = Predictor(run).predict(photos)
    for line, (_, row) in zip(out, want.iterrows()):
        path, cls, name, conf = line.split()
        assert path == row["input"] and int(cls) == row["class"]
        assert float(conf) == pytest.approx(row["confidence"], abs=2e-3)


def test_predict_and_classify_with_the_onnx_backend_never_import_torch(run, synth_root, tmp_path):
    export_run(run, tmp_path / "m.onnx")
    photo = sorted((synth_root / "eval" / "images").iterdir())[0]
    probe = ("import sys\nfrom maskcls.cli import main\ncode = main(sys.argv[1:])\n"
             "print('IMPORTED', sorted({'torch', 'albumentations'} & set(sys.modules)))\nsys.exit(code)\n")
    for args in (["classify", str(tmp_path / "m.onnx"), str(photo), "--backend", "onnx", "--tta", "hflip"],
                 ["predict", str(tmp_path / "m.onnx"), str(synth_root / "eval"), "--out", str(tmp_path / "s.csv"),
                  "--backend", "onnx"]):
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "IMPORTED []" in done.stdout
    assert len(pd.read_csv(tmp_path / "s.csv")) == len(list((synth_root / "eval" / "images").iterdir()))


def test_an_export_from_before_photos_went_in_is_refused_with_what_to_do(run, tmp_path):
    import onnx

    export_run(run, tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    kept = [p for p in model.metadata_props if p.key != "contract"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(tmp_path / "old.onnx"))
    with pytest.raises(UserError, match="older maskcls.*export the run again"):
        OnnxMember(tmp_path / "old.onnx")


def test_input_size_sets_what_the_graph_takes_and_a_photo_of_another_size_is_resized(run, synth_root, tmp_path, capsys):
    assert main(["export", str(run), "--out", str(tmp_path / "big.onnx"), "--input-size", "96x128"]) == 0
    assert "N x 128 x 96 x 3" in capsys.readouterr().out
    assert main(["export", str(run), "--out", str(tmp_path / "bad.onnx"), "--input-size", "96"]) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err and not (tmp_path / "bad.onnx").exists()
    photos = sorted(str(p) for p in (synth_root / "eval" / "images").iterdir())
    got = Predictor(tmp_path / "big.onnx", backend="onnx").predict_proba(photos)  # 48x64 photos, upscaled first
    assert got.shape == (len(photos), 18) and np.allclose(got.sum(1), 1, atol=1e-4)


def test_a_face_crop_export_takes_the_face_crop_and_answers_as_pytorch(synth_root, tmp_path, capsys):
    run = tmp_path / "face"
    train(tiny_config("train.epochs=1", "train.tensorboard=false", "data.folds=3", "data.crop=face"), synth_root, run,
          progress=False, log=lambda s: None)
    assert main(["export", str(run)]) == 0
    assert "images N x 64 x 48 x 3" in capsys.readouterr().out  # the run's own size: the crop is outside
    assert main(["export", "--info", str(run / "model.onnx")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["preprocessing"]["in_graph"] is False and "face crop" in info["input"]["what"]
    photos = sorted(str(p) for p in (synth_root / "eval" / "images").iterdir())
    want = Predictor(run).predict_proba(photos)
    got = Predictor(run, backend="onnx").predict_proba(photos)
    assert np.abs(got - want).max() < 1e-4


def test_export_and_the_onnx_backend_refuse_what_a_new_user_tried(run, synth_root, tmp_path, capsys):
    """From a new user's walk-through: an export into the run's data, a file system that takes no files,
    a GPU asked of the CPU backend, a checkpoint given as an ONNX file, and the runs' paths in --info."""
    assert main(["export", str(run), "--out", str(synth_root / "m.onnx")]) == 2
    assert "is inside the data" in capsys.readouterr().err and not (synth_root / "m.onnx").exists()
    assert main(["export", str(run), "--out", "/proc/m.onnx"]) == 2
    err = capsys.readouterr().err
    assert "/proc/m.onnx: cannot write it" in err and ".tmp" not in err
    export_run(run, tmp_path / "m.onnx")
    photo = str(sorted((synth_root / "eval" / "images").iterdir())[0])
    assert main(["classify", str(tmp_path / "m.onnx"), photo, "--backend", "onnx", "--device", "cuda"]) == 2
    assert "--backend onnx runs on the CPU only" in capsys.readouterr().err
    assert main(["classify", str(run / "best.pt"), photo, "--backend", "onnx"]) == 2
    assert "best.pt: not an ONNX file" in capsys.readouterr().err
    assert main(["export", "--info", str(run)]) == 2
    assert "a folder, not an ONNX file" in capsys.readouterr().err
    assert main(["export", "--info", str(tmp_path / "m.onnx")]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == [str(run.resolve())]


def test_a_photo_file_under_8_pixels_a_side_is_refused_as_an_array_is(run, tmp_path):
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (4, 4)).save(tiny)
    for backend, model in (("torch", run),):
        with pytest.raises(UserError, match="4x4 pixels is not a photo"):
            Predictor(model, backend=backend).predict([str(tiny)])
