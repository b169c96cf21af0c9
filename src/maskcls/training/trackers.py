"""Experiment trackers: TensorBoard (RUN/tb) and MLflow, chosen by ``train.trackers``.

``open_trackers(cfg, out)`` returns one object the training loop talks to: every epoch's metrics go to
each tracker, and at the end the summary, the figures (curves, confusion, per-class F1) and config.yaml.
MLflow writes to ``MLFLOW_TRACKING_URI`` when set, else to MLflow's local default (./mlflow.db, artifacts
in ./mlruns) that `mlflow ui` opens with no server to start. Runs that belong together (the folds of `--fold all` and of an audit, the
variants of an ablation) are children of one parent run: ``parent_run`` opens it and hands its id to
every training inside it through ``MASKCLS_MLFLOW_PARENT``, which also reaches runs in subprocesses.
MLflow is an optional extra (``pip install 'maskcls[mlflow]'``); it is imported only when asked for.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from ..config import TRACKERS, parse_trackers  # noqa: F401 (TRACKERS: the names, with the setting)
from ..errors import UserError

PARENT_ENV = "MASKCLS_MLFLOW_PARENT"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
DEFAULT_EXPERIMENT = "maskcls"
FIGURES = ("curves.png", "confusion.png", "per_class_f1.png")
# best.pt too: the MLflow run then holds the model that predict would load, beside its settings
ARTIFACTS = ("config.yaml", "summary.json", "metrics.csv", *FIGURES, "best.pt")


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else MLflow's own local default: ./mlflow.db (artifacts in ./mlruns), which a
    plain `mlflow ui` in this folder opens. MLflow 3 refuses the old ./mlruns file store unless
    MLFLOW_ALLOW_FILE_STORE=true; set MLFLOW_TRACKING_URI=./mlruns with that to keep using one."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{tracking_default()}"


def check(cfg) -> None:
    """Fail before any training when MLflow is asked for but missing, or its tracking store cannot be
    opened and written: an unknown scheme, a server that does not answer or is not MLflow, a sqlite file
    on a read-only mount, a plain folder (which MLflow 3 refuses as a file store). The store is opened
    here as training opens it, with MLflow's HTTP retries off, so the answer comes in seconds."""
    if "mlflow" not in parse_trackers(cfg.train.trackers):
        return
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise UserError("train.trackers=mlflow needs MLflow, which is not installed: pip install "
                        "'maskcls[mlflow]' (or set train.trackers=tensorboard)") from None
    uri = tracking_uri()
    parts = urllib.parse.urlparse(uri)
    if parts.scheme in ("http", "https"):
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname or "", port), timeout=3).close()
        except OSError as exc:
            raise UserError(f"MLflow tracking server {uri} cannot be reached ({exc.strerror or exc}); start it, fix "
                            f"MLFLOW_TRACKING_URI, or unset it to log to {tracking_default()}") from None
    if parts.scheme == "sqlite":
        _check_sqlite(uri, parts)
    with _quick_http():
        try:
            client = _client()
            exp = _experiment_id(client)
            # A write that changes nothing a user sees: a store that reads but cannot write (a sqlite file
            # on a read-only mount) fails here, not after the first epoch.
            client.set_experiment_tag(exp, "maskcls.checked", time.strftime("%Y-%m-%dT%H:%M:%S"))
        except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds (its own, sqlalchemy's, requests')
            why = (f"MLflow has no tracking store for {parts.scheme}:// URIs" if parts.scheme not in KNOWN_SCHEMES
                   else _first_line(exc))
            raise UserError(f"MLflow tracking store {uri} cannot be used ({why}); {_store_hint(parts)}") from None


# The stores MLflow ships; another scheme can only come from a plugin, and its failure message (about the
# model registry) would mislead.
KNOWN_SCHEMES = ("", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "uc",
                 "databricks-uc")


def _check_sqlite(uri: str, parts: urllib.parse.ParseResult) -> None:
    """A sqlite file must be writable, and so must its folder (sqlite writes its journal beside it).
    MLflow itself retries a database it cannot open for about two minutes before it says so."""
    path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
    if not path or path.startswith(":memory:"):
        return
    db = Path(path.split("?", 1)[0])
    folder = db.parent if str(db.parent) else Path(".")
    why = ("its folder does not exist" if not folder.is_dir()
           else "its folder is read-only" if not os.access(folder, os.W_OK)
           else "the file is read-only" if db.exists() and not os.access(db, os.W_OK) else None)
    if why:
        raise UserError(f"MLflow tracking store {uri} cannot be used ({why}); {_store_hint(parts)}")


