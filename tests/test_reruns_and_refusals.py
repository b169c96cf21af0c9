"""Interrupted runs rerun, full disks and changed data are named, and outputs never land on inputs: each case
reproduced first, then the fix asserted (tests named for what they cover; once issue 18's numbered cases)."""

import errno
import shutil
from pathlib import Path

import pytest
import torch

from maskcls.cli import main
from maskcls.errors import UserError
from maskcls.training.runs import check_run_folder

TRAIN = ["--config", "demo", "--set", "model.name=test_resnet", "--set", "data.size=48x64",
         "--set", "train.epochs=1", "--set", "data.folds=2", "--set", "train.batch_size=16",
         "--set", "train.tensorboard=false", "--corrections", "none"]


def err_of(capsys) -> str:
    return capsys.readouterr().err.strip()


def stuck(folder: Path) -> Path:
    """What kill -9 right after config.yaml appeared used to leave: config.yaml and nothing else."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("model:\n  name: test_resnet\n")
    (folder / ".last.pt.abc.tmp").write_bytes(b"half")
    return folder


# 3-6. Stuck folders ---------------------------------------------------------------------------------

def test_a_folder_without_any_checkpoint_restarts_with_or_without_resume(tmp_path):
    for resume in (False, True):
        run = stuck(tmp_path / f"run{resume}")
        assert check_run_folder(run, resume) is False
        assert not any(run.iterdir())
    # A finished run, or a model shared as config.yaml + best.pt, is never emptied.
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "config.yaml").write_text("x")
    (shared / "best.pt").write_bytes(b"x")
    with pytest.raises(UserError, match="already holds files"):
        check_run_folder(shared, False)
    assert (shared / "best.pt").exists()
    # Files that are not a run's are not ours to delete.
    other = stuck(tmp_path / "other")
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already holds files"):
        check_run_folder(other, False)
    assert (other / "notes.txt").exists() and (other / "config.yaml").exists()


@pytest.mark.slow
def test_train_and_fold_all_rerun_after_a_kill_before_the_first_checkpoint(synth_root, tmp_path, capsys):
    run = stuck(tmp_path / "run")
    assert main(["--quiet", "train", str(synth_root), "--out", str(run), *TRAIN]) == 0, err_of(capsys)
    assert (run / "best.pt").is_file()
    cv = tmp_path / "cv"
    stuck(cv / "fold-0")
    assert main(["--quiet", "train", str(synth_root), "--out", str(cv), *TRAIN, "--fold", "all"]) == 0, err_of(capsys)
    assert (cv / "oof_probs.csv").is_file()


@pytest.mark.slow
def test_audit_reruns_after_a_kill_before_the_first_checkpoint(synth_root, tmp_path, capsys):
    out = tmp_path / "audit"
    stuck(out / "cv" / "fold-0")
    args = ["--quiet", "audit", str(synth_root), "--out", str(out), "--folds", "2", "--config", "demo",
            "--set", "model.name=test_resnet", "--set", "data.size=48x64", "--set", "train.epochs=1",
            "--set", "train.tensorboard=false"]
    assert main(args) == 0, err_of(capsys)
    assert (out / "label_issues.csv").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["oserror", "torch"])
def test_a_full_disk_is_one_line_naming_the_target_and_the_rerun_works(synth_root, tmp_path, capsys,
                                                                        monkeypatch, failure):
    real_save = torch.save

    def full(obj, f, *a, **k):
        if failure == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full)
    run = tmp_path / "run"
    assert main(["--quiet", "train", str(synth_root), "--out", str(run), *TRAIN]) == 2
    err = err_of(capsys)
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{run / 'last.pt'}:" in err and ".tmp" not in err
    monkeypatch.setattr(torch, "save", real_save)
    assert main(["--quiet", "train", str(synth_root), "--out", str(run), *TRAIN]) == 0, err_of(capsys)
    assert (run / "best.pt").is_file()


def test_any_atomic_write_onto_a_full_disk_names_the_target(tmp_path):
    from maskcls.fileio import atomic_path

    with pytest.raises(UserError, match=f"^{tmp_path / 'out.csv'}: cannot write it: No space left"):
        with atomic_path(tmp_path / "out.csv"):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".out.csv.xyz.tmp"))
    assert not list(tmp_path.iterdir())


# 1-2. One identity per run for its data ------------------------------------------------------------

def swap_genders(root: Path) -> None:
    csv = root / "train" / "train.csv"
    text = csv.read_text().replace(",male,", ",tmp,").replace(",female,", ",male,").replace(",tmp,", ",female,")
    csv.write_text(text)


def repaint_one_photo(root: Path) -> None:
    photo = sorted((root / "train" / "images").rglob("normal.*"))[0]
    from PIL import Image

    with Image.open(photo) as img:
        img = img.convert("RGB").rotate(180)
    img.save(photo)


def tiny(*extra):
    from maskcls.config import load_config

    return load_config("demo", ["model.name=test_resnet", "data.size=48x64", "train.batch_size=16", "data.folds=2",
                                "train.tensorboard=false", "data.corrections=none", *extra])


@pytest.mark.slow
def test_resume_refuses_data_whose_labels_or_photos_changed_and_accepts_a_copy(synth_root, tmp_path):
    from maskcls.training.fit import train

    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    run = tmp_path / "run"
    quiet = dict(progress=False, log=lambda s: None)
    train(tiny("train.epochs=2"), data, run, stop_after_epoch=1, **quiet)
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    swap_genders(data)
    with pytest.raises(UserError, match=r"its labels differ from those .*run was trained on") as info:
        train(tiny("train.epochs=2"), data, run, resume=True, **quiet)
    assert len(str(info.value).splitlines()) == 1
    repaint_one_photo(copy)
    with pytest.raises(UserError, match="its photos differ"):
        train(tiny("train.epochs=2"), copy, run, resume=True, **quiet)
    swap_genders(data)  # back as it was: the data it learned from, so the run resumes and finishes
    assert train(tiny("train.epochs=2"), data, run, resume=True, **quiet)["epochs"] == 2


@pytest.mark.slow
def test_audit_run_evaluate_val_and_fold_all_refuse_edited_labels(synth_root, tmp_path, capsys):
    from maskcls.audit.run import audit
    from maskcls.serve.predict import evaluate_run
    from maskcls.training.folds import train_folds

    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    cv = tmp_path / "cv"
    train_folds(tiny("train.epochs=1"), data, cv, progress=False, log=lambda s: None)
    evaluate_run(cv / "fold-0", data, split="val", progress=False)  # the data it learned from: fine
    # 8. truth rows about people not in the data are ignored and counted, not planted-and-missed
    truth = tmp_path / "truth.csv"
    planted = (data / "truth" / "injected_noise.csv").read_text()
    truth.write_text(planted + "nobody_male_Asian_30,gender,*,male,female\n")
    summary = audit(data, tmp_path / "a0", run=cv, truth=truth, progress=False, log=lambda s: None)
    assert summary["truth_rows_not_in_data"] == 1
    assert summary["truth"]["all"]["planted"] == len(planted.strip().splitlines()) - 1
    csv = data / "train" / "train.csv"
    lines = csv.read_text().splitlines()
    lines[1] = lines[1].replace(",27,", ",70,")  # one age edited, as in the issue
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="its labels differ"):
        audit(data, tmp_path / "audit", run=cv, progress=False, log=lambda s: None)
    assert not (tmp_path / "audit").exists()
    with pytest.raises(UserError, match="its labels differ"):
        evaluate_run(cv / "fold-0", data, split="val", progress=False)
    with pytest.raises(UserError, match="its labels differ"):  # finished folds are not reused on other labels
        train_folds(tiny("train.epochs=1"), data, cv, progress=False, log=lambda s: None)
    assert main(["--quiet", "audit", str(data), "--out", str(tmp_path / "a2"), "--run", str(cv)]) == 2
    err = err_of(capsys)
    assert len(err.splitlines()) == 1 and "labels differ" in err


# 13. Nothing is created before the inputs are known to be good -------------------------------------

def test_a_refused_audit_leaves_no_out_folder(synth_root, tmp_path, capsys):
    out = tmp_path / "deep" / "audit"
    assert main(["--quiet", "audit", str(synth_root), "--out", str(out), "--folds", "100000",
                 "--set", "model.name=test_resnet"]) == 2
    assert "Traceback" not in err_of(capsys)
    assert not (tmp_path / "deep").exists()


# 9. Outputs never go into the data ------------------------------------------------------------------

def test_every_writing_command_refuses_an_output_inside_the_data(synth_root, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    inside = data / "train" / "images" / "report"
    commands = [["eda", str(data), "--out", str(inside)],
                ["train", str(data), "--out", str(inside), *TRAIN],
                ["train", str(data), "--out", str(inside), *TRAIN, "--fold", "all"],
                ["audit", str(data), "--out", str(inside)],
                ["ablate", str(data), "--out", str(inside), "--variants", "hflip"],
                ["augment-preview", str(data), "--preset", "hflip", "--out", str(data / "grid.png")]]
    for argv in commands:
        assert main(["--quiet", *argv]) == 2, argv
        err = err_of(capsys)
        assert "inside the data" in err and len(err.splitlines()) == 1, (argv, err)
        assert not inside.exists() and not (data / "grid.png").exists()
    from maskcls.data.validate import validate

    assert not [p for p in validate(data, decode=False).problems if p.fatal]
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,person_id,mask\n")
    from maskcls.data.table import refuse_output_inside

    with pytest.raises(UserError, match="inside the data"):
        refuse_output_inside(manifest, manifest)
    refuse_output_inside(manifest, tmp_path / "report")  # beside a manifest is fine


# 10. Config objects refuse unknown attributes ---------------------------------------------------------

def test_a_misspelt_setting_in_the_python_api_is_refused():
    cfg = tiny()
    with pytest.raises(AttributeError, match="did you mean epochs"):
        cfg.train.epoch = 1
    with pytest.raises(AttributeError, match="no setting 'trian'"):
        cfg.trian = None
    cfg.train.epochs = 1  # real settings still set
    assert cfg.train.epochs == 1


# 11. demo-data --workers -5 -------------------------------------------------------------------------

def test_negative_workers_are_refused(tmp_path, capsys):
    from maskcls.data.synth import make_dataset

    with pytest.raises(SystemExit) as info:
        main(["demo-data", str(tmp_path / "d"), "--people", "2", "--workers", "-5"])
    assert info.value.code == 2 and "at least 0" in capsys.readouterr().err
    with pytest.raises(UserError, match="--workers must be at least 0"):
        make_dataset(tmp_path / "d", people=2, workers=-5)
    assert not (tmp_path / "d").exists()


# 14. Links that lead out of the data -----------------------------------------------------------------

def test_a_symlink_out_of_the_data_is_refused_unless_allowed(tmp_path):
    from conftest import write_competition, write_photo
    from maskcls.data.table import load_table, scan

    root = write_competition(tmp_path / "d", [("000001", "male", 25, "000001_male_Asian_25"),
                                              ("000002", "female", 41, "000002_female_Asian_41")])
    elsewhere = write_photo(tmp_path / "elsewhere" / "real.jpg")
    photo = root / "train" / "images" / "000001_male_Asian_25" / "mask1.jpg"
    photo.unlink()
    photo.symlink_to(elsewhere)
    with pytest.raises(UserError, match=r"mask1.jpg: links to .*real.jpg, outside the dataset folder"):
        load_table(root)
    assert len(scan(root, allow_outside=True).table) == 14
    # A link that stays inside the data is fine.
    photo.unlink()
    photo.symlink_to(root / "train" / "images" / "000002_female_Asian_41" / "mask1.jpg")
    assert len(load_table(root)[0]) == 14
    # A manifest's link to /etc/hostname (a path with no .. in it) is refused the same way.
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.jpg").symlink_to(elsewhere)
    (tmp_path / "m" / "m.csv").write_text("path,person_id,mask\na.jpg,p1,wear\n")
    problems = scan(tmp_path / "m" / "m.csv").problems
    assert len(problems) == 1 and "outside the manifest's folder" in problems[0].message
    assert "data.allow_outside=true" in problems[0].message and "pass --allow-outside" not in problems[0].message


# Also: validate agrees with train on a manifest without labels ------------------------------------

def test_also_validate_reports_a_manifest_with_every_label_empty(tmp_path):
    from conftest import write_photo
    from maskcls.data.validate import validate

    write_photo(tmp_path / "a.jpg")
    (tmp_path / "m.csv").write_text("path,person_id,mask,gender,age\na.jpg,p1,,,\n")
    problems = validate(tmp_path / "m.csv", decode=False).problems
    assert any("no photo has a mask, gender or age label" in p.message for p in problems)


# 12, 15, 16: commands that use a trained run -------------------------------------------------------

@pytest.fixture(scope="module")
def run(synth_root, tmp_path_factory):
    from maskcls.training.fit import train

    out = tmp_path_factory.mktemp("rel2") / "run"
    train(tiny("train.epochs=1"), synth_root, out, progress=False, log=lambda s: None)
    return out


@pytest.mark.slow
def test_classify_names_every_bad_file_in_one_pass(run, synth_root, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(next((synth_root / "eval" / "images").iterdir()), folder / "good.jpg")
    for name in ("a.jpg", "b.png", "c.jpeg"):
        (folder / name).write_bytes(b"not an image")
    assert main(["classify", str(run), str(folder)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "3 of the 4 photos cannot be classified" in err
    assert all(str(folder / n) in err for n in ("a.jpg", "b.png", "c.jpeg")) and "good.jpg" not in err


@pytest.mark.slow
def test_a_checkpoint_never_chooses_where_predict_writes(run, synth_root, tmp_path, monkeypatch, capsys):
    ckpt = torch.load(run / "best.pt", weights_only=True)
    ckpt["config"]["data"]["cache"] = "disk"
    ckpt["config"]["data"]["cache_dir"] = str(tmp_path / "planted")
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    torch.save(ckpt, crafted / "best.pt")
    monkeypatch.setenv("MASKCLS_CACHE", str(tmp_path / "mine"))
    assert main(["predict", str(crafted), str(synth_root / "eval"), "--out", str(tmp_path / "s.csv")]) == 0, \
        capsys.readouterr().err
    assert not (tmp_path / "planted").exists()
    assert (tmp_path / "s.csv").is_file()


@pytest.mark.slow
def test_an_output_beside_an_onnx_file_is_not_an_input(run, synth_root, tmp_path, capsys, monkeypatch):
    models = tmp_path / "work"
    models.mkdir()
    assert main(["export", str(run), "--out", str(models / "r2.onnx")]) == 0
    monkeypatch.chdir(models)
    assert main(["predict", "r2.onnx", str(synth_root / "eval"), "--out", "outs/x.csv", "--backend", "onnx"]) == 0, \
        capsys.readouterr().err
    assert (models / "outs" / "x.csv").is_file()
    # A run folder stays protected under either backend.
    assert main(["export", str(run)]) == 0
    assert main(["predict", str(run), str(synth_root / "eval"), "--out", str(run / "x.csv"),
                 "--backend", "onnx"]) == 2
    assert "one of the inputs" in capsys.readouterr().err


# 8. audit --truth with a field that does not exist -----------------------------------------------------

def test_a_truth_row_with_an_unknown_field_is_refused_before_any_work(synth_root, tmp_path, capsys):
    truth = tmp_path / "truth.csv"
    truth.write_text("person,field,image,recorded,true\ns000001_male_Asian_27,color,*,red,blue\n")
    out = tmp_path / "audit"
    assert main(["--quiet", "audit", str(synth_root), "--out", str(out), "--truth", str(truth)]) == 2
    err = err_of(capsys)
    assert f"{truth}:2: unknown field 'color'" in err and len(err.splitlines()) == 1
    assert not out.exists()


# 7. A photo cache larger than the memory -------------------------------------------------------------

def test_a_ram_cache_that_cannot_fit_is_one_line_with_what_to_do(synth_root, tmp_path, monkeypatch):
    from maskcls.data import images
    from maskcls.data.table import load_table
    from maskcls.data.transforms import eval_transform

    paths = load_table(synth_root)[0]["path"].tolist()[:4]
    pre = eval_transform((4096, 4096), "none").preprocess
    free = images.available_memory()
    assert free is None or free > 0
    monkeypatch.setattr(images, "available_memory", lambda: 100 * 2**20)
    with pytest.raises(UserError, match=r"needs 0.2 GiB for 4 photos at 4096x4096, more than the 0.1 GiB .*"
                                        r"data.cache=disk"):
        images.PhotoStore(paths).arrays(pre, ("k",), progress=False)
    monkeypatch.setattr(images, "available_memory", lambda: None)

    def no_memory(*a, **k):
        raise MemoryError("Unable to allocate 192. MiB")

    monkeypatch.setattr(images.np, "empty", no_memory)
    with pytest.raises(UserError, match="data.cache=none"):
        images.PhotoStore(paths).arrays(pre, ("k",), progress=False)
