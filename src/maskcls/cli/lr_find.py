"""maskcls lr-find: the learning-rate range test (DIR/lr_find.png, DIR/lr_find.csv, the suggested train.lr)."""

from __future__ import annotations

import argparse
import sys

from .common import DATA_HELP, at_least, config_args, resolve_config, setting_args, setting_flags


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_parser(sub) -> None:
    """Add `maskcls lr-find` to the command line: its options and their help."""
    p = sub.add_parser("lr-find", help="learning-rate range test: DIR/lr_find.png and the suggested train.lr",
                       description="A short training run on DATA's training folds with the learning rate rising "
                                   "exponentially each step (the range test of fastai and torch-lr-finder), with the "
                                   "configured model, loss, augmentation and mixing. Writes DIR/lr_find.png (loss "
                                   "against rate, the suggested rate marked) and DIR/lr_find.csv, and prints the "
                                   "suggested train.lr: the steepest descent of the smoothed loss. No weights or "
                                   "checkpoints are kept.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for lr_find.png and lr_find.csv")
    p.add_argument("--start-lr", type=_positive_float, default=1e-7, help="first learning rate (default 1e-7)")
    p.add_argument("--end-lr", type=_positive_float, default=10.0, help="last learning rate (default 10)")
    p.add_argument("--steps", type=at_least(5), default=100,
                   help="optimizer steps from the first to the last rate; the data repeats if needed (default 100)")
    p.add_argument("--force", action="store_true", help="replace DIR/lr_find.png and DIR/lr_find.csv")
    config_args(p, help="YAML file or built-in name")
    setting_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls lr-find` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..training.lr_find import lr_find

    args.set = [*args.set, *setting_flags(args)]
    cfg = resolve_config(args)
    result = lr_find(cfg, args.data, args.out, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps,
                     force=args.force, progress=not args.quiet)
    stop = "; stopped early when the loss blew up" if result["stopped_early"] else ""
    print(f"wrote {' and '.join(str(f) for f in result['files'])} ({result['steps']} steps{stop}); lowest loss at "
          f"{result['min_loss_lr']:.2g}")
    print(f"suggested train.lr={result['suggested_lr']:.2g}")
    low, high = result["band"]
    if not result["fell"]:
        print(f"warning: the loss did not fall at any rate tried (its lowest is at the first steps, "
              f"{result['min_loss_lr']:.2g}): the suggestion is only the start of the range, not a rate to train with. "
              "Run more --steps (the default 100), a lower --start-lr, or check the data; keep the config's rate "
              "meanwhile", file=sys.stderr)
    elif result["unstable"]:
        print(f"warning: the suggestion is unstable: with other smoothings of the same curve it moves from {low:.2g} "
              f"to {high:.2g} ({high / low:.0f}x); the curve is too short or noisy to pick a rate. Run more --steps "
              "(or a larger train.batch_size) and read the plot; keep the config's rate meanwhile", file=sys.stderr)
    return 0