def tracking_default() -> str:
    """MLflow's store when MLFLOW_TRACKING_URI is not set: ./mlflow.db."""
    return str(Path.cwd() / "mlflow.db")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    line = line.split(". Response body", 1)[0]  # a foreign server's whole HTML page otherwise
    line = line.split(". Please migrate", 1)[0]  # MLflow's file-store notice; the hint says what to do
    return line if len(line) <= 160 else line[:157] + "..."


def _store_hint(parts: urllib.parse.ParseResult) -> str:
    if parts.scheme in ("http", "https"):
        return "is an MLflow server (`mlflow server`) running there? Fix MLFLOW_TRACKING_URI or unset it"
    if parts.scheme in ("", "file"):
        return ("MLflow 3 keeps plain folders (file stores) read-only: use MLFLOW_TRACKING_URI=sqlite:///PATH/mlflow.db, "
                "or set MLFLOW_ALLOW_FILE_STORE=true to keep using the folder")
    if parts.scheme == "sqlite":
        return "give a sqlite:///PATH/mlflow.db in a folder you can write"
    return "use sqlite:///PATH/mlflow.db or an http:// MLflow server, or unset MLFLOW_TRACKING_URI"


@contextlib.contextmanager
def _quick_http() -> Iterator[None]:
    """MLflow retries a failing HTTP request for minutes with back-off; the check asks once, within seconds."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "5"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _client():
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri())


def _experiment_id(client) -> str:
    name = os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def _param_value(value) -> str:
    return "null" if value is None else str(value)


def _numbers(values: dict) -> dict[str, float]:
    """The finite numbers of a dict (None, text and NaN left out: MLflow metrics are numbers)."""
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v))}


class _Mlflow:
    """One MLflow run for one run folder; a resumed training continues its unfinished MLflow run."""

    def __init__(self, cfg, out: Path, *, resume: bool, log=None) -> None:
        self.client = _client()
        exp = _experiment_id(self.client)
        folder = str(out.resolve())
        self.run_id = (resume and self._unfinished(exp, folder)) or self._created(cfg, exp, out, folder)
        if log is not None:  # where the run went: its id, the store and the experiment
            uri = tracking_uri()
            ui = f"mlflow ui --backend-store-uri {uri}" if os.environ.get("MLFLOW_TRACKING_URI") else "mlflow ui"
            log(f"mlflow: run {self.run_id} in {uri} (experiment {self.client.get_experiment(exp).name!r}); "
                f"`{ui}` shows it")

    def _unfinished(self, exp: str, folder: str) -> str | None:
        """The id of this folder's last MLflow run when it did not finish (a --resume continues it)."""
        previous = self.client.search_runs([exp], filter_string=f"tags.`maskcls.run_dir` = '{folder}'",
                                           order_by=["attributes.start_time DESC"], max_results=1)
        if not previous or previous[0].info.status == "FINISHED":
            return None
        self.client.update_run(previous[0].info.run_id, status="RUNNING")
        return previous[0].info.run_id

    def _created(self, cfg, exp: str, out: Path, folder: str) -> str:
        from mlflow.entities import Param

        from ..config import flat

        tags = {"maskcls.run_dir": folder, "maskcls.kind": "training"}
        parent = os.environ.get(PARENT_ENV)
        if parent:
            tags["mlflow.parentRunId"] = parent
        run_id = self.client.create_run(exp, run_name=out.name, tags=tags).info.run_id
        params = [Param(k, _param_value(v)) for k, v in flat(cfg).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=params[i:i + 100])
        return run_id

    def log_epoch(self, row: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in _numbers(row).items() if k != "epoch"]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_summary(self, summary: dict, out: Path) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(f"summary.{k}", v, now, 0)
                                                    for k, v in _numbers(summary).items()])
        for name in ARTIFACTS:
            if (out / name).is_file():
                self.client.log_artifact(self.run_id, str(out / name))

    def register(self, model, name: str) -> str:
        """Log ``model`` with MLflow's PyTorch flavour into this run and register it as ``name``; returns
        the registered version. Requirements are not inferred (that imports and inspects every package):
        the model needs torch and maskcls, which the run's params name."""
        import mlflow
        import mlflow.pytorch

        mlflow.set_tracking_uri(tracking_uri())
        with mlflow.start_run(run_id=self.run_id):
            # "pickle": the whole module as torch.save keeps it (the "pt2" default traces forward with an example)
            info = mlflow.pytorch.log_model(model, name="model", registered_model_name=name, pip_requirements=[],
                                            serialization_format="pickle",
                                            await_registration_for=60)
        return str(getattr(info, "registered_model_version", "") or "")

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)


