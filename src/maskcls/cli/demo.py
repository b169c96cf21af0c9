"""maskcls demo: the main job on built-in synthetic data, end to end, CPU-sized."""

from __future__ import annotations

import argparse

from .common import at_least, device_arg, workers_arg


def add_parser(sub) -> None:
    """Add `maskcls demo` to the command line: its options and their help."""
    p = sub.add_parser("demo", help="the main job on built-in synthetic data, end to end, CPU-sized",
                       description="Generate synthetic demo data, validate it, train, predict and report.")
    p.add_argument("--out", default="demo-output", help="folder for the demo data and run (default demo-output)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting of configs/demo.yaml, e.g. --set train.epochs=2")
    p.add_argument("--people", type=at_least(8), default=None,
                   help="synthetic training people (default 240); fewer is faster and scores lower")
    p.add_argument("--eval-people", type=at_least(1), default=None, help="people in the eval folder (default 30)")
    p.add_argument("--size", default=None, metavar="WxH",
                   help="photo size, both generated and fed to the model (default 96x128; the same as --set "
                        "data.size=WxH for the model)")
    p.add_argument("--epochs", type=at_least(1), default=None,
                   help="training epochs (default 12, configs/demo.yaml; the same as --set train.epochs=N)")
    device_arg(p, default=None, help="auto (GPU when there is one), cpu or cuda; the same as --set train.device=...")
    workers_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls demo` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..demo import DEMO_EVAL_PEOPLE, DEMO_PEOPLE, run_demo

    extra = [f"train.device={args.device}"] if args.device else []
    extra += [f"data.workers={args.workers}"] if args.workers is not None else []
    extra += [f"data.size={args.size}"] if args.size is not None else []
    extra += [f"train.epochs={args.epochs}"] if args.epochs is not None else []
    run_demo(args.out, overrides=(*args.set, *extra), people=args.people or DEMO_PEOPLE,
             eval_people=args.eval_people or DEMO_EVAL_PEOPLE)
    return 0
