"""How much do --jobs and Ray save on a small ablation? Times one 4-run ablation (2 variants x 2 seeds
x 1 fold on synthetic data) three ways: sequential (the default, one process), --jobs 2 (two spawned
processes) and a local Ray, then prints the wall times and the speed-ups as ratios. Never asserts; the
three results.csv are checked to hold the same figures.

    python benchmarks/launch_bench.py [--people 48] [--epochs 2] [--jobs 2] [--config demo] [--set KEY=VALUE ...]

On a CPU the runs share the cores: two jobs on 2 cores gain little beyond hiding the set-up (imports,
data preparation); the real use is one run per GPU, where N GPUs give close to N times the runs.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from _cli import positive, run
from maskcls.errors import UserError

SIZE = "data.size=48x64"


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--people", type=positive, default=48, help="synthetic training people (default: %(default)s)")
    parser.add_argument("--epochs", type=positive, default=2, help="epochs per run (default: %(default)s)")
    parser.add_argument("--jobs", type=positive, default=2, help="runs at once for --jobs and Ray (default: %(default)s)")
    parser.add_argument("--config", default="demo", help="base config (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting on top (repeatable)")
    args = parser.parse_args()
    from maskcls.data.synth import make_dataset
    from maskcls.experiments.ablate import ablate
    from maskcls.experiments.launch import LocalPool, RayLauncher

    sets = ("model.name=test_resnet", SIZE, "data.folds=3", f"train.epochs={args.epochs}", "train.tensorboard=false",
            *args.set)
    quiet = {"progress": False, "log": lambda s: None}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        make_dataset(data, people=args.people, eval_people=2, noise=0.0, seed=0, size=(48, 64), workers=1)
        seconds, tables = {}, {}

        def timed(name: str, launcher) -> None:
            start = time.perf_counter()
            ablate(data, Path(tmp) / name, ["none", "hflip"], seeds=2, folds=1, config=args.config, overrides=sets,
                   launcher=launcher, **quiet)
            seconds[name] = time.perf_counter() - start
            tables[name] = pd.read_csv(Path(tmp) / name / "results.csv").drop(columns="seconds_per_epoch")
            print(f"{name}: {seconds[name]:.1f} s", flush=True)

        timed("sequential", None)
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
        timed("jobs", LocalPool(["cpu"] * args.jobs, threads=threads))
        try:
            start = time.perf_counter()
            ray = RayLauncher(num_cpus=args.jobs, log=lambda s: None)
            ray_start = time.perf_counter() - start
            try:
                timed("ray", ray)
            finally:
                ray.close()
        except UserError as exc:
            print(f"ray: not measured ({exc})")
            ray_start = None
        same = {k: bool(t.equals(tables["sequential"])) for k, t in tables.items() if k != "sequential"}
        report = {"runs": 4, "cores": os.cpu_count(), "jobs": args.jobs, "threads_per_job": threads,
                  "seconds": {k: round(v, 1) for k, v in seconds.items()},
                  "ray_start_seconds": None if ray_start is None else round(ray_start, 1),
                  "speedup_jobs": round(seconds["sequential"] / seconds["jobs"], 2),
                  "speedup_ray": round(seconds["sequential"] / seconds["ray"], 2) if "ray" in seconds else None,
                  "same_results_as_sequential": same}
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    run(main)
