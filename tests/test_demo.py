"""The main job end to end, shrunk: data -> validate -> train -> predict (with and without TTA) -> score."""

import json

import pandas as pd
import pytest

from maskcls.demo import run_demo


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, capsys):
    result = run_demo(tmp_path / "demo", overrides=("model.name=test_resnet", "data.size=48x64", "train.epochs=1",
                                                    "train.tensorboard=false"),
                      progress=False, people=20, eval_people=3)
    out = capsys.readouterr().out
    assert "[5/5] results" in out and "with hflip TTA" in out
    sub = pd.read_csv(tmp_path / "demo" / "submission.csv")
    info = pd.read_csv(tmp_path / "demo" / "data" / "eval" / "info.csv")
    assert sub["ImageID"].tolist() == info["ImageID"].tolist() and sub["ans"].between(0, 17).all()
    assert (tmp_path / "demo" / "submission-no-tta.csv").is_file()
    assert 0 <= result["eval"]["macro_f1"] <= 1 and result["eval"]["photos"] == 21
    assert (tmp_path / "demo" / "run" / "best.pt").is_file()
    # the closing lines' stronger submission runs as printed (shrunk by the same settings)
    commands = [line.strip() for line in out.splitlines() if line.startswith("    maskcls ")]
    assert [c.split()[1] for c in commands] == ["train", "train", "predict"]
    import shlex

    from maskcls.cli import main

    # the demo's own settings carry over to the cross-validation, and the fit takes its recipe
    assert "--set model.name=test_resnet --set data.size=48x64" in commands[0]
    for command in commands:
        assert main(["--quiet", *shlex.split(command)[1:]]) == 0, command
    assert json.loads((tmp_path / "demo" / "final" / "summary.json").read_text())["epochs_from"]["epochs"] == 1
    final = pd.read_csv(tmp_path / "demo" / "submission-final.csv")
    assert final["ImageID"].tolist() == info["ImageID"].tolist()


def test_demo_can_be_shrunk_and_remakes_its_data_only_when_asked_for_other_data(tmp_path, capsys):
    """`maskcls demo` could not be shrunk: --people, --eval-people, --size and --epochs."""
    from PIL import Image

    from maskcls.cli import main

    out = tmp_path / "d"
    argv = ["--quiet", "demo", "--out", str(out), "--people", "8", "--eval-people", "1", "--size", "32x48",
            "--epochs", "1", "--set", "model.name=test_resnet"]
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert "writing demo data: 8 + 1 people at 32x48" in said
    assert len(pd.read_csv(out / "data" / "train" / "train.csv")) == 8
    with Image.open(next((out / "data" / "train" / "images").rglob("mask1.*"))) as img:
        assert img.size == (32, 48)
    assert len(pd.read_csv(out / "run" / "metrics.csv")) == 1
    assert json.loads((out / "run" / "summary.json").read_text())["epochs"] == 1
    assert main(argv) == 0
    assert "reusing demo data" in capsys.readouterr().out
    argv[argv.index("8")] = "9"
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert "replacing the demo data" in said and len(pd.read_csv(out / "data" / "train" / "train.csv")) == 9
    assert main(["demo", "--out", str(out), "--size", "big"]) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
