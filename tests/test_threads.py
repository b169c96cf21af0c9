"""train.threads: beside other busy processes, auto trains on the cores that are left and says so on the
first line; a number or OMP_NUM_THREADS decides instead."""

import subprocess
import sys
import time

import pytest
import torch

from maskcls.cli import main
from maskcls.training import threads as threads_mod

from conftest import START_THREADS, TINY


@pytest.fixture
def spinner():
    """One process keeping one core busy."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def fresh(monkeypatch):
    """As a new process: torch's threads as the test process started with them (a module's training on a
    busy machine may have lowered them since), no choice cached from an earlier test, no OMP_NUM_THREADS;
    torch's threads restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(START_THREADS)
    monkeypatch.setattr(threads_mod, "_busy", [])
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield START_THREADS
    torch.set_num_threads(before)


def test_busy_cores_sees_another_process(spinner):
    assert threads_mod.busy_cores(0.5) >= 0.6


def test_a_number_or_omp_num_threads_decides(fresh, monkeypatch):
    assert threads_mod.choose(3) == threads_mod.Threads(3, threads_mod.cores(), None, "train.threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    chosen = threads_mod.choose(0)
    assert chosen.n == 1 and chosen.source == "OMP_NUM_THREADS" and not chosen.reduced


@pytest.mark.skipif(threads_mod.cores() < 2 or START_THREADS < 2, reason="needs 2 cores to leave one")
def test_train_beside_a_busy_process_takes_the_cores_left_and_says_so_first(synth_root, tmp_path, capsys, fresh,
                                                                             spinner):
    default = min(threads_mod.cores(), fresh)
    sets = [a for kv in TINY + ["train.epochs=1", "train.trackers=none"] for a in ("--set", kv)]
    assert main(["train", str(synth_root), "--out", str(tmp_path / "auto"), "--config", "demo", "--quiet", *sets]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"threads: {default - 1} of {threads_mod.cores()} cores, since other processes keep")
    assert "train.threads=N" in first and torch.get_num_threads() == default - 1
    # train.threads=N is obeyed, and nothing is said: the user chose.
    assert main(["train", str(synth_root), "--out", str(tmp_path / "fixed"), "--config", "demo", "--quiet", *sets,
                 "--set", f"train.threads={default}"]) == 0
    out = capsys.readouterr().out
    assert "threads:" not in out and torch.get_num_threads() == default


def test_auto_never_raises_a_count_the_caller_set(fresh):
    torch.set_num_threads(1)
    chosen = threads_mod.apply(0)
    assert chosen.n == 1 and torch.get_num_threads() == 1
