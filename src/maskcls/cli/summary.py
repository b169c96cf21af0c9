"""maskcls summary: people, photos and counts per label."""

from __future__ import annotations

import argparse
import json
import sys

from .common import CORR_HELP, DATA_HELP, data_setting_args, data_settings


def add_parser(sub) -> None:
    """Add `maskcls summary` to the command line: its options and their help."""
    p = sub.add_parser("summary", help="count people, photos and labels",
                       description="People, photos and counts per mask, gender, age group and class; with faces "
                                   "cached by `maskcls faces DATA`, the identity checks too (photos whose face is "
                                   "not their person's, ids with one face).")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--corrections", default="none", help=CORR_HELP + " (default none)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    data_setting_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls summary` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..data.summary import format_summary, summarize
    from ..data.table import load_table

    cfg = data_settings(args)  # --set data.allow_outside counts here as on every command that reads DATA
    ages = cfg.cutoffs
    table, report = load_table(args.data, cutoffs=ages, corrections=args.corrections,
                               allow_outside=cfg.data.allow_outside)
    info = summarize(table, ages)
    from ..faces.checks import checks_or_note

    # The identity checks on the faces the cache holds (`maskcls faces DATA`); nothing is computed here.
    checks = checks_or_note(table, cache_dir=cfg.data.cache_dir or None, cascade=cfg.data.face_detectors,
                            note=lambda line: print(line, file=sys.stderr))
    if checks is not None:
        info["identity"] = checks.summary()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        if args.corrections != "none":
            print(report.summary())
            for line in report.lines():
                print(f"correction: {line}")
        print(format_summary(info))
        if checks is not None:
            for line in checks.lines():
                print(line)
    return 0
