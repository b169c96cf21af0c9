"""Many runs at once (experiments.launch): --jobs / --devices in local processes and --launcher ray give
the files a sequential call gives; failures are reported while the rest finish; a killed parent leaves
its finished runs reusable; bad options are one line, before anything starts."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from maskcls.cli import main
from maskcls.errors import UserError
from maskcls.experiments import ablate as ab
from maskcls.experiments.launch import LocalPool, open_launcher, parse_devices
from maskcls.fileio import pid_alive
from maskcls.training.folds import train_folds
from maskcls.training.runspec import RunSpec, execute
from conftest import TINY, tiny_config

QUIET = {"progress": False, "log": lambda s: None}
ONE_EPOCH = ("train.epochs=1", "train.tensorboard=false", "data.folds=2")
TIMING = {"seconds", "seconds_per_epoch"}  # wall-clock figures: the only ones allowed to differ


def _ray():
    """Ray is in the test extra; a user's machine without it skips, CI must run these."""
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ray is not installed (pip install -e '.[test]')")
        pytest.skip("ray is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray on 2 CPUs for the module (it takes ~20 s to start on a busy machine)."""
    _ray()
    from maskcls.experiments.launch import RayLauncher

    launcher = RayLauncher(num_cpus=2, log=lambda s: None)
    yield launcher
    launcher.close()


def _no_timing(value):
    if isinstance(value, dict):
        return {k: _no_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_no_timing(v) for v in value]
    return value


# --- bad input: one line, nothing started -------------------------------------------------------------

def test_devices_and_jobs_are_checked():
    assert parse_devices(None, jobs=2, gpus=0) == ["cpu", "cpu"]  # several CPU runs share the cores
    assert parse_devices("cpu", jobs=3, gpus=2) == ["cpu"] * 3
    assert parse_devices(None, jobs=None, gpus=2) == ["cuda:0", "cuda:1"]
    assert parse_devices("cuda:1,cuda:0", jobs=None, gpus=2) == ["cuda:1", "cuda:0"]
    assert parse_devices("cuda", jobs=1, gpus=3) == ["cuda:0"]
    cases = [("cuda:2", 2, 2, "no such GPU"), ("cuda:0", 1, 0, "no CUDA GPU"), ("gpu0", 1, 1, "not a device"),
             ("cuda:0,cuda:0", 2, 2, "listed twice"), ("cpu,cuda:0", 2, 1, "mixes"), ("cuda:0,cuda:1", 3, 2, "--jobs 3"),
             (None, 3, 2, "--jobs 3")]
    for devices, jobs, gpus, message in cases:
        with pytest.raises(UserError, match=message):
            parse_devices(devices, jobs=jobs, gpus=gpus)
    for kwargs, message in [({"jobs": 0}, "--jobs must be at least 1"), ({"launcher": "slurm"}, "--launcher"),
                            ({"ray_address": "h:1"}, "goes with --launcher ray"),
                            ({"launcher": "ray", "devices": "cpu"}, "--devices is for the local launcher")]:
        with pytest.raises(UserError, match=message):
            with open_launcher(**kwargs):
                pass
    with open_launcher() as none, open_launcher(jobs=1) as one:
        assert none is None and one is None  # the sequential default: no processes at all


def test_a_ray_address_that_does_not_answer_fails_fast_and_starts_nothing():
    _ray()
    import ray

    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(UserError, match=f"127.0.0.1:{port} does not answer"):
        with open_launcher(launcher="ray", ray_address=f"127.0.0.1:{port}"):
            pytest.fail("started")
    assert time.perf_counter() - start < 15 and not ray.is_initialized()
    with pytest.raises(UserError, match="expected HOST:PORT"):
        with open_launcher(launcher="ray", ray_address="nonsense"):
            pass
    with pytest.raises(UserError, match="port 99999 is out of range"):  # was "does not answer"
        with open_launcher(launcher="ray", ray_address="127.0.0.1:99999"):
            pass


@pytest.mark.parametrize("listener", ["silent", "http", "grpc"])
def test_an_open_port_that_is_not_ray_fails_fast_and_starts_nothing(listener):
    """`--launcher ray --ray-address 127.0.0.1:PORT` on an open port that is not Ray hung for over 200 s,
    printing Ray's GCS warnings, until killed."""
    _ray()
    import http.server

    import grpc
    import ray
    from concurrent import futures

    stop = []
    if listener == "grpc":  # some other gRPC service: it answers, but not as Ray's GCS
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        stop.append(lambda: server.stop(0))
    elif listener == "http":
        httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
        port = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        stop.append(httpd.shutdown)
    else:  # accepts connections and never says a word
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        stop.append(sock.close)
    try:
        start = time.perf_counter()
        with pytest.raises(UserError, match=f"127.0.0.1:{port} is not a Ray cluster's head") as info:
            with open_launcher(launcher="ray", ray_address=f"127.0.0.1:{port}"):
                pytest.fail("started")
        assert time.perf_counter() - start < 15 and not ray.is_initialized()
        assert "\n" not in str(info.value)
        if listener == "grpc":
            assert "UNIMPLEMENTED" in str(info.value)
    finally:
        for f in stop:
            f()


def test_ray_missing_is_one_line(monkeypatch, capsys, synth_root, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(["ablate", str(synth_root), "--out", str(tmp_path / "a"), "--variants", "none",
                 "--launcher", "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "maskcls ablate: error: --launcher ray needs Ray: pip install 'maskcls[ray]'"
    assert not (tmp_path / "a").exists()


def test_launch_options_only_where_several_runs_train(synth_root, tmp_path, capsys):
    assert main(["train", str(synth_root), "--out", str(tmp_path / "r"), "--jobs", "2"]) == 2
    assert "use them with --fold all" in capsys.readouterr().err
    assert main(["audit", str(synth_root), "--out", str(tmp_path / "a"), "--run", str(tmp_path), "--jobs", "2"]) == 2
    assert "with --run nothing is trained" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ablate", str(synth_root), "--out", str(tmp_path / "b"), "--variants", "none", "--jobs", "0"])
    assert "--jobs: must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_worker_that_cannot_read_the_data_reports_it_and_the_pool_goes_on(tmp_path):
    gone = RunSpec("run a", tiny_config().to_dict(), str(tmp_path / "not-here"), str(tmp_path / "a"))
    assert "not found on" in execute(gone).error and "same path" in execute(gone).error
    # two runs in two spawned processes: each failure comes back as that run's result
    specs = [gone, RunSpec("run b", tiny_config().to_dict(), str(tmp_path / "nor-here"), str(tmp_path / "b"))]
    results = list(LocalPool(["cpu", "cpu"]).run(specs, log=lambda s: None))
    assert sorted(r.spec.name for r in results) == ["run a", "run b"]
    assert all(not r.ok and "not found on" in r.error for r in results)
    with pytest.raises(UserError, match="train.device=cuda"):  # a config that names another device
        next(LocalPool(["cpu"]).run([RunSpec("c", tiny_config("train.device=cuda").to_dict(), "x", "y")]))


# --- the same files as a sequential call ---------------------------------------------------------------

@pytest.fixture
def one_thread():
    """The sequential call with the thread count each launched run gets (1): float sums in another
    order differ in the last digits, and the comparisons below are byte for byte."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_fold_all_with_jobs_and_ray_writes_what_the_sequential_call_writes(synth_root, tmp_path, local_ray, one_thread,
                                                                          capfd):
    cfg = tiny_config(*ONE_EPOCH)
    outs = {"seq": None, "jobs": LocalPool(["cpu", "cpu"], threads=1), "ray": local_ray}
    for name, launcher in outs.items():
        train_folds(cfg, synth_root, tmp_path / name, launcher=launcher, **QUIET)
        if name == "jobs":  # the workers' own log lines reach the terminal, whole and tagged with their run
            printed = capfd.readouterr().out
            for fold in (0, 1):
                assert re.search(rf"^  \[fold {fold}\] epoch 1/1 .*img/s", printed, re.M), printed
                assert re.search(rf"^  \[fold {fold}\] best epoch 1 of 1, on the \d+ validation people.s recorded labels: ", printed, re.M), printed
    seq = (tmp_path / "seq" / "oof_probs.csv").read_bytes()
    cv = _no_timing(json.loads((tmp_path / "seq" / "cv_summary.json").read_text()))
    for name in ("jobs", "ray"):
        assert (tmp_path / name / "oof_probs.csv").read_bytes() == seq, name
        assert _no_timing(json.loads((tmp_path / name / "cv_summary.json").read_text())) == cv, name
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == sorted(p.name for p in (tmp_path / "seq").iterdir())


@pytest.mark.slow
def test_ablate_with_jobs_and_ray_matches_sequential_and_a_failing_run_is_reported(synth_root, tmp_path, local_ray,
                                                                                   one_thread):
    sets = (*TINY, *ONE_EPOCH)
    bad = f"model.weights={tmp_path / 'missing.pth'}"  # raises when its run builds the model, in the worker
    variants = ["none", bad, "hflip"]
    tables = {}
    for name, launcher in {"seq": None, "jobs": LocalPool(["cpu", "cpu"], threads=1), "ray": local_ray}.items():
        results = ab.ablate(synth_root, tmp_path / name, variants, seeds=1, folds=1, overrides=sets,
                            launcher=launcher, **QUIET)
        assert dict(zip(results["variant"], results["status"])) == {"none": "ok", bad: "failed", "hflip": "ok"}
        assert "missing.pth" in results.loc[results["status"] == "failed", "error"].iloc[0]
        tables[name] = (pd.read_csv(tmp_path / name / "results.csv").drop(columns="seconds_per_epoch"),
                        (tmp_path / name / "table.md").read_text())
    for name in ("jobs", "ray"):
        pd.testing.assert_frame_equal(tables[name][0], tables["seq"][0])
        assert tables[name][1] == tables["seq"][1]


@pytest.mark.slow
def test_kill_9_of_the_parent_then_a_rerun_trains_only_what_did_not_finish(synth_root, tmp_path):
    run = tmp_path / "cv"
    sets = [x for s in (*TINY, *ONE_EPOCH) for x in ("--set", s)]
    # One run at a time, in its own process: fold 1 is training when fold 0's result arrives.
    proc = subprocess.Popen([sys.executable, "-m", "maskcls", "--quiet", "train", str(synth_root), "--out", str(run),
                             "--fold", "all", "--jobs", "1", "--devices", "cpu", "--config", "demo", *sets],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "finished (1 of 2)" in line:
            break
    children = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                               text=True).stdout.split()]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert children, "".join(seen)
    deadline = time.time() + 60  # the workers notice their parent is gone and end
    while any(pid_alive(p) for p in children) and time.time() < deadline:
        time.sleep(0.5)
    assert not any(pid_alive(p) for p in children)
    finished = {p.parent.name for p in run.glob("fold-*/summary.json")}
    assert finished == {"fold-0"} and not (run / "oof_probs.csv").exists()
    stamp = (run / "fold-0" / "summary.json").stat().st_mtime_ns
    launched = []

    class Recording(LocalPool):
        def run(self, specs, **kwargs):
            launched.extend(s.name for s in specs)
            return super().run(specs, **kwargs)

    train_folds(tiny_config(*ONE_EPOCH), synth_root, run, launcher=Recording(["cpu"]), **QUIET)
    assert launched == ["fold 1"] and (run / "fold-0" / "summary.json").stat().st_mtime_ns == stamp
    assert (run / "oof_probs.csv").is_file()


@pytest.mark.slow
def test_jobs_through_a_pipe_show_the_launch_then_each_run_s_start_and_one_line_per_epoch(synth_root, tmp_path):
    """`ablate --jobs 2 | cat`: the parent's lines and the workers' are in the order they happened (the
    launch line before any start line, each start before its run's epochs), and every finished epoch
    of every run is one line prefixed by the run's name."""
    sets = [a for s in TINY if not s.startswith(("data.folds", "train.epochs")) for a in ("--set", s)]
    sets += ["--set", "train.epochs=2", "--set", "train.trackers=none"]
    done = subprocess.run([sys.executable, "-m", "maskcls", "--quiet", "ablate", str(synth_root), "--out",
                           str(tmp_path / "ab"), "--variants", "none,hflip", "--seeds", "1", "--folds", "2",
                           "--run-folds", "1", "--config", "demo", *sets, "--jobs", "2"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout
    launch = next(i for i, s in enumerate(lines) if s.startswith("launch: 2 run(s)"))
    for name in ("none seed 0 fold 0", "hflip seed 0 fold 0"):
        started = lines.index(f"  started {name} on cpu")
        epochs = [i for i, s in enumerate(lines) if re.match(rf"  \[{name}\] epoch \d/2 ", s)]
        assert launch < started < epochs[0] and len(epochs) == 2, done.stdout
