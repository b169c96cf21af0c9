"""One independent training as a launcher takes it (``RunSpec``), what comes back (``RunResult``) and
the function a worker process runs for it (``execute``).

The commands that train several runs (``train --fold all``, ``ablate``, ``audit``) describe each run
as a RunSpec and hand the list to a launcher (experiments.launch: local processes or Ray), which runs
``execute`` somewhere and yields the results as runs finish. The parent alone reads the results and
writes the tables; each run writes only its own folder. This module stays light to import (no torch
at the top): a fresh worker must be able to choose its GPU and thread count before torch loads.
"""

from __future__ import annotations

import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

import pandas as pd

from ..errors import UserError, user_message


@dataclass(frozen=True)
class RunSpec:
    """A run: its settings (``Config.to_dict()``), its data (an absolute path every worker sees, or a
    DataFrame in the manifest columns), its run folder (absolute) and whether to resume it from last.pt.
    ``device`` ('cpu', 'cuda:K', or '' for whatever the worker was given) and ``threads`` are filled in
    by the launcher."""

    name: str
    config: dict
    data: str | pd.DataFrame
    out: str
    resume: bool = False
    device: str = ""
    threads: int = 0


@dataclass
class RunResult:
    """A finished run: summary.json's content, or ``error`` (one line) and its traceback when it failed."""

    spec: RunSpec
    summary: dict | None = None
    error: str = ""
    traceback: str = ""
    node: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the run finished with a summary and no error."""
        return self.summary is not None and not self.error


class Launcher(Protocol):
    """What the callers need of a launcher: run the specs (all at once, as slots allow) and yield a
    result for every one of them, in the order they finish. A run's failure is a result, not an exception."""

    def run(self, specs: list[RunSpec], *, log: Callable[[str], None] = print) -> Iterator[RunResult]:
        """Run ``specs``; yield each result as its run finishes."""
        ...


def spec_data(data) -> str | pd.DataFrame:
    """DATA as a worker in another process (or on another node) can take it: an absolute path or a DataFrame."""
    from ..data.prepare import Prepared

    if isinstance(data, Prepared):
        if data.source == "DataFrame":
            raise UserError("runs in other processes need DATA as a path or a DataFrame, not a Prepared "
                            "dataset made from a DataFrame; pass the DataFrame itself")
        return data.source
    if isinstance(data, pd.DataFrame):
        return data
    return str(Path(data).resolve())


def execute(spec: RunSpec) -> RunResult:
    """Prepare the spec's data and train it into its folder, here, without progress bars; its log lines
    are printed tagged with the run's name. Every failure is returned
    as the result's error (a user's mistake as its one line; a crash with its traceback)."""
    node = socket.gethostname()
    start = time.perf_counter()
    try:
        if isinstance(spec.data, str) and not Path(spec.data).exists():
            raise UserError(f"{spec.data}: not found on {node}; every worker must see DATA (and OUT) at the same "
                            "path (a shared folder on a cluster)")
        if spec.threads:
            import torch

            torch.set_num_threads(spec.threads)
        from .. import config as config_mod
        from ..data.prepare import prepare
        from .fit import train

        cfg = config_mod.from_dict(spec.config)
        prepared = prepare(cfg, spec.data, log=lambda s: None)
        summary = train(cfg, prepared, spec.out, resume=spec.resume, progress=False, log=_tagged(spec.name))
        return RunResult(spec, summary=summary, node=node, seconds=time.perf_counter() - start)
    except UserError as exc:
        return RunResult(spec, error=user_message(exc).splitlines()[0], node=node,
                         seconds=time.perf_counter() - start)
    except Exception as exc:  # a crash of one run must reach the parent as that run's failure
        return RunResult(spec, error=f"{type(exc).__name__}: {exc}".splitlines()[0], traceback=traceback.format_exc(),
                         node=node, seconds=time.perf_counter() - start)


def _tagged(name: str) -> Callable[[str], None]:
    """A worker's log: each line of its training (the per-epoch scores, the end) printed whole and tagged
    with the run's name, so several runs' lines can share one terminal (Ray forwards a worker's output
    to the driver's) without mixing inside a line."""
    def log(text: str) -> None:
        for line in str(text).splitlines():
            print(f"  [{name}] {line}", flush=True)
    return log


def failure_line(results: Iterable[RunResult], total: int) -> str:
    """'2 of 6 runs failed (fold 3: <error>)': the one line a command ends with when runs failed."""
    failed = [r for r in results if not r.ok]
    first = failed[0]
    return f"{len(failed)} of {total} runs failed ({first.spec.name}: {first.error})"
