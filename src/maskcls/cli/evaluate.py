"""maskcls evaluate: the metrics JSON of a run (or an ensemble) on its validation fold or labelled data."""

from __future__ import annotations

import argparse
import json

from .common import DATA_HELP, inference_args, runs_args, runs_of, workers_value


def add_parser(sub) -> None:
    """Add `maskcls evaluate` to the command line: its options and their help."""
    from ..serve.backends import SPLITS

    p = sub.add_parser("evaluate", help="metrics of a run on its validation fold or a labelled set",
                       description="Print the metrics of RUN's best model, as `maskcls score` prints them (--json: "
                                   "the JSON): on its validation fold when DATA is the data it trained on, otherwise "
                                   "on every labelled photo of DATA.")
    runs_args(p)
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--split", default="auto", choices=SPLITS,
                   help="val: the run's own validation fold (DATA must be its training data); all: every "
                        "labelled photo of DATA; auto (default): val on the training data, else all")
    p.add_argument("--json", action="store_true", help="print JSON instead of lines (as `maskcls score --json`)")
    inference_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls evaluate` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..serve.predict import evaluate_run

    result = evaluate_run(runs_of(args), args.data, split=args.split, tta=args.tta, device=args.device,
                          workers=workers_value(args), backend=args.backend)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        from ..serve.score import format_score

        print("\n".join(format_score(result)))
    return 0
