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
