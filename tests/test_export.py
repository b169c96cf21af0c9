"""ONNX export: the graph matches PyTorch, and predict with either backend writes the same submission."""

import json

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from maskcls.cli import main
from maskcls.errors import UserError
from maskcls.serve.export import OUTPUTS, export_run
from maskcls.training.fit import train
from maskcls.training.model import class_log_probs
from maskcls.serve.backends import OnnxMember
from maskcls.training.runs import load_checkpoint, load_run
from conftest import tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    train(tiny_config("train.epochs=1", "train.tensorboard=false", "data.folds=3"), synth_root, out,
          progress=False, log=lambda s: None)
    return out


def test_export_matches_pytorch_with_a_dynamic_batch(run, tmp_path):
    info = export_run(run, tmp_path / "m.onnx")
    assert info["max_abs_diff"] < 1e-4 and info["models"] == 1
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    model, cfg, _ = load_run(run)
    model.eval()
    w, h = cfg.size
    for n in (1, 5):
        x = torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8)
        got = dict(zip(OUTPUTS, session.run(list(OUTPUTS), {"images": x.numpy()})))
        with torch.no_grad():
            want = class_log_probs(model(x)).exp().numpy()
        assert got["probs"].shape == (n, 18) and np.abs(got["probs"] - want).max() < 1e-4
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
    assert "max abs difference to PyTorch" in out and "N x 3 x 64 x 48 (N x channels x height x width)" in out
    # the file says what it needs and what it returns
    assert main(["export", "--info", str(run / "model.onnx")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input"]["shape"] == ["N", 3, 64, 48] and len(info["class_names"]) == 18
    assert info["tasks"]["age"]["of_class"][:3] == [0, 1, 2] and info["preprocessing"]["crop"] == "center"
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
