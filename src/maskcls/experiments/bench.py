"""`maskcls bench`: where does the time go? Throughputs of the data pipeline alone, the model alone
(the ceiling) and the real training and prediction steps, and their ratios.

Every figure runs maskcls's own code path (the loaders, ``train_one_epoch``, ``predict_proba``) with
the configured AMP and channels_last; only the inputs differ (real photos or random tensors of the
same shape). Each figure is the median of ``repeats`` timings, after a warm-up.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .. import labels
from ..config import Config, from_dict, load_config
from ..data.prepare import prepare
from ..errors import UserError
from ..config import default_workers
from ..training.loaders import loader_for
from ..training.loop import predict_proba, train_one_epoch
from ..training.losses import build_loss
from ..training.model import build_model
from ..training.optim import build_optimizer
from ..training.runtime import Runtime


class _Limited:
    """The first ``steps`` batches of a loader, as an iterable with a length (what the loop expects)."""

    def __init__(self, loader, steps: int) -> None:
        self.loader, self.steps = loader, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return itertools.islice(itertools.cycle(self.loader) if len(self.loader) < self.steps else self.loader,
                                self.steps)


class _Reference(Dataset):
    """The common baseline's loader: PIL open + torchvision Resize / ToTensor / Normalize per photo."""

    def __init__(self, paths: list[str], size: tuple[int, int]) -> None:
        from torchvision import transforms

        self.paths = paths
        self.tf = transforms.Compose([transforms.Resize((size[1], size[0])), transforms.ToTensor(),
                                      transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.tf(im.convert("RGB")), 0


def _rate(fn, images: int, repeats: int) -> float:
    fn()  # warm-up: allocator, cuDNN autotuning, worker start-up
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return images / statistics.median(times)


def bench_config(config: str | Path = "demo", overrides: Sequence[str] = (), *, model: str | None = None,
                 size: str | None = None, batch: int | None = None, device: str | None = None,
                 workers: int | None = None) -> Config:
    """The config `maskcls bench` times: ``config`` and ``overrides``, then each option given (None:
    the config's), always with random weights (a throughput needs no download)."""
    options = {"model.name": model, "data.size": size, "train.batch_size": batch, "train.device": device,
               "data.workers": workers}
    given = [f"{key}={value}" for key, value in options.items() if value is not None]
    return load_config(config, [*overrides, *given, "model.weights=none"])


def bench(cfg: Config, data: str | Path, *, steps: int = 20, repeats: int = 3, progress: bool = False) -> dict:
    """Throughputs (images/s) and ratios for ``cfg`` (model, size, batch, device, AMP) on DATA's photos."""
    _check(cfg, steps=steps, repeats=repeats)
    runtime = Runtime.from_settings(device=cfg.train.device, amp=cfg.train.amp, channels_last=cfg.train.channels_last)
    batch = cfg.train.batch_size
    images = steps * batch
    with tempfile.TemporaryDirectory() as tmp:
        cached = from_dict(cfg.to_dict())
        cached.data.cache = cfg.data.cache if cfg.data.cache != "none" else "disk"
        cached.data.cache_dir = cfg.data.cache_dir or tmp
        prepared = prepare(cached, data, log=lambda s: None)
        if len(prepared.table) < batch:
            raise UserError(f"{data}: {len(prepared.table)} photos, fewer than one batch of {batch}")
        train_ds, val_ds = prepared.datasets(cached, 0, progress=progress)  # builds the cache (not timed)
        uncached = from_dict(cached.to_dict())
        uncached.data.cache = "none"
        train_files, _ = prepared.datasets(uncached, 0, progress=progress)

        run_train, run_predict = _model_steps(cfg, runtime, train_ds)
        width, height = cfg.size
        fake = [(torch.randint(0, 256, (batch, 3, height, width), dtype=torch.uint8),
                 torch.randint(0, 2, (batch, len(labels.TASKS))))] * steps

        train_loader = _Limited(loader_for(train_ds, cached, runtime.device, train=True), steps)
        eval_loader = _Limited(loader_for(val_ds, cached, runtime.device, train=False), steps)
        nocache_loader = _Limited(loader_for(train_files, uncached, runtime.device, train=True), steps)
        workers = cached.data.workers if cached.data.workers is not None else default_workers()
        reference = _Limited(DataLoader(_Reference(prepared.table["path"].tolist(), cfg.size), batch_size=batch,
                                        shuffle=True, num_workers=workers), steps)
        out = {
            "model": cfg.model.name, "size": cfg.data.size, "batch": batch, "steps": steps, "repeats": repeats,
            "device": runtime.device.type, "amp": str(runtime.amp_dtype).replace("torch.", "") if runtime.amp_dtype else "none",
            "channels_last": runtime.channels_last, "cache": cached.data.cache,
            "workers": workers, "threads": torch.get_num_threads(),
            "loader_img_s": _rate(lambda: _drain(train_loader), images, repeats),
            "model_img_s": _rate(lambda: run_train(fake), images, repeats),
            "train_img_s": _rate(lambda: run_train(train_loader), images, repeats),
            "predict_model_img_s": _rate(lambda: run_predict(fake), images, repeats),
            "predict_img_s": _rate(lambda: run_predict(eval_loader), images, repeats),
            "loader_nocache_img_s": _rate(lambda: _drain(nocache_loader), images, repeats),
            "reference_loader_img_s": _rate(lambda: _drain(reference), images, repeats),
        }
    out["train_ratio"] = out["train_img_s"] / out["model_img_s"]
    out["predict_ratio"] = out["predict_img_s"] / out["predict_model_img_s"]
    out["cache_vs_reference"] = out["loader_img_s"] / out["reference_loader_img_s"]
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}


def _check(cfg: Config, *, steps: int, repeats: int) -> None:
    """Refuse counts under 1, and a model that reads the face model (its time is `maskcls faces`'s)."""
    if steps < 1 or repeats < 1:
        raise UserError("--steps and --repeats must be at least 1")
    if cfg.model.face_features:
        # its time goes to the face model (`maskcls faces` prints photos/s), not to this pipeline
        raise UserError("maskcls bench times the photo pipeline and the CNN; model.face_features and "
                        "model.name=face-descriptor read the face model too: time that with `maskcls faces`, and "
                        "bench the CNN with --set model.face_features=false")


def _drain(loader) -> None:
    """Read every batch of ``loader`` and do nothing with it: the loader's own time."""
    for _ in loader:
        pass


def _model_steps(cfg: Config, runtime: Runtime, train_ds) -> tuple[Callable, Callable]:
    """The model, optimizer and loss of ``cfg`` (from scratch, on ``runtime``); returns (train on a loader,
    predict a loader), the two things bench times."""
    model = build_model(cfg.model.name, cfg.model.heads, "none", drop_rate=cfg.model.drop_rate).to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if cfg.train.compile else model
    optimizer = build_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.amp_dtype == torch.float16)
    loss_fn = build_loss(cfg, train_ds.targets.numpy(), runtime.device)

    def run_train(loader) -> None:
        train_one_epoch(net, loader, optimizer, scheduler, loss_fn, runtime=runtime, scaler=scaler,
                        log_every=10**9, progress=False)

    def run_predict(loader) -> None:
        predict_proba(net, loader, runtime=runtime, progress=False)

    return run_train, run_predict
