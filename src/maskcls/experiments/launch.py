"""Many independent runs at once: on the devices of this machine (``--jobs N --devices LIST``: one
process per run, each pinned to one device) or as Ray tasks (``--launcher ray``: a cluster, or a local
Ray). A launcher takes a list of ``RunSpec`` and yields a ``RunResult`` for each as runs finish
(training.runspec); the callers (train_folds, ablate, audit) keep the bookkeeping and write the tables,
so results and resume behave as in a sequential call.

No launcher (the default) means the callers' own in-process loop: nothing here is imported then.
This module stays light to import (no torch at the top): spawned workers import it first and must set
their GPU and thread count before torch loads.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import replace
from typing import Callable

from ..errors import UserError
from ..training.runspec import RunResult, RunSpec, execute

LAUNCHERS = ("local", "ray")
PROBE_SECONDS = 5.0  # how long a --ray-address may take to answer before the command gives up


# ---------------------------------------------------------------------------------------- options

def parse_devices(text: str | None, *, jobs: int | None, gpus: int) -> list[str]:
    """--devices (or its default) -> the device slots, one per concurrent run.

    'cpu' may hold several runs (they share the cores); a GPU holds one run at a time, so --jobs may not
    exceed the GPUs listed. Default: every visible GPU, else cpu. ``gpus``: how many GPUs are visible.
    """
    if text is None:
        devices = [f"cuda:{k}" for k in range(gpus)] or ["cpu"]
    else:
        devices = []
        for item in (t.strip() for t in text.split(",")):
            if item == "cpu":
                devices.append(item)
            elif item == "cuda":
                if not gpus:
                    raise UserError("--devices cuda: no CUDA GPU is visible; use --devices cpu")
                devices += [f"cuda:{k}" for k in range(gpus)]
            elif item.startswith("cuda:") and item[5:].isdigit():
                if not gpus:
                    raise UserError(f"--devices {item}: no CUDA GPU is visible; use --devices cpu")
                if int(item[5:]) >= gpus:
                    raise UserError(f"--devices {item}: no such GPU (this machine has {gpus}: "
                                    f"cuda:0{f' to cuda:{gpus - 1}' if gpus > 1 else ''})")
                devices.append(f"cuda:{int(item[5:])}")
            else:
                raise UserError(f"--devices: {item!r} is not a device; give cpu, cuda (every GPU) or cuda:K, "
                                "comma-separated")
        if len(set(devices)) != len(devices):
            raise UserError(f"--devices {text}: a device is listed twice")
        if "cpu" in devices and len(devices) > 1:
            raise UserError(f"--devices {text} mixes cpu and GPUs; their runs would not be comparable: give one kind")
    n = len(devices) if jobs is None else jobs
    if devices == ["cpu"]:
        return ["cpu"] * n  # several runs share the cores (--cpus-per-run threads each)
    if n > len(devices):
        raise UserError(f"--jobs {n} but {len(devices)} GPU(s) to run on ({', '.join(devices)}): a GPU trains one "
                        "run at a time; lower --jobs or list more --devices")
    return devices[:n]


def visible_gpus() -> int:
    """The CUDA devices this process sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@contextlib.contextmanager
