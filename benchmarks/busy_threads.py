"""Training beside other busy processes: how much slower is it, with torch's default threads, with
maskcls's automatic choice (train.threads=0), and with OpenMP's passive wait policy? Times the training
epochs of `maskcls train` (the demo recipe, small synthetic data) idle and beside 1 and 2 busy
single-thread processes, and prints img/s and each figure's slowdown against idle. Never asserts.

    python benchmarks/busy_threads.py [--people 32] [--epochs 2] [--repeats 2] [--config demo] [--set KEY=VALUE ...]

Each busy process is one thread of float matrix products (what another training on one thread does).
Throughput is the training img/s of the last epoch in metrics.csv (the first one warms up); the median of
--repeats. Run it on an otherwise quiet machine: it makes its own load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from _cli import positive, run

BUSY = ("import torch\ntorch.set_num_threads(1)\na = torch.randn(384, 384)\n"
        "while True:\n    a = torch.tanh(a @ a)\n")


def busy_processes(n: int) -> list[subprocess.Popen]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", BUSY], env=env) for _ in range(n)]
    time.sleep(3)  # torch imported, products running
    return procs


def train_speed(data: Path, out: Path, threads: str | None, *, wait_policy: str | None, epochs: int,
                config: str, sets: list[str]) -> tuple[float, str]:
    """Training img/s of the last epoch, and the thread line maskcls printed."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    argv = [sys.executable, "-m", "maskcls", "train", str(data), "--out", str(out), "--config", config, "--quiet"]
    for kv in [f"train.epochs={epochs}", "train.trackers=none", "data.folds=4", *sets,
               *([f"train.threads={threads}"] if threads is not None else [])]:
        argv += ["--set", kv]
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training failed:\n{done.stderr[-2000:]}")
    said = next((line for line in done.stdout.splitlines() if line.startswith("threads:")), "")
    speed = float(pd.read_csv(out / "metrics.csv")["images_per_s"].iloc[-1])
    return speed, said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=positive, default=32)
    parser.add_argument("--epochs", type=positive, default=2)
    parser.add_argument("--repeats", type=positive, default=2)
    parser.add_argument("--config", default="demo")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    cases = [  # (busy processes, train.threads, OMP_WAIT_POLICY, label)
        (0, None, None, "idle, auto"),
        (1, "2", None, "1 busy, 2 threads (torch's default)"),
        (1, "2", "PASSIVE", "1 busy, 2 threads, OMP_WAIT_POLICY=PASSIVE"),
        (1, None, None, "1 busy, auto"),
        (2, "2", None, "2 busy, 2 threads (torch's default)"),
        (2, None, None, "2 busy, auto"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        subprocess.run([sys.executable, "-m", "maskcls", "demo-data", str(data), "--people", str(args.people),
                        "--eval-people", "1", "--quiet"], check=True, capture_output=True)
        rows = []
        for busy, threads, policy, label in cases:
            speeds, said = [], ""
            for r in range(args.repeats):
                procs = busy_processes(busy)
                try:
                    speed, said = train_speed(data, Path(tmp) / f"run-{len(rows)}-{r}", threads, wait_policy=policy,
                                              epochs=args.epochs, config=args.config, sets=args.set)
                finally:
                    for p in procs:
                        p.kill()
                        p.wait()
                speeds.append(speed)
            rows.append((label, statistics.median(speeds), speeds, said))
            print(f"{label}: {statistics.median(speeds):.1f} img/s {['%.1f' % s for s in speeds]} {said}", flush=True)
    idle = rows[0][1]
    print(f"\n{args.people} people, {args.config} config, {args.epochs} epochs, median of {args.repeats}; "
          f"{os.cpu_count()} cores\n")
    print("| case | training img/s | slowdown vs idle |")
    print("|---|---|---|")
    for label, speed, _, _ in rows:
        print(f"| {label} | {speed:.1f} | {idle / speed:.1f}x |")


if __name__ == "__main__":
    run(main)
