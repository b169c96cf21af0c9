"""Messy data, interrupted runs and untrusted files: each case reproduced first, then the fix asserted."""

import io
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskcls.cli import main
from maskcls.config import load_config
from maskcls.data import corrections
from maskcls.data import table as data
from maskcls.errors import UserError
from maskcls.training.runs import run_lock
from conftest import write_competition, write_photo

PEOPLE = [("000001", "male", 25, "000001_male_Asian_25"), ("000002", "female", 61, "000002_female_Asian_61"),
          ("000003", "female", 40, "000003_female_Asian_40"), ("000004", "male", 33, "000004_male_Asian_33")]
TRAIN_ARGS = ["--config", "demo", "--set", "model.name=test_resnet", "--set", "data.size=48x64",
              "--set", "train.epochs=1", "--set", "data.folds=2", "--set", "train.batch_size=8",
              "--set", "train.tensorboard=false", "--corrections", "none"]


def err_of(capsys) -> str:
    return capsys.readouterr().err.strip()


# 1. Two trainings on one folder --------------------------------------------------------------------

def test_a_second_training_on_the_same_folder_is_refused_and_a_stale_lock_taken_over(tmp_path):
    run = tmp_path / "run"
    with run_lock(run):
        with pytest.raises(UserError, match=f"being written by another maskcls process \\({os.getpid()}"):
            with run_lock(run):
                pass
    # A lock left by a process that died (kill -9) is taken over.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket
    (tmp_path / ".run.lock").write_text(f"{dead.pid} {socket.gethostname()}")
    with run_lock(run):
        assert (tmp_path / ".run.lock").read_text().startswith(str(os.getpid()))
    assert not (tmp_path / ".run.lock").exists()
    # One lock type for runs and review servers (fileio.PidLock): a lock of another machine is refused (a
    # shared disk: whether that process lives cannot be told), a torn one (empty, its writer killed while
    # writing) is taken over, but not while it may be being written this instant.
    lock = tmp_path / ".run.lock"
    lock.write_text("12345 some-other-host")
    with pytest.raises(UserError, match="12345 on some-other-host"):
        with run_lock(run):
            pass
    lock.write_text("")
    with pytest.raises(UserError, match="being written by another"):
        with run_lock(run):
            pass
    os.utime(lock, (0, 0))  # the same empty lock, long ago
    with run_lock(run):
        assert lock.read_text() == f"{os.getpid()} {socket.gethostname()}"


# 2. A stop during epoch 1 leaves nothing to clean up ---------------------------------------------

