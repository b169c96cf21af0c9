"""`train --fold none`: the final fit on every person, its epoch budget (--epochs-from a --fold all run),
what it writes, and every command that uses a run working on it (evaluate refusing its own people)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from maskcls import Predictor, labels
from maskcls.cli import main
from maskcls.config import load_config
from maskcls.data.synth import make_dataset
from maskcls.errors import UserError
from maskcls.figures import _curves_figure
from maskcls.training.budget import epochs_from, median_epoch
from maskcls.training.fit import train
from maskcls.training.runs import load_checkpoint
from conftest import TINY

SETS = [a for s in [*TINY, "train.epochs=2", "data.folds=3", "train.trackers=none"] for a in ("--set", s)]


@pytest.fixture(scope="module")
def cv_and_final(synth_root, tmp_path_factory):
    """A --fold all run whose per-fold best epochs are then set to 1, 1, 2 (median 1, which differs
    from its config's 2 epochs), and the final fit trained from it through the CLI."""
    root = tmp_path_factory.mktemp("final")
    cv = root / "cv"
    assert main(["--quiet", "train", str(synth_root), "--out", str(cv), "--fold", "all", "--config", "demo", *SETS]) == 0
    summary = json.loads((cv / "cv_summary.json").read_text())
    for fold, best in zip(summary["per_fold"], (1, 2, 1)):
        fold["best_epoch"] = best
    (cv / "cv_summary.json").write_text(json.dumps(summary))
    final = root / "final"
    return cv, final


def _train_final(synth_root, cv, final, capsys):
    if not (final / "summary.json").is_file():
        capsys.readouterr()
        assert main(["--quiet", "train", str(synth_root), "--out", str(final), "--fold", "none", "--epochs-from",
                     str(cv)]) == 0
    return capsys.readouterr().out


def test_the_rule_is_the_median_rounded_half_up():
    assert median_epoch([8, 9, 12, 9, 10]) == 9
    assert median_epoch([8, 9]) == 9  # 8.5 -> 9
    assert median_epoch([3, 2, 3]) == 3


@pytest.mark.slow
def test_final_fit_trains_every_person_for_the_budget_the_folds_chose(synth_root, cv_and_final, capsys):
    cv, final = cv_and_final
    out = _train_final(synth_root, cv, final, capsys)
    first = out.splitlines()[0]
    assert first.startswith("--fold none:") and "no one is held out" in first
    assert f"1 epoch from {cv}" in first and "(1, 2, 1)" in first
    summary = json.loads((final / "summary.json").read_text())
    assert summary["held_out"] == "none" and summary["fold"] is None and summary["val_people"] == 0
    assert summary["epochs_from"] == {"epochs": 1, "source": str(cv), "rule": summary["epochs_from"]["rule"],
                                      "best_epochs": [1, 2, 1]}
    assert "median" in summary["epochs_from"]["rule"]
    assert summary["epochs"] == 1 and summary["kept"] == "last_epoch"  # the config's 2 epochs were replaced
    metrics = pd.read_csv(final / "metrics.csv")
    assert len(metrics) == 1 and metrics["val_loss"].isna().all() and metrics["macro_f1"].isna().all()
    # every photo trained, and the checkpoint's fingerprints say so (what evaluate's guard reads)
    photos = len(pd.read_csv(synth_root / "train" / "train.csv")) * 7
    assert summary["train_photos"] == photos
    ckpt = load_checkpoint(final / "best.pt")
    assert len(ckpt["train_photos"]) == photos and ckpt["config"]["data"]["fold"] is None
    assert ckpt["epoch"] == 1
    assert not (final / "val_probs.csv").exists() and not (final / "confusion.png").exists()
    assert (final / "curves.png").is_file() and len(pd.read_csv(final / "train_margins.csv")) == photos
    # the recipe is the cross-validated one: its fold-0 settings
    saved = load_config(final / "config.yaml")
    assert saved.data.size == "48x64" and saved.model.name == "test_resnet" and saved.train.select == "last"


@pytest.mark.slow
def test_every_command_that_uses_a_run_works_on_a_final_fit(synth_root, cv_and_final, tmp_path, capsys):
    cv, final = cv_and_final
    _train_final(synth_root, cv, final, capsys)
    # its own people: refused, whichever split is asked for
    assert main(["evaluate", str(final), str(synth_root)]) == 2
    assert "--fold none" in capsys.readouterr().err
    assert main(["evaluate", str(final), str(synth_root), "--split", "all"]) == 2
    err = capsys.readouterr().err
    assert "trained on" in err and "--split val" not in err  # no validation fold to point to
    # other people: scored
    other = tmp_path / "other"
    make_dataset(other, people=6, eval_people=0, noise=0.0, seed=11, size=(48, 64), workers=1)
    assert main(["--quiet", "evaluate", str(final), str(other), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["people"] == 6 and scores["split"] == "all"
    sub = tmp_path / "sub.csv"
    assert main(["--quiet", "predict", str(final), str(synth_root / "eval"), "--out", str(sub)]) == 0
    assert len(pd.read_csv(sub)) == 4 * 7
    photo = sorted((synth_root / "eval" / "images").iterdir())[0]
    assert main(["--quiet", "classify", str(final), str(photo)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["photo"] == str(photo)
    assert main(["--quiet", "export", str(final), "--out", str(tmp_path / "m.onnx")]) == 0
    api = Predictor(final).predict([str(photo)])
    assert api.loc[0, "class"] == int(np.argmax(api[labels.class_prob_columns()].to_numpy()[0]))
    assert main(["--quiet", "interpret", str(final), str(synth_root), "--out", str(tmp_path / "i1")]) == 2
    assert "--fold none" in capsys.readouterr().err
    assert main(["--quiet", "interpret", str(final), str(other), "--out", str(tmp_path / "i2"), "--top", "2"]) == 0
    assert (tmp_path / "i2" / "interpret.html").is_file()
    # a copy of its data is its data, found by content: interpret refuses it as evaluate does
    copy = tmp_path / "copy"
    shutil.copytree(synth_root, copy)
    assert main(["--quiet", "interpret", str(final), str(copy), "--out", str(tmp_path / "i3")]) == 2
    err = capsys.readouterr().err
    assert "found by content" in err and "validation fold" not in err and not (tmp_path / "i3").exists()


@pytest.mark.slow
def test_a_final_fit_resumes_with_its_budget(synth_root, tmp_path):
    cfg = load_config("demo", [*TINY, "data.fold=null", "train.select=last", "train.patience=0",
                               "train.trackers=none", "train.epochs=2"])
    quiet = {"progress": False, "log": lambda s: None}
    from maskcls.training.budget import Budget

    budget = Budget(2, "cv-somewhere", (2, 2, 1))
    assert train(cfg, synth_root, tmp_path / "r", stop_after_epoch=1, budget=budget, **quiet) == {"stopped_after_epoch": 1}
    lines = []
    summary = train(cfg, synth_root, tmp_path / "r", resume=True, progress=False, log=lines.append)  # no budget given
    assert summary["epochs"] == 2 and summary["epochs_from"]["source"] == "cv-somewhere"
    assert summary["epochs_from"]["best_epochs"] == [2, 2, 1]
    assert any("resuming" in line and "no one held out" in line for line in lines)
    assert not any("macro F1" in line for line in lines)
    # more epochs on resume: the budget is then the config's, not the one recorded for 2
    cfg.train.epochs = 3
    summary = train(cfg, synth_root, tmp_path / "r", resume=True, **quiet)
    assert summary["epochs"] == 3 and summary["epochs_from"] == {"epochs": 3, "source": "config"}


def test_curves_of_a_final_fit_draw_the_training_loss_alone():
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.5], "val_loss": [None, None],
                            "macro_f1": [None, None]})
    fig = _curves_figure(history, best_epoch=2, validated=False)
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["train loss", "kept: last epoch 2"]
    assert len(_curves_figure(history, best_epoch=2).axes) == 2


def test_a_config_that_holds_no_one_out_must_keep_the_last_epoch():
    with pytest.raises(UserError, match="train.select must be last"):
        load_config("demo", ["data.fold=null"])
    with pytest.raises(UserError, match="train.patience 0"):
        load_config("demo", ["data.fold=null", "train.select=last", "train.patience=2"])
    assert load_config("demo", ["data.fold=none", "train.select=last"]).data.fold is None


@pytest.mark.parametrize("args, message", [
    (["--epochs-from", "CV"], "use it with --fold none"),
    (["--fold", "none", "--epochs-from", "NOWHERE"], "no such folder"),
    (["--fold", "none", "--epochs-from", "FILE"], "a file, not a run folder"),
    (["--fold", "none", "--epochs-from", "CV", "--resume"], "nothing to resume"),
    (["--fold", "none", "--epochs-from", "HALF"], "folds left to train"),
    (["--fold", "none", "--set", "train.patience=3"], "contradicts it"),
    (["--fold", "none", "--set", "train.select=best"], "contradicts it"),
    (["--fold", "none", "--epochs-from", "CV", "--set", "train.epochs=7"], "contradicts it"),
    (["--fold", "none", "--epochs-from", "CV", "--set", "data.size=32x48"], "data.size (48x64 -> 32x48)"),
    (["--fold", "none", "--epochs-from", "CV", "--config", "demo"], "model.name"),
])
def test_final_fit_refusals_are_one_line(synth_root, tmp_path, capsys, args, message):
    cv = tmp_path / "cv"
    (cv / "fold-0").mkdir(parents=True)
    cfg = load_config("demo", TINY)
    (cv / "fold-0" / "config.yaml").write_text(__import__("yaml").safe_dump(cfg.to_dict()))
    (cv / "cv_summary.json").write_text(json.dumps({"per_fold": [{"best_epoch": 2}] * 4}))
    (tmp_path / "half" / "fold-0").mkdir(parents=True)
    args = [{"CV": str(cv), "NOWHERE": str(tmp_path / "x"), "HALF": str(tmp_path / "half"),
             "FILE": str(cv / "cv_summary.json")}.get(a, a) for a in args]
    assert main(["--quiet", "train", str(synth_root), "--out", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_epochs_from_reads_a_finished_cv_run(tmp_path):
    (tmp_path / "cv" / "fold-0").mkdir(parents=True)
    (tmp_path / "cv" / "cv_summary.json").write_text(json.dumps({"per_fold": [{"best_epoch": e} for e in (4, 9, 7, 8, 5)]}))
    budget = epochs_from(tmp_path / "cv")
    assert budget.epochs == 7 and budget.best_epochs == (4, 9, 7, 8, 5)
    (tmp_path / "cv" / "cv_summary.json").write_text("{}")
    with pytest.raises(UserError, match="not a cv_summary.json"):
        epochs_from(tmp_path / "cv")


@pytest.mark.slow
def test_an_agreeing_epochs_setting_is_accepted_and_a_held_out_run_does_not_resume_as_a_final_fit(
        synth_root, tmp_path, capsys):
    cv = tmp_path / "cv"
    (cv / "fold-0").mkdir(parents=True)
    cfg = load_config("demo", [*TINY, "train.trackers=none"])
    (cv / "fold-0" / "config.yaml").write_text(__import__("yaml").safe_dump(cfg.to_dict()))
    (cv / "cv_summary.json").write_text(json.dumps({"per_fold": [{"best_epoch": 1}] * 4}))
    assert main(["--quiet", "train", str(synth_root), "--out", str(tmp_path / "f"), "--fold", "none",
                 "--epochs-from", str(cv), "--set", "train.epochs=1"]) == 0
    assert json.loads((tmp_path / "f" / "summary.json").read_text())["epochs_from"]["epochs"] == 1
    held = tmp_path / "held"
    assert main(["--quiet", "train", str(synth_root), "--out", str(held), "--config", "demo",
                 *[a for s in [*TINY, "train.epochs=1", "train.trackers=none"] for a in ("--set", s)]]) == 0
    capsys.readouterr()
    assert main(["--quiet", "train", str(synth_root), "--out", str(held), "--fold", "none", "--resume"]) == 2
    assert "data.fold (0 -> null)" in capsys.readouterr().err