def open_launcher(*, jobs: int | None = None, devices: str | None = None, launcher: str = "local",
                  ray_address: str | None = None, cpus_per_run: int | None = None,
                  log: Callable[[str], None] = print) -> Iterator["LocalPool | RayLauncher | None"]:
    """The launcher the options ask for (None: the callers' sequential in-process loop), checked before
    anything starts; Ray is shut down on exit."""
    if launcher not in LAUNCHERS:
        raise UserError(f"--launcher must be one of {', '.join(LAUNCHERS)}, got {launcher!r}")
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    if cpus_per_run is not None and cpus_per_run < 1:
        raise UserError(f"--cpus-per-run must be at least 1, got {cpus_per_run}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and (jobs or devices or launcher == "ray"):
        raise UserError("--jobs/--devices/--launcher run separate trainings; under torchrun every process trains "
                        "the same run: use one or the other")
    if launcher == "ray":
        if devices is not None:
            raise UserError("--devices is for the local launcher; Ray places each run on a GPU (or CPUs) itself")
        ray = RayLauncher(address=ray_address, cpus_per_run=cpus_per_run or 1, jobs=jobs, log=log)
        try:
            yield ray
        finally:
            ray.close()
        return
    if ray_address is not None:
        raise UserError("--ray-address goes with --launcher ray")
    if (jobs is None or jobs == 1) and devices is None and cpus_per_run is None:
        yield None
        return
    slots = parse_devices(devices, jobs=jobs, gpus=visible_gpus())
    yield LocalPool(slots, threads=cpus_per_run or max(1, (os.cpu_count() or 1) // len(slots)))


def check_devices(specs: list[RunSpec], kind: str) -> None:
    """A config that names its device must agree with the launcher's (nothing is started otherwise)."""
    for spec in specs:
        wanted = spec.config.get("train", {}).get("device", "auto")
        if wanted not in ("auto", kind):
            raise UserError(f"{spec.name}: its config asks for train.device={wanted}, but the runs go to {kind} "
                            f"devices; use train.device=auto (or {kind})")


# ----------------------------------------------------------------------------- local processes

def _child_setup(parent: int, device: str, threads: int) -> None:
    """In the fresh worker, before torch loads: its one GPU (or none) and its thread count; and a
    watchdog that ends the worker when the parent dies (kill -9), so that no orphan keeps training
    and the run's folder lock is free for the rerun."""
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    else:  # cuda:K counts the GPUs this parent sees, which CUDA_VISIBLE_DEVICES may already narrow
        seen = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        k = int(device.partition(":")[2])
        os.environ["CUDA_VISIBLE_DEVICES"] = seen[k] if k < len(seen) else str(k)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


class LocalPool:
    """Runs on this machine: one spawned process per run, at most one per slot at a time (a slot is a
    device: 'cuda:K', or 'cpu' repeated for several CPU runs). Each run gets a fresh process (its own
    ProcessPoolExecutor of one worker), so a crash or a leak ends with that run only."""

    def __init__(self, slots: list[str], *, threads: int = 1) -> None:
        self.slots = list(slots)
        self.threads = threads

    def describe(self) -> str:
        """'N at a time on DEVICE (T thread(s) each)'."""
        kind = "cpu" if self.slots[0] == "cpu" else ", ".join(self.slots)
        return f"{len(self.slots)} at a time on {kind} ({self.threads} thread(s) each)"

    def run(self, specs: list[RunSpec], *, log: Callable[[str], None] = print) -> Iterator[RunResult]:
        """Run ``specs``, one spawned process each, as slots free; yields each result as its run finishes."""
        check_devices(specs, "cpu" if self.slots[0] == "cpu" else "cuda")
        ctx = multiprocessing.get_context("spawn")  # fork would copy the parent's threads and CUDA state
        pending, free = list(specs), list(self.slots)
        running: dict = {}  # future -> (its executor, its spec)
        log(f"launch: {len(specs)} run(s), {self.describe()}")

        def start() -> None:
            while pending and free:
                spec = replace(pending.pop(0), device=free.pop(0), threads=self.threads)
                pool = ProcessPoolExecutor(1, mp_context=ctx, initializer=_child_setup,
                                           initargs=(os.getpid(), spec.device, self.threads))
                running[pool.submit(execute, spec)] = (pool, spec)
                log(f"  started {spec.name} on {spec.device}")

        try:
            start()
            while running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                results = []
                for future in done:
                    pool, spec = running.pop(future)
                    free.append(spec.device)
                    try:
                        results.append(future.result())
                    except Exception as exc:  # the worker died (killed, out of memory, a crash in C)
                        results.append(RunResult(spec, error=f"its worker process died ({type(exc).__name__}: {exc})"))
                    pool.shutdown(wait=True)
                start()  # the freed devices take the next runs before the caller records these
                yield from results
        finally:  # the caller stopped early (Ctrl-C, an error): end the runs still going
            for pool, _ in running.values():
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()
                pool.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------------------------------- Ray

def _ray_work(spec: RunSpec) -> RunResult:
    """A Ray task: Ray has already set CUDA_VISIBLE_DEVICES to the task's GPU (or to none)."""
    import ray

    device = "cuda" if ray.get_gpu_ids() else "cpu"
    os.environ["OMP_NUM_THREADS"] = str(spec.threads)
    return execute(replace(spec, device=device))


def probe(address: str, timeout: float = PROBE_SECONDS) -> None:
    """Fail fast, before anything starts, when the head node does not answer."""
    if address == "auto":
        return  # the local cluster `ray start` left; ray.init says when there is none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address}: expected HOST:PORT, ray://HOST:PORT or auto")
    if not 0 < int(port) < 65536:
        raise UserError(f"--ray-address {address}: port {port} is out of range (1-65535)")
    start = time.monotonic()
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UserError(f"--ray-address {address} does not answer ({getattr(exc, 'strerror', None) or exc}); "
                        "start the cluster with `ray start --head` on its head node, or drop --ray-address "
                        "for a Ray on this machine") from None
    # An open port is not yet a Ray head: ray.init retries a port that speaks something else for minutes,
    # printing GCS warnings. Ask the head's GCS for its cluster id, as ray.init does first, with a deadline.
    left = max(0.5, timeout - (time.monotonic() - start))
    answer = _ask_gcs(f"{host}:{port}", left)
    if answer is not None:
        raise UserError(f"--ray-address {address} is not a Ray cluster's head ({answer} within {timeout:g} s); "
                        "give the address `ray start --head` printed (HOST:6379 by default)")


GCS_CALL = "/ray.rpc.NodeInfoGcsService/GetClusterId"


def _ask_gcs(target: str, timeout: float) -> str | None:
    """None when a Ray GCS answers at ``target`` within ``timeout`` seconds, else what went wrong.

    The call's request is an empty message (all GetClusterIdRequest fields are optional), sent as raw bytes
    so that no generated Ray module is needed; grpcio comes with Ray."""
    import grpc

    channel = grpc.insecure_channel(target)
    try:
        call = channel.unary_unary(GCS_CALL, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        call(b"", timeout=timeout)
        return None
    except grpc.RpcError as exc:
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        if code == grpc.StatusCode.DEADLINE_EXCEEDED or code == grpc.StatusCode.UNAVAILABLE:
            return "no Ray answer"
        return f"the port answers {code.name if code is not None else 'something else'}, not Ray's GCS"
    finally:
        channel.close()


class RayLauncher:
    """Runs as Ray tasks: one GPU each where the cluster has GPUs, else ``cpus_per_run`` CPUs; each task
    in a fresh worker process (max_calls=1). With no address, a Ray on this machine only (``num_cpus``
    of its cores, default all) that ends with the command. ``jobs`` caps the runs in flight."""

    def __init__(self, *, address: str | None = None, cpus_per_run: int = 1, jobs: int | None = None,
                 num_cpus: int | None = None, log: Callable[[str], None] = print) -> None:
        try:
            import ray
        except ImportError:
            raise UserError("--launcher ray needs Ray: pip install 'maskcls[ray]'") from None
        if address is not None:
            probe(address)
        self.ray, self.jobs, self.cpus_per_run = ray, jobs, cpus_per_run
        try:
            if address is not None:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
                         object_store_memory=200 * 1024**2)  # results are small dicts: no need for GBs
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"Ray did not start{f' at {address}' if address else ''}: "
                            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        options = {"num_cpus": cpus_per_run, "max_calls": 1, "max_retries": 0}
        if self.gpus:
            options["num_gpus"] = 1
        self.task = ray.remote(**options)(_ray_work)
        where = address or "this machine"
        log(f"launch: Ray at {where}: {int(resources.get('CPU', 0))} CPU(s), {self.gpus} GPU(s); each run takes "
            + ("1 GPU" if self.gpus else f"{cpus_per_run} CPU(s)"))

    def run(self, specs: list[RunSpec], *, log: Callable[[str], None] = print) -> Iterator[RunResult]:
        """Run ``specs`` as Ray tasks; yields each result as its task finishes."""
        check_devices(specs, "cuda" if self.gpus else "cpu")
        pending = [replace(s, threads=self.cpus_per_run) for s in specs]
        limit = self.jobs or len(pending)
        running: dict = {}
        try:
            while pending or running:
                while pending and len(running) < limit:
                    spec = pending.pop(0)
                    running[self.task.remote(spec)] = spec
                    log(f"  submitted {spec.name}")
                done, _ = self.ray.wait(list(running), num_returns=1)
                for ref in done:
                    spec = running.pop(ref)
                    try:
                        result = self.ray.get(ref)
                    except Exception as exc:  # the task's worker or node died
                        text = str(exc).strip().splitlines()
                        result = RunResult(spec, error=f"its Ray task failed ({type(exc).__name__}"
                                                       f"{': ' + text[0] if text else ''})")
                    yield result
        finally:
            for ref in running:
                self.ray.cancel(ref, force=True)

    def close(self) -> None:
        """Disconnect from Ray (a local cluster started here is stopped)."""
        self.ray.shutdown()
