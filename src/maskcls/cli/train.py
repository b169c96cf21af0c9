"""maskcls train: one run folder (or, with --fold all, one per fold plus the out-of-fold probabilities)."""

from __future__ import annotations

import argparse
import sys

from .common import CORR_HELP, DATA_HELP, launch_args, launch_asked, launch_options, setting_args, setting_flags


def fold_arg(text: str) -> int | str:
    """argparse type of --fold: a fold number, 'all' or 'none'."""
    if text in ("all", "none"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fold number, 'all' or 'none', got {text!r}") from None


def add_parser(sub) -> None:
    """Add `maskcls train` to the command line: its options and their help."""
    p = sub.add_parser("train", help="train a model; writes a run folder",
                       description="Train on DATA with a person-level validation fold. RUN/ receives config.yaml, "
                                   "best.pt (best validation macro F1), last.pt, metrics.csv, summary.json, "
                                   "curves.png, per_class_f1.png, confusion.png, val_predictions.csv, val_probs.csv and "
                                   "tb/ (TensorBoard). --fold all trains every fold into RUN/fold-K and writes "
                                   "RUN/oof_probs.csv and RUN/cv_summary.json. --fold none trains the submission model "
                                   "on every person for a fixed budget (--epochs-from a --fold all run) and keeps "
                                   "the last epoch.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--out", required=True, metavar="RUN", help="run folder to create (or continue with --resume)")
    from ..config import DEFAULT_CONFIG_RULE

    p.add_argument("--config", default=None,
                   help="YAML file or built-in name: default (ResNet50 GPU recipe), demo (CPU-sized), plain (the "
                        f"common baseline loop, for comparisons), gpu-resnet50, real-cpu (real face photos on a CPU: "
                        f"the demo's budget with face features). With --resume: RUN's own; otherwise "
                        f"the {DEFAULT_CONFIG_RULE}")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set train.epochs=5 --set model.name=convnext_tiny")
    p.add_argument("--corrections", default=None, help=CORR_HELP + " (default: the config's data.corrections: 'known' in the default "
                        "config, 'none' in demo and plain; `maskcls config --config NAME` shows it)")
    p.add_argument("--fold", default=None, type=fold_arg, metavar="K|all|none",
                   help="which person-level fold to hold out (default: data.fold, 0); 'all' trains every fold into "
                        "RUN/fold-K and writes RUN/oof_probs.csv (out-of-fold probabilities) and RUN/cv_summary.json; "
                        "'none' holds no one out: every person trains for train.epochs, nothing is validated, the "
                        "last epoch is kept (a final fit, for the submission)")
    from ..training.budget import RULE

    p.add_argument("--epochs-from", default=None, metavar="CV_RUN",
                   help=f"with --fold none: train.epochs from a finished --fold all run, {RULE}; its settings "
                        "are the recipe unless --config is given (which must then match them)")
    p.add_argument("--resume", action="store_true", help="continue RUN from last.pt")
    setting_args(p)
    launch_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls train` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from pathlib import Path

    from ..config import default_config_name, train_config
    from ..errors import UserError

    if args.fold != "all" and launch_asked(args):
        raise UserError("--jobs/--devices/--launcher/--ray-address/--cpus-per-run train several runs at once: "
                        "use them with --fold all (one run on several GPUs is torchrun's job)")
    overrides = [*args.set, *setting_flags(args)]
    shown = list(overrides)  # what the user set, for the config line (--epochs-from's epochs has its own line)
    budget, config, overrides = _epochs_from(args, overrides)
    cfg = train_config(args.out, config=config, overrides=overrides, corrections=args.corrections,
                       fold=args.fold, resume=args.resume)
    if budget is not None:
        from ..training.budget import check_same_recipe

        check_same_recipe(args.epochs_from, cfg)
    saved = Path(args.out) / "config.yaml"
    name = config or (saved if args.resume and saved.is_file() else default_config_name())
    _announce(args, cfg, budget, name, shown, chosen=config is None and not args.resume)
    from ..training.runtime import distributed_from_env

    try:
        with distributed_from_env():  # torchrun: join the process group; one process: nothing to do
            if args.fold == "all":
                from ..experiments.launch import open_launcher
                from ..training.folds import train_folds

                with open_launcher(**launch_options(args)) as launcher:
                    train_folds(cfg, args.data, args.out, launcher=launcher, progress=not args.quiet, log=print)
            else:
                from ..training.fit import train

                train(cfg, args.data, args.out, resume=args.resume, progress=not args.quiet, log=print,
                      budget=budget)
    except KeyboardInterrupt:
        print(f"interrupted; continue with: maskcls train {args.data} --out {args.out} --resume", file=sys.stderr)
        return 130
    return 0


def _epochs_from(args: argparse.Namespace, overrides: list[str]) -> tuple:
    """--epochs-from: the budget of a final fit read from a held-out study, its epochs added to the
    settings and its recipe's config chosen when none is given. Returns (budget or None, config, overrides)."""
    from pathlib import Path

    from ..errors import UserError

    if args.epochs_from is None:
        return None, args.config, overrides
    if args.fold != "none":
        raise UserError("--epochs-from sets the budget of a final fit on every person: use it with --fold none")
    from ..config import set_values
    from ..training.budget import epochs_from, recipe_config

    budget, config = epochs_from(args.epochs_from), args.config
    given = set_values(overrides, "train.epochs")
    if any(v != str(budget.epochs) for v in given):
        raise UserError(f"--epochs-from {args.epochs_from} sets train.epochs ({budget.epochs}); "
                        f"--set train.epochs={given[-1]} contradicts it: give one")
    overrides = overrides + ([] if given else [f"train.epochs={budget.epochs}"])
    if config is None and not (args.resume and (Path(args.out) / "config.yaml").is_file()):
        config = recipe_config(args.epochs_from)
    return budget, config, overrides


def _announce(args: argparse.Namespace, cfg, budget, name, shown: list[str], *, chosen: bool) -> None:
    """The first lines (rank 0 only): lowered threads, no one held out (--fold none), the config."""
    from ..config import describe_config
    from ..training.runtime import is_main
    from ..training.threads import apply as apply_threads

    # measured and set now, so the first line says it; training then finds the count already lowered
    threads = apply_threads(cfg.train.threads)
    if not is_main():
        return
    if threads.reduced:
        print(threads.describe(), flush=True)
    if args.fold == "none":  # the first line says that no one is held out and where the budget came from
        from ..training.budget import Budget

        print(no_holdout_line(args.data, budget or Budget(cfg.train.epochs, "config")), flush=True)
    print(describe_config(name, shown, cfg, chosen=chosen), flush=True)


def no_holdout_line(data: str, budget) -> str:
    """The first line of a --fold none run: no one is held out, and where its epochs came from."""
    return (f"--fold none: every person of {data} trains and no one is held out, so nothing is validated; "
            f"{budget.describe()}; the last epoch is kept")
