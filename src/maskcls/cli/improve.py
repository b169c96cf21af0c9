"""maskcls improve: what label corrections buy, paired runs without and with them on one answer key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import DATA_HELP, at_least, config_args, launch_args, launch_options, resolve_config, setting_args, setting_flags

KEY_HELP = ("the answer key every run is scored on: an answer-key CSV (person,image,mask,gender,age; demo-data "
            "writes DATA/truth/train_truth.csv) or corrections (known | none | CSV) applied to DATA's labels")


def add_parser(sub) -> None:
    """Add `maskcls improve` to the command line: its options and their help."""
    p = sub.add_parser("improve", help="what label corrections buy: paired runs without and with them, one answer key",
                       description="Train without and with the corrections FILE on every person-level fold x seed "
                                   "and score every run on ONE answer key (the labels with FILE applied, or --key), "
                                   "each on the held-out people of its fold with its last epoch (no checkpoint is "
                                   "chosen on them). Prints and writes OUT/table.md (gain in macro F1, accuracy and "
                                   "per task with 95% intervals), OUT/results.csv and OUT/improve.png. Re-running "
                                   "reuses finished runs.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--corrections", required=True, metavar="FILE",
                   help="the corrections to measure (a corrections CSV, e.g. AUDIT/accepted_corrections.csv); "
                        "rows naming people not in DATA are counted and ignored, a FILE that changes nothing is refused")
    p.add_argument("--out", required=True, help="folder for the results (re-use it to resume or add seeds)")
    p.add_argument("--seeds", type=at_least(1), default=3, help="seeds per arm (default 3)")
    p.add_argument("--folds", type=at_least(2), default=3, metavar="K",
                   help="K person-level folds, every one trained (default 3; --set data.folds is refused here)")
    p.add_argument("--key", default=None, metavar="FILE", help=KEY_HELP + " (default: DATA's labels with FILE applied)")
    config_args(p, help="base config, a YAML file or built-in name", set_help="a setting for both arms")
    setting_args(p)
    launch_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls improve` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..experiments.improve import improve
    from ..experiments.launch import open_launcher

    args.set = [*args.set, *setting_flags(args)]
    resolve_config(args)
    with open_launcher(**launch_options(args)) as launcher:
        table = improve(args.data, args.corrections, args.out, seeds=args.seeds, folds=args.folds, key=args.key,
                        config=args.config, overrides=tuple(args.set), launcher=launcher)
    print((Path(args.out) / "table.md").read_text(), end="")
    if int(table["failed"].max()):
        print(f"some runs failed; see {Path(args.out) / 'results.csv'}. Rerun the same command to retry them.",
              file=sys.stderr)
        return 1
    return 0
