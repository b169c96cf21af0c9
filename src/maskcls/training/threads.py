"""How many CPU threads a training uses (``train.threads``).

Torch's CPU thread pool spins while it waits for its slowest thread. When another process keeps a
core busy, the thread on that core runs a fraction of the time and every other thread spins waiting
for it: measured beside one busy process on 2 cores, a 2-thread training ran many times slower, not
2x (`python benchmarks/busy_threads.py`). ``train.threads=0`` (auto, the default) therefore measures,
once per process and for a quarter of a second, how many cores other processes keep busy, and trains
on the cores that are left (at least one). A number fixes it; so does OMP_NUM_THREADS, which the
launcher's workers and users set on purpose.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

SAMPLE_SECONDS = 0.25
BUSY_CORE = 0.5  # a core counts as taken when other processes keep it busy at least half the time


@dataclass(frozen=True)
class Threads:
    n: int  # threads torch uses
    cores: int  # cores this process may run on
    busy: float | None  # cores other processes kept busy while we measured (None: not measured)
    source: str  # "auto", "train.threads" or "OMP_NUM_THREADS"
    before: int = 0  # torch's count when auto chose (0: not auto)

    @property
    def reduced(self) -> bool:
        """maskcls lowered the threads because other processes keep cores busy: the user is told."""
        return self.source == "auto" and self.n < self.before

    def describe(self) -> str:
        """One line: the threads chosen and why (lowered beside other busy processes)."""
        if self.reduced:
            return (f"threads: {self.n} of {self.cores} cores, since other processes keep {self.busy:.1f} busy "
                    f"(shared cores make torch's threads wait for each other; train.threads=N to choose)")
        return f"threads: {self.n} ({self.source})"


def busy_cores(seconds: float = SAMPLE_SECONDS) -> float | None:
    """Cores that processes other than this one kept busy over ``seconds`` (from /proc/stat, minus this
    process's own CPU time); None where /proc/stat cannot be read."""
    def total_and_busy() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values[:8]), sum(values[:8]) - idle

    try:
        total0, busy0 = total_and_busy()
        own0, wall0 = sum(os.times()[:2]), time.monotonic()
        time.sleep(seconds)
        total1, busy1 = total_and_busy()
        own1, wall1 = sum(os.times()[:2]), time.monotonic()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    cores_in_stat = (total1 - total0) / tick / (wall1 - wall0)  # the machine's cores, as /proc/stat counts them
    busy = (busy1 - busy0) / (total1 - total0) * cores_in_stat - (own1 - own0) / (wall1 - wall0)
    return max(0.0, busy)


def cores() -> int:
    """The cores this process may run on (its CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_busy: list[float | None] = []  # the one measurement of this process (a command's folds share it)


def choose(setting: int = 0) -> Threads:
    """The thread count for ``train.threads`` (0: auto). Auto measures once per process and only ever
    lowers torch's current count (a caller's own torch.set_num_threads stands), by the cores other
    processes keep busy."""
    import torch

    n_cores = cores()
    if setting:
        return Threads(int(setting), n_cores, None, "train.threads")
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return Threads(int(env), n_cores, None, "OMP_NUM_THREADS")
    if not _busy:
        _busy.append(busy_cores())
    busy = _busy[0]
    current = max(1, min(n_cores, torch.get_num_threads()))
    taken = int(busy + 1 - BUSY_CORE) if busy is not None else 0  # 0.5 -> 1 core taken, 0.4 -> none
    return Threads(max(1, min(current, n_cores - taken)), n_cores, busy, "auto", current)


def apply(setting: int = 0) -> Threads:
    """Choose and set torch's intra-op threads; returns the choice (its ``describe`` for the log)."""
    import torch

    chosen = choose(setting)
    if torch.get_num_threads() != chosen.n:
        torch.set_num_threads(chosen.n)
    return chosen
