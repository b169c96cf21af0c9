"""The command line on real files: exit codes, messages, and nothing half-written."""

import shutil

import pytest

from maskcls.cli import main


@pytest.fixture
def dataset(tmp_path, synth_root):
    copy = tmp_path / "data"
    shutil.copytree(synth_root, copy)
    return copy


def test_validate_clean_then_corrupt_photo(dataset, capsys):
    assert main(["validate", str(dataset)]) == 0
    assert "no problems (168 training photos and 28 eval photos checked)" in capsys.readouterr().out
    victim = next((dataset / "train" / "images").rglob("mask2.*"))
    victim.write_bytes(victim.read_bytes()[:200])  # truncated, as an interrupted copy leaves it
    assert main(["validate", str(dataset)]) == 2
    out = capsys.readouterr().out
    assert f"{victim.resolve()}: photo does not decode" in out
    assert "maskcls validate" not in out  # validate never tells the user to run validate


def test_validate_eval_row_without_image(dataset, capsys):
    info = dataset / "eval" / "info.csv"
    info.write_text(info.read_text() + "deadbeef.jpg,0\n")
    assert main(["validate", str(dataset), "--no-decode"]) == 2
    assert "info.csv:30: image deadbeef.jpg not found" in capsys.readouterr().out


def test_validate_shows_corrections(dataset, tmp_path, capsys):
    folder = next((dataset / "train" / "images").iterdir()).name
    corr = tmp_path / "c.csv"
    corr.write_text(f"person_id,field,image,from,to\n{folder},mask,incorrect_mask+normal,,swap\n")
    assert main(["validate", str(dataset), "--no-decode", "--corrections", str(corr)]) == 0
    out = capsys.readouterr().out
    assert f"correction: {folder} incorrect_mask: mask" in out
    assert "2 label change(s) on 2 photo(s) of 1 person(s)" in out


