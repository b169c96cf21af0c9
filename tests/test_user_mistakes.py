"""User mistakes met on a fresh clone: each reproduced, each now one clear message (exit 2)."""

import numpy as np
import pandas as pd
import pytest

from maskcls.cli import main
from maskcls.config import load_config
from maskcls.errors import UserError
from conftest import write_photo

PEOPLE = [("000001", "male", 25, "000001_male_Asian_25"), ("000002", "female", 61, "000002_female_Asian_61")]


@pytest.mark.parametrize("argv", [
    ["demo-data", "x", "--seed", "-1"],
    ["predict", "r", "e", "--out", "s.csv", "--workers", "-1"],
    ["classify", "r", "p.jpg", "--workers", "-3"],
])
def test_negative_seeds_and_workers_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and "must be at least 0" in capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["train", "d", "--out", "r", "--jobs", "0"], "argument --jobs: must be at least 1, got 0"),
    (["ablate", "d", "--out", "o", "--variants", "hflip", "--folds", "1"], "argument --folds: must be at least 2"),
])
def test_a_bad_option_value_is_one_line_without_the_usage_block(argv, says, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and says in err and f"`maskcls {argv[0]} --help` for more" in err
    assert "usage:" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):  # a missing argument still shows the usage: the shape is what is wrong
        main(argv[:2])
    assert "usage: maskcls" in capsys.readouterr().err


@pytest.mark.parametrize("setting, says", [("train.lr=nan", "not a finite number"), ("train.lr=inf", "not a finite"),
                                           ("data.std=[0,0,0]", "(0, 1]"), ("data.mean=[2,2,2]", "[0, 1]")])
def test_non_finite_and_out_of_range_normalisation_is_refused(setting, says):
    with pytest.raises(UserError, match=says.replace("(", r"\(").replace("[", r"\[").replace("]", r"\]")):
        load_config("demo", [setting])


def test_too_few_people_per_class_for_the_folds_is_one_message(tmp_path):
    from maskcls.data import splits
    from maskcls.data.table import load_table

    for i in range(4):  # one photo per person, each of another class: no class has 2 people
        write_photo(tmp_path / f"{i}.jpg")
    m = tmp_path / "m.csv"
    m.write_text("path,person_id,mask,gender,age\n0.jpg,a,wear,male,20\n1.jpg,b,normal,female,40\n"
                 "2.jpg,c,incorrect,male,61\n3.jpg,d,wear,female,35\n")
    table, _ = load_table(m)
    with pytest.raises(UserError, match="person-level folds"):
        splits.assign_folds(table, k=2)


def test_empty_images_and_float_ages_in_the_api(tmp_path):
    from maskcls.data.table import load_table
    from maskcls.serve.inputs import normalise_items

    with pytest.raises(UserError, match="expected an image of shape"):
        normalise_items([np.zeros((0, 0, 3), np.uint8)])
    for i in range(3):
        write_photo(tmp_path / f"{i}.jpg")
    frame = pd.DataFrame({"path": [str(tmp_path / f"{i}.jpg") for i in range(3)], "person_id": ["a", "b", "c"],
                          "age": [28, None, 61], "gender": ["male", "female", None]})
    assert frame["age"].dtype == float  # how pandas stores an int column with a gap
    table, _ = load_table(frame)
    assert table["age"].tolist()[0] == 28 and pd.isna(table["age"].tolist()[1])


def test_validate_says_an_empty_manifest_has_no_photos(tmp_path, capsys):
    m = tmp_path / "m.csv"
    m.write_text("path,person_id,mask\n")
    assert main(["validate", str(m)]) == 2
    assert "no photos found" in capsys.readouterr().out


