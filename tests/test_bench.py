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
    (["--epochs", "0"], "must be at least 1"),
    (["--folds", "2", "--set", "data.folds=3"], "the benchmark sets it from --folds"),
])
def test_benchmark_scripts_end_a_mistake_in_one_line(tmp_path, args, message):
    import subprocess
    import sys

    for script in ("ensemble_gain.py", "audit_noise.py"):
        done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args, "--out", str(tmp_path / "o")],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (script, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr
        assert done.stderr.startswith(f"{script}: error:") and len(done.stderr.splitlines()) == 1, done.stderr
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


@pytest.mark.slow
def test_audit_benchmark_measures_what_repeats_add(tmp_path):
    """benchmarks/audit_noise.py end to end on a few tiny people: with --repeats 2 every seed's audit
    holds two fold draws, and the table has the 1-repeat row beside the averaged one and both cleanlab
    rankings; an --out folder of 1 repeat is grown, not refused."""
    import subprocess
    import sys

    args = [sys.executable, str(BENCHMARKS / "audit_noise.py"), "--people", "12", "--folds", "2", "--epochs", "1",
            "--seeds", "1", "--noise", "0.2", "--out", str(tmp_path / "o"), "--set", "model.name=test_resnet",
            "--set", "data.size=48x64", "--set", "train.batch_size=16", "--set", "train.trackers=none"]
    first = subprocess.run([*args, "--repeats", "1"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "maskcls, 1 repeat" not in first.stdout and not (tmp_path / "o" / "audit-0" / "cv-1").exists()
    done = subprocess.run([*args, "--repeats", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "x 2 repeat(s)" in done.stdout
    rows = [line.split(" | ")[0].lstrip("| ") for line in done.stdout.splitlines() if line.startswith("| maskcls")
            or line.startswith("| cleanlab")]
    assert rows[:2] == ["maskcls", "maskcls, 1 repeat"] and {"cleanlab filter", "cleanlab quality"} <= set(rows)
    summary = json.loads((tmp_path / "o" / "audit-0" / "summary.json").read_text())
    assert [p.rsplit("/", 1)[-1] for p in summary["runs"]] == ["cv", "cv-1"]
    assert "proposed" in done.stdout and "seed 0: gate quality" in done.stdout
    assert "seed 0: top " in done.stdout and "clean people with hair unlike their gender" in done.stdout


def test_audit_benchmark_explains_gender_suspects_by_hidden_hair(monkeypatch):
    """hair_line counts, among the gender ranking's top k, the clean people whose hidden hair is unlike
    their gender, and among the planted people it missed, those whose hair matches the recorded gender."""
    import pandas as pd

    from maskcls.data.synth import person_id, train_people

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from audit_noise import hair_line

    people = train_people(40, seed=0)[0]
    name = {p.index: f"{person_id(p.index)}_{'female' if p.gender else 'male'}_Asian_{p.age}" for p in people}
    typical = [p for p in people if p.long_hair == bool(p.gender)]
    odd = [p for p in people if p.long_hair != bool(p.gender)]
    assert len(typical) >= 3 and len(odd) >= 2, "seed 0 must draw both kinds"

    def flipped(p):  # the folder name of p with the gender recorded wrong
        return f"{person_id(p.index)}_{'male' if p.gender else 'female'}_Asian_{p.age}"

    # Planted: one typical person (flipped: now their hair is unlike the recorded gender) and one odd
    # person (flipped: their hair now matches the recorded gender, so a hair reader misses them).
    planted = [flipped(typical[0]), flipped(odd[0])]
    noise = pd.DataFrame({"person": planted, "field": "gender", "image": "*", "recorded": "", "true": ""})
    ranking = [planted[0], name[odd[1].index], planted[1], name[typical[1].index]]
    assert hair_line(ranking, noise, 40, 0) == ("top 2: 1 planted; clean people with hair unlike their gender: "
                                                "1 of 1; planted people missed whose hair is like the gender "
                                                "recorded: 1 of 1")
    ranking = [name[typical[1].index], name[typical[2].index], *planted]
    assert hair_line(ranking, noise, 40, 0).startswith("top 2: 0 planted; clean people with hair unlike their "
                                                       "gender: 0 of 2;")
    assert hair_line(ranking, noise, 40, 0).endswith("gender recorded: 1 of 2")
