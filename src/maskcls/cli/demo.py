"""maskcls demo: the main job on built-in synthetic data, end to end, CPU-sized."""

from __future__ import annotations

import argparse

from .common import device_arg, workers_arg


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="the main job on built-in synthetic data, end to end, CPU-sized",
                       description="Generate synthetic demo data, validate it, train, predict and report.")
    p.add_argument("--out", default="demo-output", help="folder for the demo data and run (default demo-output)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting of configs/demo.yaml, e.g. --set train.epochs=2")
    device_arg(p, default=None, help="auto (GPU when there is one), cpu or cuda; the same as --set train.device=...")
    workers_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    extra = [f"train.device={args.device}"] if args.device else []
    extra += [f"data.workers={args.workers}"] if args.workers is not None else []
    run_demo(args.out, overrides=(*args.set, *extra))
    return 0
