"""maskcls validate: every problem of a dataset, each naming its file and row; exit 0 clean, 2 otherwise."""

from __future__ import annotations

import argparse
import sys

from .common import CORR_HELP, DATA_HELP


def add_parser(sub) -> None:
    p = sub.add_parser("validate", help="check a dataset and list every problem",
                       description="Check the whole dataset: CSV rows, folder names, missing or extra photos, that "
                                   "every photo decodes, and eval rows without images. Exit 0 when clean, 2 otherwise.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--corrections", default=None, help=CORR_HELP + "; lists what would change")
    p.add_argument("--no-decode", action="store_true", help="skip decoding the photos (fast structural check)")
    p.add_argument("--verbose", action="store_true", help="list every correction naming a person not in the data")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.validate import validate

    result = validate(args.data, corrections=args.corrections, decode=not args.no_decode)
    for problem in result.problems:
        print(problem)
    if result.corrections is not None:
        for line in result.corrections.lines(verbose=args.verbose):
            print(f"correction: {line}")
        print(result.corrections.summary())
    checked = f"{result.photos} training photos" + (f" and {result.eval_photos} eval photos" if result.eval_photos else "")
    if result.problems:
        print(f"{len(result.problems)} problem(s) found in {args.data} ({checked} checked)", file=sys.stderr)
        return 2
    print(f"{args.data}: no problems ({checked} checked)")
    return 0
