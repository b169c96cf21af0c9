"""maskcls ablate: variants trained on the same folds and seeds; paired deltas with intervals."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import DATA_HELP, FOLDS_HELP, at_least, config_args, launch_args, launch_options, resolve_config, setting_args, setting_flags
from .improve import KEY_HELP


def add_parser(sub) -> None:
    """Add `maskcls ablate` to the command line: its options and their help."""
    p = sub.add_parser("ablate", help="train variants on the same folds and seeds; report paired deltas",
                       description="Train every variant x seed x fold from one prepared dataset and write "
                                   "OUT/results.csv, OUT/table.md (mean +- std, paired delta and ratio to the "
                                   "first variant with 95% intervals) and OUT/ablation.png. Every run keeps its "
                                   "last epoch and is scored on its held-out fold against one answer key (--key). "
                                   "A variant is preset names and/or key=value settings joined by +, e.g. hflip+vflip or "
                                   "data.corrections=none. Re-running skips finished runs.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--out", required=True, help="folder for results (re-use it to add runs)")
    p.add_argument("--variants", required=True, help="comma-separated variants; the first is the baseline")
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant (default 3)")
    p.add_argument("--folds", type=at_least(2), default=None, metavar="K", help=FOLDS_HELP)
    p.add_argument("--run-folds", type=at_least(1), default=None, metavar="N",
                   help="train only folds 0..N-1 of the K (a cheaper, noisier ablation; default: all K)")
    config_args(p, help="base config, a YAML file or built-in name", set_help="a setting for every variant")
    p.add_argument("--key", default=None, metavar="FILE",
                   help=KEY_HELP + "; needed when variants differ in data.corrections (default: the labels the "
                        "variants share)")
    setting_args(p)
    launch_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls ablate` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..experiments.ablate import ablate, parse_variants
    from ..experiments.launch import open_launcher

    variants = parse_variants(args.variants)
    args.set = [*args.set, *setting_flags(args)]
    if args.folds:
        from ..config import with_option

        args.set = with_option(args.set, "data.folds", args.folds, "--folds")
    resolve_config(args)
    with open_launcher(**launch_options(args)) as launcher:
        results = ablate(args.data, args.out, variants, seeds=args.seeds, folds=args.run_folds,
                         config=args.config, overrides=tuple(args.set), key=args.key, launcher=launcher)
    print((Path(args.out) / "table.md").read_text(), end="")
    failed = results[results["status"] != "ok"]
    if len(failed):
        print(f"{len(failed)} of {len(results)} runs failed (first: {failed['variant'].iloc[0]}: "
              f"{failed['error'].iloc[0]}); see {Path(args.out) / 'results.csv'}. Rerun the same command to "
              "retry them.", file=sys.stderr)
        return 1
    return 0

