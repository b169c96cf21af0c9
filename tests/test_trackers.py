"""train.trackers: TensorBoard and MLflow, read back through their own readers."""

import sys

import pytest

from maskcls.config import load_config
from maskcls.errors import UserError
from maskcls.training.fit import train
from maskcls.training.trackers import parse_trackers

from conftest import TINY, tiny_config


def test_tracker_names_and_the_old_tensorboard_switch():
    assert parse_trackers("tensorboard+mlflow") == ("tensorboard", "mlflow")
    assert parse_trackers("none") == ()
    assert load_config("demo", TINY + ["train.tensorboard=false"]).train.trackers == "none"
    assert load_config("demo", TINY + ["train.trackers=mlflow", "train.tensorboard=true"]).train.trackers == \
        "tensorboard+mlflow"
    with pytest.raises(UserError, match="unknown tracker 'wandb'"):
        load_config("demo", TINY + ["train.trackers=wandb"])


def test_unreachable_server_fails_before_training(synth_root, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(UserError, match="cannot be reached") as err:
        train(tiny_config("train.trackers=mlflow"), synth_root, tmp_path / "r", progress=False, log=lambda s: None)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("store_kind", ["garbage", "read-only sqlite", "not mlflow", "plain folder"])
def test_a_tracking_store_that_cannot_be_used_fails_before_training(synth_root, tmp_path, monkeypatch, capsys,
                                                                    store_kind, request):
    """Each of these was a traceback after the first epoch, leaving a folder only --resume continues."""
    pytest.importorskip("mlflow")
    import http.server
    import threading
    import time

    from maskcls.cli import main

    monkeypatch.chdir(tmp_path)  # MLflow writes nothing outside tmp
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    cleanup = lambda: None  # noqa: E731
    if store_kind == "garbage":
        uri, said = "garbage://nowhere", "no tracking store for garbage://"
    elif store_kind == "read-only sqlite":
        folder = request.getfixturevalue("read_only_dir")
        uri, said = f"sqlite:///{folder / 'mlflow.db'}", "read-only"
    elif store_kind == "not mlflow":
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):  # its request lines are not maskcls's output
                pass

        httpd = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        cleanup = httpd.shutdown
        uri, said = f"http://127.0.0.1:{httpd.server_address[1]}", "is an MLflow server"
    else:
        uri, said = str(tmp_path / "mlruns"), "MLFLOW_ALLOW_FILE_STORE"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    try:
        start = time.perf_counter()
        code = main(["train", str(synth_root), "--out", str(tmp_path / "r"), "--config", "demo",
                     *[a for kv in TINY + ["train.trackers=mlflow"] for a in ("--set", kv)]])
        elapsed = time.perf_counter() - start
    finally:
        cleanup()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and said in err[0] and uri in err[0], err
    assert "sqlite:///" in err[0] or "MLflow server" in err[0]  # says what to do
    assert not (tmp_path / "r").exists()  # nothing trained, nothing to --resume
    assert elapsed < 60


def test_missing_mlflow_is_one_line(synth_root, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    with pytest.raises(UserError, match=r"pip install 'maskcls\[mlflow\]'") as err:
        train(tiny_config("train.trackers=mlflow"), synth_root, tmp_path / "r", progress=False, log=lambda s: None)
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow database for the module: creating its tables takes MLflow several seconds."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    # The experiments' artifact folders are given here: MLflow's default, ./mlruns, is resolved against
    # whatever folder is current when an artifact is written, and the tests must write nothing outside tmp.
    for name in ("single", "ablation"):
        client.create_experiment(name, artifact_location=(folder / name).as_uri())
    return uri, client


@pytest.mark.slow
def test_training_logged_to_mlflow_and_tensorboard(synth_root, tmp_path, monkeypatch, store):
    uri, client = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "single")
    monkeypatch.chdir(tmp_path)  # a new experiment's artifacts go to ./mlruns
    out = tmp_path / "run"
    said: list[str] = []
    summary = train(tiny_config("train.epochs=2", "train.trackers=tensorboard+mlflow"), synth_root, out,
                    progress=False, log=said.append)
    exp = client.get_experiment_by_name("single")
    (run,) = client.search_runs([exp.experiment_id])
    # the log says where the run went: its id, the store, the experiment
    assert f"mlflow: run {run.info.run_id} in {uri} (experiment 'single')" in "\n".join(said)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "2" and run.data.params["model.name"] == "test_resnet"
    assert run.data.params["data.mean"] != "null"  # the resolved settings, not the given ones
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2]
    assert run.data.metrics["summary.macro_f1"] == pytest.approx(summary["macro_f1"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "summary.json", "metrics.csv", "curves.png", "confusion.png", "best.pt"} <= artifacts

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tb"), size_guidance={"images": 0})
    acc.Reload()
    assert {"curves", "confusion"} <= set(acc.Tags()["images"])
    assert len(acc.Scalars("macro_f1")) == 2
    assert "_hparams_/session_start_info" in acc.summary_metadata


@pytest.mark.slow
def test_ablation_is_a_parent_with_children(synth_root, tmp_path, monkeypatch, store):
    from maskcls.experiments.ablate import ablate

    uri, client = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "ablation")
    monkeypatch.chdir(tmp_path)  # a new experiment's artifacts go to ./mlruns
    sets = tuple(TINY) + ("train.epochs=1", "train.trackers=mlflow", "data.folds=3")
    ablate(synth_root, tmp_path / "abl", ["hflip", "none"], seeds=1, folds=1, overrides=sets, progress=False,
           log=lambda s: None)
    exp = client.get_experiment_by_name("ablation")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("maskcls.kind") == "ablation"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.params["data.augment"] for r in children) == ["hflip", "none"]
    assert {"results.csv", "table.md", "ablation.png"} <= {a.path for a in client.list_artifacts(parents[0].info.run_id)}


@pytest.mark.slow
def test_the_kept_model_is_registered_when_asked(synth_root, tmp_path, monkeypatch, store):
    """train.mlflow_model=NAME registers the kept model through MLflow's PyTorch flavour; it loads back
    and answers as best.pt does."""
    import mlflow
    import mlflow.pytorch
    import torch

    from maskcls.training.runs import load_run

    uri, client = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "single")
    monkeypatch.chdir(tmp_path)
    said: list[str] = []
    train(tiny_config("train.epochs=1", "train.trackers=mlflow", "train.mlflow_model=masks"), synth_root,
          tmp_path / "run", progress=False, log=said.append)
    assert any(line.startswith("mlflow: registered the kept model as 'masks' version 1") for line in said), said
    mlflow.set_tracking_uri(uri)
    registered = mlflow.pytorch.load_model("models:/masks/1")
    model = load_run(tmp_path / "run")[0]
    x = torch.randint(0, 255, (2, 3, 64, 48), dtype=torch.uint8)
    registered.eval()
    model.eval()
    with torch.no_grad():
        a, b = registered(x), model(x)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k])
    else:
        torch.testing.assert_close(a, b)