def test_user_mistakes_exit_2_with_one_message(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"maskcls validate: error: {tmp_path / 'missing'}: no such file or folder"
    bad = tmp_path / "c.csv"
    bad.write_text("person_id,field,to\nx,colour,red\n")
    assert main(["summary", str(tmp_path), "--corrections", str(bad)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["summary", str(tmp_path), "--age-young", "70"]) == 2
    assert "young < old" in capsys.readouterr().err


def test_demo_data_and_summary(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["demo-data", str(out), "--people", "8", "--eval-people", "2", "--size", "32x40", "--seed", "1"]) == 0
    assert main(["summary", str(out), "--json"]) == 0
    text = capsys.readouterr().out
    assert '"people": 8' in text and '"photos": 56' in text
    assert main(["demo-data", str(out), "--people", "8"]) == 2  # refuses to write over it
    assert main(["demo-data", str(tmp_path / "e"), "--size", "big"]) == 2
    assert not (tmp_path / "e").exists()
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


@pytest.mark.slow
def test_train_and_evaluate_through_the_cli(synth_root, tmp_path, capsys):
    import json

    from conftest import TINY
    run = tmp_path / "run"
    args = ["train", str(synth_root), "--out", str(run), "--config", "demo", "--corrections", "known", "--fold", "1"]
    for item in TINY + ["train.epochs=1", "train.tensorboard=false"]:
        args += ["--set", item]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "corrections:" in out and "fold 1 of 4" in out and "best epoch 1 of 1" in out
    saved = (run / "config.yaml").read_text()
    assert "fold: 1" in saved and "corrections: known" in saved and "name: test_resnet" in saved
    assert main(["evaluate", str(run), str(synth_root)]) == 0  # lines, as `maskcls score` prints them
    table = capsys.readouterr().out
    assert "the run's validation fold: macro_f1 " in table and "per class (F1, photos):" in table
    assert main(["evaluate", str(run), str(synth_root), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["split"] == "val" and set(metrics) >= {"macro_f1", "accuracy", "mask_f1", "gender_f1", "age_f1"}
    assert main(["train", str(synth_root), "--out", str(run), "--config", "demo"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["train", str(synth_root), "--out", str(tmp_path / "r2"), "--set", "train.epoch=1"]) == 2
    assert "unknown config key 'train.epoch'" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


@pytest.mark.slow
def test_classify_prints_one_json_line_per_photo(synth_root, tmp_path, capsys):
    import json

    from conftest import tiny_config

    from maskcls import labels
    from maskcls.serve.predictor import Predictor
    from maskcls.training.fit import train
    run = tmp_path / "run"
    train(tiny_config("train.epochs=1", "train.tensorboard=false"), synth_root, run, progress=False, log=lambda s: None)
    images = synth_root / "train" / "images"
    # Two people's photos, in the opposite of their sorted order: the output keeps the order given.
    photos = [str(sorted(images.rglob("mask1.*"))[-1]), str(sorted(images.rglob("normal.*"))[0])]
    capsys.readouterr()
    assert main(["classify", str(run), *photos]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    results = [json.loads(line) for line in lines]
    assert [r["photo"] for r in results] == photos
    probs = Predictor(run, device="cpu").predict_proba(photos)  # the run's own 18-class probabilities
    for r, p in zip(results, probs):
        assert list(r) == ["photo", "class", "mask", "gender", "age", "confidence", "probabilities"]
        assert r["class"] == int(p.argmax()) and r["confidence"] == pytest.approx(float(p.max()), abs=1e-4)
        mask, gender, age = labels.decode(r["class"])
        assert (r["mask"], r["gender"], r["age"]) == (labels.MASK_NAMES[mask], labels.GENDER_NAMES[gender],
                                                      labels.AgeCutoffs().names()[age])
        assert list(r["probabilities"]) == ["mask", "gender", "age"]
        for task in labels.TASKS:
            task_p = r["probabilities"][task.name]
            assert list(task_p) == list(task.names())
            assert sum(task_p.values()) == pytest.approx(1, abs=1e-3)
            assert task_p[r[task.name]] >= r["confidence"] - 1e-3  # each answer's marginal holds the class's own share


@pytest.mark.slow  # calls train(): the model is built and the first epoch starts before the photo is met
def test_corrupt_photo_met_by_a_loader_worker_is_one_message(dataset, tmp_path, capsys):
    from conftest import TINY
    victims = sorted((dataset / "train" / "images").rglob("mask4.*"))
    for victim in victims:  # every person's, so the sampler cannot miss them all
        victim.write_bytes(b"\xff\xd8 not really a jpeg")
    args = ["train", str(dataset), "--out", str(tmp_path / "run"), "--config", "demo"]
    for item in TINY + ["data.cache=false", "data.workers=1", "train.epochs=1", "data.folds=2"]:
        args += ["--set", item]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Original" not in err
    last = err.strip().splitlines()[-1]  # lines before it are the progress bar
    assert any(last == f"maskcls train: error: {v.resolve()}: photo does not decode (not a JPEG, PNG or other image file); "
                      "run `maskcls validate` on the data"
               for v in victims)


def test_quiet_works_before_and_after_the_command(capsys):
    from maskcls import progress

    for argv, quiet in ((["config"], False), (["-q", "config"], True), (["config", "-q"], True),
                        (["config", "--quiet"], True)):
        assert main(argv) == 0
        assert progress.is_quiet() is quiet, argv
    progress.set_quiet(False)
    capsys.readouterr()


def test_building_the_parser_imports_no_heavy_library():
    """`maskcls --help` and `--version` answer at once: building the parser leaves torch, the image
    libraries and pandas unimported (each command imports them when it runs)."""
    import subprocess
    import sys

    heavy = ("torch", "albumentations", "cv2", "timm", "matplotlib", "pandas")
    code = ("import sys, maskcls.cli as c; c.build_parser(); "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag, capsys):
    import maskcls

    with pytest.raises(SystemExit) as exit_:
        main([flag])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"maskcls {maskcls.__version__}"


def test_every_command_has_its_parser_beside_its_handler():
    from importlib import import_module

    from maskcls import cli

    commands = cli.build_parser()._subparsers._group_actions[0].choices
    assert set(commands) == {m.replace("_", "-") for m in cli.COMMANDS}
    for name, parser in commands.items():
        module = import_module(f"maskcls.cli.{name.replace('-', '_')}")
        assert parser.get_default("func") is module.run and callable(module.add_parser)


def test_choices_come_from_the_library():
    from maskcls import cli
    from maskcls.config import choices_of
    from maskcls.serve.backends import BACKENDS, TTA_CHOICES
    from maskcls.serve.backends import SPLITS

    commands = cli.build_parser()._subparsers._group_actions[0].choices

    def choices(command: str, option: str):
        return tuple(next(a for a in commands[command]._actions if option in a.option_strings).choices)

    for command in ("evaluate", "predict", "classify"):
        assert choices(command, "--tta") == tuple(TTA_CHOICES)
        assert choices(command, "--backend") == tuple(BACKENDS)
        assert choices(command, "--device") == choices_of("train.device")
    assert choices("evaluate", "--split") == tuple(SPLITS)
    assert choices("bench", "--device") == choices_of("train.device")


def test_bad_option_values_are_one_message(tmp_path, capsys):
    for argv, message in ((["train", str(tmp_path), "--out", str(tmp_path / "r"), "--fold", "two"],
                           "argument --fold: expected a fold number, 'all' or 'none', got 'two'"),
                          (["evaluate", "r", str(tmp_path), "--split", "test"], "argument --split: invalid choice"),
                          (["predict", "r", str(tmp_path), "--out", "s.csv", "--tta", "vflip"],
                           "argument --tta: invalid choice")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_help_texts_agree_with_the_configs_and_the_readme(capsys):
    """train --help said corrections default to 'known' (the demo and plain configs have none); the
    train.trackers help said MLflow writes ./mlruns where the README (and MLflow 3) say ./mlflow.db."""
    from pathlib import Path

    import pytest

    from maskcls.cli import main as cli_main
    from maskcls.config import load_config

    with pytest.raises(SystemExit):
        cli_main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in ("default", "demo", "plain"):
        value = load_config(name).data.corrections
        assert f"'{value}' in" in text and (name in text.split("'" + value + "' in", 1)[1][:40]), (name, value)
    assert cli_main(["config"]) == 0
    shown = capsys.readouterr().out
    trackers = next(line for line in shown.splitlines() if "train.trackers" in line)
    assert "./mlflow.db" in trackers and "./mlruns)" not in trackers
    readme = (Path(__file__).parents[1] / "docs" / "interpretation.md").read_text()
    assert "`./mlflow.db`" in readme
