"""maskcls eda: a report on a dataset (report.html, PNG plots, summary.json)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import CORR_HELP, DATA_HELP, data_setting_args, data_settings, workers_arg, workers_value


def add_parser(sub) -> None:
    """Add `maskcls eda` to the command line: its options and their help."""
    p = sub.add_parser("eda", help="a report on a dataset: counts, ages, sizes, duplicates, samples",
                       description="Write DIR/report.html (opens from disk) with PNG plots beside it and "
                                   "DIR/summary.json: people, photos, counts per mask / gender / age group / class "
                                   "and the imbalance, the age histogram with the cut-offs, photos that do not "
                                   "decode, near-duplicate photos across different people, sample photos per "
                                   "class, the mean face per mask state, and what corrections change.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--out", required=True, metavar="DIR", help="folder to create (must not exist or be empty)")
    p.add_argument("--corrections", default="none", help=CORR_HELP + " (default none)")
    workers_arg(p, help="decoding threads (default: the machine's cores, at most 8)")
    p.add_argument("--faces", default="cached", choices=("cached", "compute", "off"),
                   help="the identity section (pretrained face model): cached (default) uses the faces `maskcls "
                        "faces DATA` stored, compute computes the missing ones first, off leaves it out")
    p.add_argument("--dup-threshold", type=int, default=8,
                   help="near-duplicate distance in bits of a 256-bit perceptual hash (default 8)")
    p.add_argument("--allow-outside", action="store_true", default=None,
                   help="accept manifest paths outside its folder (the same as --set data.allow_outside=true)")
    data_setting_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls eda` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..reports.eda import make_report

    cfg = data_settings(args)
    info = make_report(args.data, args.out, corrections=args.corrections, cutoffs=cfg.cutoffs,
                       workers=max(1, workers_value(args)), dup_threshold=args.dup_threshold,
                       allow_outside=cfg.data.allow_outside, faces=args.faces,
                       cache_dir=cfg.data.cache_dir or None, cascade=cfg.data.face_detectors,
                       progress=not args.quiet)
    print(f"wrote {Path(args.out) / 'report.html'} ({info.get('people', '?')} people, {info.get('photos', '?')} photos); "
          f"open it in a browser")
    return 0
