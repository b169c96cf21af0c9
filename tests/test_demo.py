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