def test_augment_preview_refuses_to_overwrite_without_force(synth_root, tmp_path, capsys):
    out = tmp_path / "g.png"
    out.write_bytes(b"mine")
    assert main(["augment-preview", str(synth_root), "--preset", "hflip", "--out", str(out), "--people", "1"]) == 2
    assert out.read_bytes() == b"mine" and "--force" in capsys.readouterr().err
    assert main(["augment-preview", str(synth_root), "--preset", "hflip", "--out", str(out), "--people", "1",
                 "--draws", "500"]) == 2


def test_string_settings_are_taken_as_written():
    with pytest.raises(UserError, match="size 0x30 out of range"):
        load_config("demo", ["data.size=0x30"])  # YAML alone would have read the hex number 48
    assert load_config("demo", ["model.name=007", "data.cache=true"]).model.name == "007"


@pytest.mark.parametrize("yaml_text, says", [
    ("data:\n  size: 0x30\n", "read the value as the number 48"),  # YAML's hex, not 0 x 30
    ("data:\n  size: 96\n", "in quotes"),
    ("train: 5\n", "train: is a section"),
])
def test_yaml_slips_in_a_config_file_are_named(tmp_path, yaml_text, says):
    path = tmp_path / "my.yaml"
    path.write_text(yaml_text)
    with pytest.raises(UserError, match=says):
        load_config(path)


def test_an_onnx_file_without_backend_onnx_says_so(tmp_path):
    from maskcls.serve.predictor import Predictor

    model = tmp_path / "model.onnx"
    model.write_bytes(b"not really")
    with pytest.raises(UserError, match="--backend onnx"):
        Predictor(model)


def test_a_corrections_folder_is_not_called_missing(tmp_path):
    from maskcls.data.corrections import resolve

    with pytest.raises(UserError, match="a folder, not a CSV"):
        resolve(tmp_path)


def test_config_file_slips_get_a_message_that_says_what_to_do(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("train:\n  epochs: 3\n  epochs: 5\n")
    with pytest.raises(UserError, match="'epochs' is given twice"):
        load_config(dup)
    no = tmp_path / "no.yaml"
    no.write_text("data:\n  corrections: no\n")
    with pytest.raises(UserError, match="put the word in quotes"):
        load_config(no)
    no.write_text("data:\n  corrections: 'no'\n")
    assert load_config(no).data.corrections == "no"  # quoted, it is the text the hint asked for
    with pytest.raises(UserError, match="--config is empty"):
        load_config("")
    with pytest.raises(UserError, match="a folder, not a YAML file"):
        load_config(tmp_path)
    with pytest.raises(UserError, match=r"built-in: default, demo, gpu-resnet50, plain, real-cpu"):
        load_config("nosuch")
    with pytest.raises(UserError, match="data.age_old: 1000 is out of range"):
        load_config(None, ["data.age_old=1000"])
    with pytest.raises(UserError, match="empty part"):
        load_config(None, ["data.augment=hflip++vflip"])
    with pytest.raises(UserError, match="twice"):
        load_config(None, ["data.augment=hflip+hflip"])


def test_the_competition_train_csv_given_as_data_points_to_its_folder(synth_root, capsys):
    assert main(["summary", str(synth_root / "train" / "train.csv")]) == 2
    err = capsys.readouterr().err
    assert "competition layout's train.csv" in err and f"(here {synth_root.resolve()})" in err


@pytest.mark.parametrize("argv, extra", [
    (["summary", "DATA", "--faces", "off"], "--faces off"),  # an option of other commands (validate, eda)
    (["train", "DATA", "--out", "RUN", "--set", "train.epochs", "2"], "2"),  # key value without '='
])
def test_an_argument_the_command_does_not_take_is_said_by_that_command(argv, extra, capsys):
    """Two new users met `maskcls: error: unrecognized arguments` under maskcls's own usage, which names no
    command: the command's usage and its --help say what it takes."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    command = argv[0]
    assert exc.value.code == 2
    assert f"usage: maskcls {command}" in err
    assert f"maskcls {command}: error: unrecognized arguments: {extra} (`maskcls {command} --help` for more)" in err
