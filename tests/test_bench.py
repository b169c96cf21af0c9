"""maskcls bench prints one JSON object with every figure (values are measured, never asserted as speeds)."""

import json

import pytest

from maskcls.cli import main

KEYS = {"loader_img_s", "model_img_s", "train_img_s", "train_ratio", "predict_img_s", "predict_model_img_s",
        "predict_ratio", "loader_nocache_img_s", "reference_loader_img_s", "cache_vs_reference", "device", "amp",
        "cache", "model", "size", "batch"}


@pytest.mark.slow
def test_bench_prints_every_key(synth_root, capsys):
    assert main(["--quiet", "bench", str(synth_root), "--model", "test_resnet", "--size", "48x64", "--batch", "8",
                 "--steps", "2", "--repeats", "1", "--set", "data.cache=disk"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert KEYS <= set(out)
    assert out["model"] == "test_resnet" and out["size"] == "48x64" and out["batch"] == 8 and out["cache"] == "disk"
    for key in KEYS - {"device", "amp", "cache", "model", "size", "batch"}:
        assert out[key] > 0
    assert out["train_ratio"] == pytest.approx(out["train_img_s"] / out["model_img_s"], rel=0.01)


BENCHMARKS = __import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow  # ten subprocesses that each import torch: over half of the fast suite
@pytest.mark.parametrize("args, message", [
    (["--folds", "1"], "--folds must be at least 2"),
    (["--people", "5"], "is too few for"),
    (["--config", "nosuch"], "no such file or built-in config"),
    (["--set", "data.sise=96x128"], "did you mean data.size"),
    (["--people", "-3"], "must be at least 1"),
])
def test_benchmark_scripts_end_a_mistake_in_one_line(tmp_path, args, message):
    import subprocess
    import sys

    for script in ("ensemble_gain.py", "audit_noise.py"):
        done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args, "--out", str(tmp_path / "o")],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (script, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / "o").exists()  # refused before any data was drawn


def test_benchmark_out_folder_is_reused_only_for_the_same_settings(tmp_path, monkeypatch):
    from maskcls.errors import UserError

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from _cli import out_folder

    root = out_folder(str(tmp_path / "o"), {"folds": 2, "epochs": 1}, str(tmp_path / "t"))
    (root / "cv").mkdir()
    assert out_folder(str(root), {"folds": 2, "epochs": 1}, "") == root
    with pytest.raises(UserError, match="folds: 2 -> 3"):
        out_folder(str(root), {"folds": 3, "epochs": 1}, "")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="other files"):
        out_folder(str(tmp_path / "other"), {"folds": 2}, "")
    (tmp_path / "afile").write_text("")
    with pytest.raises(UserError, match="not a folder"):
        out_folder(str(tmp_path / "afile"), {"folds": 2}, "")