@pytest.mark.slow
def test_kill_9_during_epoch_1_leaves_a_folder_a_plain_rerun_accepts(synth_root, tmp_path):
    run = tmp_path / "run"
    # One photo per step and no cache: epoch 1 takes seconds, and the kill lands right after set-up.
    slow = ["--set", "train.batch_size=1", "--set", "data.cache=none", "--set", "data.folds=3"]
    proc = subprocess.Popen([sys.executable, "-m", "maskcls", "--quiet", "train", str(synth_root), "--out", str(run),
                             *TRAIN_ARGS, *slow], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:  # the last line before the first epoch starts
        if line.startswith("data:"):
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not run.exists() or not any(run.iterdir())
    assert main(["--quiet", "train", str(synth_root), "--out", str(run), *TRAIN_ARGS,
                 "--set", "data.folds=3"]) == 0  # no --resume needed
    assert (run / "best.pt").is_file()


# 3. --force replaces regular files only -----------------------------------------------------------

def test_force_never_replaces_a_fifo_a_device_or_a_folder(tmp_path, capsys):
    from maskcls.fileio import check_replaceable

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in (fifo, tmp_path, Path("/dev/null")):
        with pytest.raises(UserError, match="not a regular file"):
            check_replaceable(target, force=True)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and Path("/dev/null").is_char_device()
    plain = tmp_path / "sub.csv"
    plain.write_text("x")
    with pytest.raises(UserError, match="pass --force"):
        check_replaceable(plain, force=False)
    check_replaceable(plain, force=True)


# 4. User mistakes are one message and exit 2 -------------------------------------------------------

def test_swap_naming_one_photo_twice(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("person_id,field,image,from,to\n000001,mask,mask1+mask1,,swap\n")
    with pytest.raises(UserError, match="names the same photo twice"):
        corrections.read(f)


def test_symlink_loop_in_a_manifest_is_a_problem_not_a_crash(tmp_path):
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    m = tmp_path / "m.csv"
    m.write_text("path,person_id,mask\nloop.jpg,p1,wear\n")
    problems = data.scan(m).problems
    assert len(problems) == 1 and f"{m}:2" == problems[0].where


@pytest.mark.parametrize("setting, says", [
    ("data.workers=-1", ">= 0"), ("train.log_every=0", ">= 1"), ("model.drop_rate=2", "< 1"),
    ("train.label_smoothing=2", "< 1"), ("model.backbone_lr_mult=-0.5", ">= 0"), ("train.min_lr_ratio=-1", ">= 0"),
])
def test_settings_have_ranges(tmp_path, capsys, setting, says):
    root = write_competition(tmp_path / "d", PEOPLE)
    assert main(["train", str(root), "--out", str(tmp_path / "r"), "--config", "demo", "--set", setting]) == 2
    err = err_of(capsys)
    assert err.count("\n") == 0 and setting.split("=")[0] in err and says in err and "Traceback" not in err


def test_non_utf8_config_and_empty_section(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"model:\n  name: r\xe9snet\n")
    with pytest.raises(UserError, match="not a UTF-8 text file"):
        load_config(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("model:\ntrain:\n  epochs: 3\n")
    assert load_config(empty).train.epochs == 3


def test_unknown_key_suggests_the_nearest(capsys):
    with pytest.raises(UserError, match="did you mean train.epochs"):
        load_config("demo", ["train.epoch=3"])


def test_out_that_is_a_file_and_a_read_only_folder(tmp_path, capsys):
    root = write_competition(tmp_path / "d", PEOPLE)
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["train", str(root), "--out", str(afile), *TRAIN_ARGS]) == 2
    assert "is not a folder" in err_of(capsys)
    # /proc refuses new files even to root, as a read-only mount would.
    assert main(["train", str(root), "--out", "/proc/maskcls-run", *TRAIN_ARGS]) == 2
    err = err_of(capsys)
    assert err.startswith("maskcls train: error:") and "Traceback" not in err


def test_os_errors_from_the_disk_are_one_message(monkeypatch, tmp_path, capsys):
    import errno

    from maskcls.cli import summary

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(summary, "run", full)
    assert main(["summary", str(tmp_path)]) == 2
    assert err_of(capsys) == f"maskcls summary: error: cannot write or read {tmp_path / 'x'}: No space left on device"


def test_demo_data_into_a_read_only_place_is_one_message(tmp_path, capsys):
    assert main(["demo-data", "/proc/maskcls-test", "--people", "2", "--eval-people", "0", "--size", "48x64"]) == 2
    err = err_of(capsys)
    assert "Traceback" not in err and err.startswith("maskcls demo-data: error:")


# 5. A manifest with no labels at all -----------------------------------------------------------

def test_manifest_with_every_label_empty_is_refused(tmp_path, capsys):
    for i in range(4):
        write_photo(tmp_path / f"{i}.jpg")
    m = tmp_path / "m.csv"
    m.write_text("path,person_id,mask,gender,age\n" + "".join(f"{i}.jpg,p{i},,,\n" for i in range(4)))
    assert main(["train", str(m), "--out", str(tmp_path / "r"), *TRAIN_ARGS]) == 2
    assert "no photo has a mask, gender or age label" in err_of(capsys)
    assert not (tmp_path / "r").exists()


# 6. Swaps are guarded like other fixes ---------------------------------------------------------

def test_a_swap_is_never_undone_by_applying_it_twice(tmp_path):
    root = write_competition(tmp_path / "d", PEOPLE[:1])
    f = tmp_path / "c.csv"
    f.write_text("person_id,field,image,from,to\n"
                 "000001,mask,incorrect_mask+normal,,swap\n000001,mask,incorrect_mask+normal,,swap\n")
    table, report = data.load_table(root, corrections=f)
    masks = dict(zip(table["image"], table["mask"]))
    assert masks["incorrect_mask"] == 2 and masks["normal"] == 1
    assert len(report.changes) == 2 and len(report.skipped) == 1 and "already swapped" in report.skipped[0]
    # known-style rows applied to already fixed data change nothing either
    once, _ = data.load_table(root, corrections=f)
    fixed = tmp_path / "fixed.csv"
    fixed.write_text("person_id,field,image,from,to\n000001,mask,incorrect_mask+normal,normal,swap\n")
    t, rep = data.load_table(root, corrections=fixed)
    assert len(rep.changes) == 0 and len(rep.skipped) == 1


# 7. Truncated JPEGs: every command names the file --------------------------------------------------

def _truncate(path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


@pytest.mark.slow
def test_truncated_jpeg_policy_in_every_command(synth_root, tmp_path, capsys):
    import shutil

    root = tmp_path / "d"
    shutil.copytree(synth_root, root)
    victim = sorted((root / "train" / "images").iterdir())[0] / "mask1.jpg"
    _truncate(victim)
    assert main(["validate", str(root)]) == 2
    assert f"{victim.resolve()}: photo does not decode" in capsys.readouterr().out
    args = ["train", str(root), "--out", str(tmp_path / "r"), *TRAIN_ARGS, "--set", "data.cache=true"]
    assert main(args) == 2
    assert f"{victim.resolve()}: photo does not decode" in err_of(capsys)
    good = tmp_path / "good"
    assert main(["train", str(synth_root), "--out", str(good), *TRAIN_ARGS]) == 0
    capsys.readouterr()
    assert main(["classify", str(good), str(victim)]) == 2
    assert f"{victim}: photo does not decode" in err_of(capsys)
    eval_victim = sorted((root / "eval" / "images").iterdir())[0]
    _truncate(eval_victim)
    assert main(["predict", str(good), str(root / "eval"), "--out", str(tmp_path / "s.csv")]) == 2
    err = err_of(capsys)
    assert "photo does not decode" in err and eval_victim.name in err and not (tmp_path / "s.csv").exists()


# 9. Files follow the umask ------------------------------------------------------------------------

def test_written_files_and_folders_follow_the_umask(tmp_path):
    from maskcls.data.synth import make_dataset
    from maskcls.fileio import write_text

    write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~_umask()
    make_dataset(tmp_path / "syn", people=2, eval_people=0, noise=0, seed=0, size=(48, 64), workers=1)
    assert stat.S_IMODE((tmp_path / "syn").stat().st_mode) == 0o777 & ~_umask()


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


# 10. Smaller ones ------------------------------------------------------------------------------------

def test_csv_line_numbers_count_blank_lines(tmp_path):
    root = write_competition(tmp_path / "d", PEOPLE[:2])
    csv = root / "train" / "train.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0], "", lines[1], "", "000009,mail,Asian,30,nowhere"]) + "\n")
    where = [p.where for p in data.scan(root).problems if p.fatal]
    assert where == [f"{csv}:5"]


def test_info_csv_path_column_is_kept_and_advice_fits_eval_folders(tmp_path):
    ev = tmp_path / "eval"
    write_photo(ev / "images" / "a.jpg")
    (ev / "info.csv").write_text("ImageID,ans,path\na.jpg,0,keep-me\nmissing.jpg,0,x\n")
    frame, problems = data.load_eval(ev)
    assert frame["path"].tolist() == ["keep-me", "x"]
    with pytest.raises(UserError) as exc:
        data.raise_on_fatal(problems, ev, hint=False)
    assert "maskcls validate" not in str(exc.value)


def test_manifest_paths_stay_inside_unless_allowed(tmp_path):
    write_photo(tmp_path / "outside.jpg")
    (tmp_path / "m").mkdir()
    m = tmp_path / "m" / "m.csv"
    m.write_text(f"path,person_id,mask\n../outside.jpg,p1,wear\n{tmp_path / 'outside.jpg'},p2,wear\n")
    problems = data.scan(m).problems
    assert [p.where for p in problems] == [f"{m}:2", f"{m}:3"] and all("leaves the manifest" in p.message for p in problems)
    assert len(data.scan(m, allow_outside=True).table) == 1  # the same photo, listed once


def test_eval_image_ids_cannot_leave_the_images_folder(tmp_path):
    ev = tmp_path / "eval"
    write_photo(ev / "images" / "a.jpg")
    write_photo(tmp_path / "secret.jpg")
    (ev / "info.csv").write_text("ImageID,ans\n../../secret.jpg,0\n")
    _, problems = data.load_eval(ev)
    assert len(problems) == 2 and "is not a file name" in problems[0].message


def test_checkpoint_errors_never_advise_weights_only_false(tmp_path):
    import torch

    from maskcls.training.runs import load_checkpoint

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "best.pt"
    torch.save({"model": Evil()}, bad)  # a real torch archive that would run print() when unpickled
    with pytest.raises(UserError) as exc:
        load_checkpoint(bad)
    assert "weights_only" not in str(exc.value) and "never runs code" in str(exc.value)
    torch.save({"x": 1}, tmp_path / "ok.pt")
    assert load_checkpoint(tmp_path / "ok.pt") == {"x": 1}


def test_killed_demo_data_leaves_no_hidden_folder_behind(tmp_path):
    from maskcls.data.synth import make_dataset

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / f".syn.{dead.pid}.abc.tmp"
    leftover.mkdir()
    make_dataset(tmp_path / "syn", people=2, eval_people=0, noise=0, seed=0, size=(48, 64), workers=1)
    assert not leftover.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_decompression_bomb_refused(tmp_path, capsys):
    big = tmp_path / "big.png"
    Image.new("L", (7000, 7000)).save(big)  # 49 megapixels
    from maskcls.data.images import PhotoError, read_rgb

    with pytest.raises(PhotoError, match="7000x7000 pixels"):
        read_rgb(big)


def test_version_config_listing_and_quiet(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("maskcls ")
    assert main(["config", "--config", "demo", "--set", "train.epochs=3"]) == 0
    out = capsys.readouterr().out
    assert "train.epochs = 3" in out and "# training epochs" in out and out.count("\n") > 40


def test_piping_into_head_ends_quietly(tmp_path):
    root = write_competition(tmp_path / "d", PEOPLE)
    cmd = f"{sys.executable} -m maskcls summary {root} --json | head -c 10"
    done = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
