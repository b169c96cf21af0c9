"""Using a trained run: evaluate, predict (submission), classify, and the errors users hit."""

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from maskcls.cli import main
from maskcls.errors import UserError
from maskcls.serve.predict import classify_photos, evaluate_run, predict_submission
from maskcls.training.fit import train
from maskcls.training.runs import load_checkpoint, load_run
from conftest import TINY, tiny_config

pytestmark = pytest.mark.slow  # trains models; `pytest -m "not slow"` skips them


@pytest.fixture(scope="module")
def run(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "run"
    train(tiny_config("train.epochs=1", "train.tensorboard=false"), synth_root, out, progress=False, log=lambda s: None)
    return out


def test_predict_keeps_info_order_and_rows(run, synth_root, tmp_path, capsys):
    sub = tmp_path / "submission.csv"
    probs = tmp_path / "probs.csv"
    assert main(["predict", str(run), str(synth_root / "eval"), "--out", str(sub), "--probs", str(probs)]) == 0
    info = pd.read_csv(synth_root / "eval" / "info.csv")
    got = pd.read_csv(sub)
    assert list(got.columns) == ["ImageID", "ans"]
    assert got["ImageID"].tolist() == info["ImageID"].tolist()
    assert got["ans"].between(0, 17).all()
    p = pd.read_csv(probs)
    assert p["ImageID"].tolist() == info["ImageID"].tolist()
    assert np.allclose(p.iloc[:, 1:].sum(axis=1), 1, atol=1e-4)
    assert (p.iloc[:, 1:].to_numpy().argmax(1) == got["ans"]).all()
    # Refuses to overwrite, then overwrites with --force (hflip TTA this time).
    before = sub.read_bytes()
    assert main(["predict", str(run), str(synth_root), "--out", str(sub)]) == 2
    assert "pass --force" in capsys.readouterr().err and sub.read_bytes() == before
    assert main(["predict", str(run), str(synth_root), "--out", str(sub), "--force", "--tta", "hflip"]) == 0
    assert len(pd.read_csv(sub)) == len(info)


def test_predict_refuses_missing_images_and_writes_nothing(run, synth_root, tmp_path):
    ev = tmp_path / "eval"
    shutil.copytree(synth_root / "eval", ev)
    victim = pd.read_csv(ev / "info.csv")["ImageID"].iloc[3]
    (ev / "images" / victim).unlink()
    with pytest.raises(UserError, match=f"info.csv:5: image {victim} not found"):
        predict_submission(run, ev, tmp_path / "sub.csv", progress=False)
    assert not (tmp_path / "sub.csv").exists()
    assert not list(tmp_path.glob(".sub.csv*"))


def test_eval_photos_linking_outside_the_eval_folder_are_refused(run, synth_root, tmp_path, capsys):
    """`predict` followed eval/images/<id> linking to /etc/hostname (the error named it), and `validate`
    did not flag eval links: the training data's outside-link rule now holds for eval photos too."""
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    ev = data / "eval"
    info = pd.read_csv(ev / "info.csv")
    victim, inside = info["ImageID"].iloc[2], info["ImageID"].iloc[0]
    secret = tmp_path / "secret.jpg"
    shutil.copy(ev / "images" / victim, secret)  # even a real photo: it is not the eval folder's
    (ev / "images" / victim).unlink()
    (ev / "images" / victim).symlink_to(secret)
    sub = tmp_path / "sub.csv"
    assert main(["predict", str(run), str(data), "--out", str(sub)]) == 2
    err = capsys.readouterr().err
    assert f"image {victim} links outside the eval folder" in err and "--allow-outside" in err
    assert str(secret) not in err and not sub.exists()
    assert main(["validate", str(data)]) != 0
    out = capsys.readouterr()
    assert f"image {victim} links outside the eval folder" in out.out + out.err
    assert str(secret) not in out.out + out.err  # validate neither decodes nor names the target
    # A link to a missing file outside says the same: the messages do not tell what exists out there.
    (ev / "images" / victim).unlink()
    (ev / "images" / victim).symlink_to(tmp_path / "no-such-file.jpg")
    assert main(["validate", str(data)]) != 0
    out = capsys.readouterr()
    assert f"image {victim} links outside the eval folder" in out.out + out.err and "no-such-file" not in out.out
    (ev / "images" / victim).unlink()
    (ev / "images" / victim).symlink_to(secret)
    # A link inside the eval folder is a photo like any other; --allow-outside reads the outside one.
    (ev / "images" / inside).rename(ev / "images" / "moved.jpg")
    (ev / "images" / inside).symlink_to(ev / "images" / "moved.jpg")
    assert main(["predict", str(run), str(data), "--out", str(sub), "--allow-outside"]) == 0
    assert len(pd.read_csv(sub)) == len(info)


def test_grey_rgba_and_png_photos(run, synth_root, tmp_path, capsys):
    src = cv2.imread(str(next((synth_root / "train" / "images").rglob("normal.*"))))
    grey = tmp_path / "grey.png"
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(str(grey), cv2.cvtColor(src, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(rgba), cv2.cvtColor(src, cv2.COLOR_BGR2BGRA))
    assert main(["classify", str(run), str(grey), str(rgba)]) == 0
    text = capsys.readouterr().out
    lines = [json.loads(line) for line in text.splitlines()]
    assert [r["photo"] for r in lines] == [str(grey), str(rgba)]
    assert not re.search(r"\d\.\d{5,}", text), text  # 4 decimals, no float32 noise (0.4153999984264374)
    for r in lines:
        assert r["mask"] in ("wear", "incorrect", "normal") and r["gender"] in ("male", "female")
        assert r["age"] in ("<30", "30-59", ">=60") and 0 <= r["class"] < 18
        assert sum(r["probabilities"]["mask"].values()) == pytest.approx(1, abs=1e-3)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="broken.jpg: photo does not decode"):
        classify_photos(run, [grey, broken])


def test_evaluate_on_the_runs_validation_fold(run, synth_root):
    summary = json.loads((run / "summary.json").read_text())
    metrics = evaluate_run(run, synth_root, progress=False)
    assert metrics["split"] == "val" and metrics["photos"] == summary["val_photos"]
    assert metrics["macro_f1"] == pytest.approx(summary["macro_f1"], abs=1e-6)



def test_evaluate_refuses_photos_the_run_trained_on_under_any_path(run, synth_root, tmp_path, capsys):
    from conftest import write_photo

    # all of the training data: most photos were trained on
    with pytest.raises(UserError, match=r"photos .* trained on \(the same files, found by content\)"):
        evaluate_run(run, synth_root, split="all", progress=False)
    # a byte-for-byte copy elsewhere: the paths differ, the photos do not
    copy = tmp_path / "copy"
    shutil.copytree(synth_root, copy)
    assert main(["evaluate", str(run), str(copy)]) == 2
    assert "the figures would be inflated" in capsys.readouterr().err
    # one training photo mixed into otherwise new data
    val = {str(Path(p).resolve()) for p in pd.read_csv(run / "val_predictions.csv")["path"]}
    trained = next(p for p in sorted((synth_root / "train" / "images").rglob("*.jpg")) if str(p.resolve()) not in val)
    new = write_photo(tmp_path / "new.jpg", colour=77)
    manifest = tmp_path / "mixed.csv"
    shutil.copy(trained, tmp_path / "old.jpg")  # the same bytes under a new name
    pd.DataFrame({"path": ["old.jpg", new.name], "person_id": ["x", "y"],
                  "mask": ["wear", "wear"], "gender": ["male", "female"], "age": [25, 40]}).to_csv(manifest, index=False)
    with pytest.raises(UserError, match="1 of the 2 photos"):
        evaluate_run(run, manifest, split="all", progress=False)
    # the fingerprints are those of the training fold only: the validation fold scores as before
    assert evaluate_run(run, synth_root, split="val", progress=False)["split"] == "val"


def test_evaluate_all_needs_no_fold_split_of_tiny_data(run, tmp_path):
    from conftest import write_photo

    # Three photos of two people cannot be cut into folds; scoring all of them needs no folds.
    paths = [write_photo(tmp_path / f"{i}.jpg", colour=60 * i).name for i in range(3)]
    manifest = tmp_path / "few.csv"
    pd.DataFrame({"path": paths, "person_id": ["a", "a", "b"], "mask": ["wear", "normal", "wear"],
                  "gender": ["male", "male", "female"], "age": [25, 25, 61]}).to_csv(manifest, index=False)
    metrics = evaluate_run(run, manifest, split="all", progress=False)
    assert metrics["split"] == "all" and metrics["photos"] == 3 and metrics["people"] == 2
    with pytest.raises(UserError, match="not the data"):
        evaluate_run(run, manifest, split="val", progress=False)


def test_run_without_checkpoint_and_foreign_checkpoint(run, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"not a run folder \(no best.pt or last.pt\)"):
        load_run(tmp_path / "empty")
    with pytest.raises(UserError, match="no such run folder"):
        load_run(tmp_path / "missing")
    with pytest.raises(UserError, match=f"a file, not a run folder; give its run folder, {run}"):
        load_run(run / "best.pt")
    # only last.pt (an unfinished run): it loads, with one plain warning line on stderr
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(run / "last.pt", unfinished / "last.pt")
    load_run(unfinished)
    err = capsys.readouterr().err
    assert err.startswith("warning:") and "using last.pt" in err and "UserWarning" not in err
    # A best.pt whose weights belong to another head layout than its config says.
    other = tmp_path / "other"
    other.mkdir()
    ckpt = load_checkpoint(run / "best.pt")
    ckpt["config"]["model"]["heads"] = "single"
    torch.save(ckpt, other / "best.pt")
    with pytest.raises(UserError, match="does not fit test_resnet with single heads"):
        load_run(other)
    (other / "best.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a readable maskcls checkpoint") as info:
        load_run(other)
    assert "(corrupt" in str(info.value) or " " in str(info.value).split("(")[-1]


def test_predict_force_never_replaces_its_inputs(run, synth_root, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(synth_root / "eval", data)
    photo = next((data / "images").iterdir())
    own = [run / "best.pt", run / "config.yaml", run / "val_predictions.csv"]
    before = {p: p.read_bytes() for p in [data / "info.csv", photo, *own]}
    for target, message in ((data / "info.csv", "inside the data"), (photo, "inside the data"),
                            (run / "best.pt", "a .csv file"), (run / "val_predictions.csv", "is one of the inputs"),
                            (synth_root / "train" / "train.csv", "is one of the inputs")):
        assert main(["predict", str(run), str(data), "--out", str(target), "--force"]) == 2
        assert message in capsys.readouterr().err, target
        assert main(["predict", str(run), str(data), "--out", str(tmp_path / "s.csv"), "--probs", str(target),
                     "--force"]) == 2
        assert message in capsys.readouterr().err, target
    assert all(p.read_bytes() == b for p, b in before.items())
    assert main(["predict", str(run), str(data), "--out", str(data / "submission.csv")]) == 2  # into the data
    assert "inside the data" in capsys.readouterr().err
    assert main(["predict", str(run), str(data), "--out", str(tmp_path / "submission.csv")]) == 0
    # nothing to predict, and one run given twice, are mistakes too
    (data / "info.csv").write_text("ImageID,ans\n")
    assert main(["predict", str(run), str(data), "--out", str(tmp_path / "e.csv")]) == 2
    assert "lists no photos" in capsys.readouterr().err and not (tmp_path / "e.csv").exists()
    assert main(["evaluate", str(run), str(synth_root), "--add-run", str(run) + "/"]) == 2
    assert "is given twice" in capsys.readouterr().err


def test_a_read_only_output_folder_names_the_target_not_a_temporary_file(run, synth_root, read_only_dir, capsys):
    """On a read-only output folder the messages named `.s.csv.*.tmp` (predict), `.dd.*.tmp` (demo-data),
    `.run.lock` (train), `.int.*.tmp` (interpret) and `.eda.*.tmp/thumbs/...` (eda)."""
    ro = read_only_dir
    commands = {
        "predict": (["predict", str(run), str(synth_root), "--out", str(ro / "s.csv")], ro / "s.csv"),
        "demo-data": (["demo-data", str(ro / "dd"), "--people", "4", "--eval-people", "1"], ro / "dd"),
        "train": (["train", str(synth_root), "--out", str(ro / "run"), "--config", "demo",
                   *[a for kv in TINY for a in ("--set", kv)]], ro / "run"),
        "interpret": (["interpret", str(run), str(synth_root), "--out", str(ro / "int")], ro / "int"),
        "eda": (["eda", str(synth_root), "--out", str(ro / "eda")], ro / "eda"),
    }
    for name, (argv, target) in commands.items():
        assert main(argv) == 2, name
        said = capsys.readouterr().err
        assert "%|" not in said, (name, said)  # refused before any work (no progress bar drawn)
        err = [line for line in said.strip().splitlines() if line.startswith("maskcls ")]
        assert len(err) == 1 and err[0].startswith(f"maskcls {name}: error: {target}"), (name, err)
        assert "cannot write" in err[0] and ".tmp" not in err[0] and ".lock" not in err[0], (name, err)
    assert list(ro.iterdir()) == []


def test_predict_never_writes_into_the_data_or_over_a_datasets_labels(run, synth_root, tmp_path, capsys):
    """`predict RUN DATA --out DATA/train/train.csv --force` replaced the training labels (given DATA, not
    DATA/eval); DATA/eval/sub.csv was written into the data; another dataset's info.csv was replaced."""
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    labels_before = (data / "train" / "train.csv").read_bytes()
    for given in (data, data / "eval"):
        for target in (data / "train" / "train.csv", data / "eval" / "info.csv", data / "eval" / "sub.csv",
                       data / "sub.csv"):
            assert main(["predict", str(run), str(given), "--out", str(target), "--force"]) == 2, (given, target)
            err = capsys.readouterr().err
            assert "inside the data" in err or "one of the inputs" in err, err
    assert main(["predict", str(run), str(data), "--out", str(tmp_path / "s.csv"), "--probs",
                 str(data / "eval" / "p.csv")]) == 2
    assert "--probs" in capsys.readouterr().err
    other = tmp_path / "other"
    shutil.copytree(synth_root / "eval", other / "eval")
    (other / "train" / "images").mkdir(parents=True)
    before = (other / "eval" / "info.csv").read_bytes()
    assert main(["predict", str(run), str(data), "--out", str(other / "eval" / "info.csv"), "--force"]) == 2
    assert "labels file of a dataset" in capsys.readouterr().err
    assert (other / "eval" / "info.csv").read_bytes() == before
    assert (data / "train" / "train.csv").read_bytes() == labels_before
    assert not (data / "eval" / "sub.csv").exists() and not (data / "sub.csv").exists()
