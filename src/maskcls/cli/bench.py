"""maskcls bench: throughputs of the data pipeline, the model and the real steps, and their ratios."""

from __future__ import annotations

import argparse
import json

from .common import DATA_HELP, config_args, device_arg, resolve_config, workers_arg


def add_parser(sub) -> None:
    """Add `maskcls bench` to the command line: its options and their help."""
    p = sub.add_parser("bench", help="throughput of the data pipeline, the model and the real steps, as JSON",
                       description="Print one JSON object: loader_img_s (the data pipeline alone, with the photo "
                                   "cache), model_img_s (forward+backward on random tensors: the ceiling), "
                                   "train_img_s (the real training step), train_ratio = train/model, the same for "
                                   "prediction, the loader without the cache and a reference loader written the "
                                   "common baseline's way (PIL + torchvision per photo). Medians of --repeats.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--model", default=None, help="model name (default: the config's)")
    p.add_argument("--size", default=None, help="WIDTHxHEIGHT (default: the config's)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: the config's)")
    p.add_argument("--steps", type=int, default=20, help="steps per timing (default 20)")
    p.add_argument("--repeats", type=int, default=3, help="timings per figure; the median is printed (default 3)")
    device_arg(p, default=None, help="auto, cpu or cuda (default: the config's)")
    workers_arg(p, help="loader processes (default: the config's data.workers: 0 in the CPU configs, the machine's cores, "
                              "at most 8, in default.yaml)")
    config_args(p, help="base config, a YAML file or built-in name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls bench` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..experiments.bench import bench, bench_config

    resolve_config(args, announce=False)  # the JSON names the model, size and device
    cfg = bench_config(args.config, args.set, model=args.model, size=args.size, batch=args.batch, device=args.device,
                       workers=args.workers)
    print(json.dumps(bench(cfg, args.data, steps=args.steps, repeats=args.repeats, progress=not args.quiet), indent=2))
    return 0