class _TensorBoard:
    def __init__(self, out: Path, start_epoch: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(out / "tb"), purge_step=start_epoch + 1 if start_epoch else None)

    def log_epoch(self, row: dict, step: int) -> None:
        for k, v in _numbers(row).items():
            if k != "epoch":
                self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def log_summary(self, summary: dict, out: Path, cfg) -> None:
        import numpy as np
        from PIL import Image

        from ..config import flat

        for name in FIGURES:
            if (out / name).is_file():
                with Image.open(out / name) as img:
                    self.writer.add_image(Path(name).stem, np.asarray(img.convert("RGB")), dataformats="HWC")
        hparams = {k: v if isinstance(v, (int, float, str, bool)) else _param_value(v) for k, v in flat(cfg).items()}
        metrics = {f"hparam/{k}": v for k, v in _numbers(summary).items()
                   if k in ("macro_f1", "accuracy", "mask_f1", "gender_f1", "age_f1", "val_loss")}
        self.writer.add_hparams(hparams, metrics, run_name=".")  # "." : beside the curves, one run
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.close()


class Trackers:
    """The trackers of one training: ``log_epoch`` every epoch, ``log_summary`` once at the end, ``close``."""

    def __init__(self, cfg, out: Path, *, start_epoch: int = 0, resume: bool = False, log=None) -> None:
        names = parse_trackers(cfg.train.trackers)
        self.cfg, self.out = cfg, Path(out)
        self.tb = _TensorBoard(self.out, start_epoch) if "tensorboard" in names else None
        self.mlflow = _Mlflow(cfg, self.out, resume=resume, log=log) if "mlflow" in names else None
        self.finished = False

    def log_epoch(self, row: dict, step: int) -> None:
        """Log one epoch's row to every tracker."""
        for t in (self.tb, self.mlflow):
            if t is not None:
                t.log_epoch(row, step)

    def log_summary(self, summary: dict, model=None, log=None) -> None:
        """The summary and files; with train.mlflow_model set, ``model`` (the kept weights) registered."""
        if self.tb is not None:
            self.tb.log_summary(summary, self.out, self.cfg)
        if self.mlflow is not None:
            self.mlflow.log_summary(summary, self.out)
            name = self.cfg.train.mlflow_model
            if name and model is not None:
                version = self.mlflow.register(model, name)
                if log is not None:
                    log(f"mlflow: registered the kept model as {name!r}" + (f" version {version}" if version else ""))
        self.finished = True

    def close(self, *, failed: bool = False) -> None:
        # An interrupted run stays KILLED (a --resume continues it); a crash is FAILED.
        """End the trackers' runs: finished, failed or killed."""
        status = "FINISHED" if self.finished else "FAILED" if failed else "KILLED"
        for t in (self.tb, self.mlflow):
            if t is not None:
                t.close(status)


@contextlib.contextmanager
def parent_run(cfg, name: str, out: str | Path, *, kind: str) -> Iterator[str | None]:
    """An MLflow parent run around several trainings (folds, ablation variants); yields its id, or None
    when MLflow is not among the trackers. On exit the top-level files of ``out`` (tables, figures,
    summaries) become its artifacts."""
    from .runtime import is_main

    if "mlflow" not in parse_trackers(cfg.train.trackers) or not is_main():
        yield None
        return
    check(cfg)
    from ..config import flat

    client = _client()
    tags = {"maskcls.run_dir": str(Path(out).resolve()), "maskcls.kind": kind}
    before = os.environ.get(PARENT_ENV)
    if before:
        tags["mlflow.parentRunId"] = before
    run_id = client.create_run(_experiment_id(client), run_name=name, tags=tags).info.run_id
    from mlflow.entities import Param

    params = [Param(k, _param_value(v)) for k, v in flat(cfg).items()]
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=params[i:i + 100])
    os.environ[PARENT_ENV] = run_id
    status = "FAILED"
    try:
        yield run_id
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if before is None:
            os.environ.pop(PARENT_ENV, None)
        else:
            os.environ[PARENT_ENV] = before
        folder = Path(out)
        if status == "FINISHED" and folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.is_file() and path.suffix in (".png", ".md", ".json", ".csv", ".yaml"):
                    client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, status=status)
