"""maskcls classify: one JSON line per photo (mask, gender, age group, class, probabilities)."""

from __future__ import annotations

import argparse
import json

from .common import inference_args, runs_args, runs_of, workers_value


def add_parser(sub) -> None:
    """Add `maskcls classify` to the command line: its options and their help."""
    p = sub.add_parser("classify", help="classify photos; one JSON line each",
                       description="Print one JSON line per photo: mask, gender, age group, class and probabilities.")
    runs_args(p)
    p.add_argument("photos", metavar="PHOTO", nargs="+",
                   help="photo files, folders (every photo inside) or quoted globs like 'shots/*.jpg'")
    inference_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls classify` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..serve.predict import classify_photos, expand_photos

    photos = expand_photos(args.photos)
    for result in classify_photos(runs_of(args), photos, tta=args.tta, device=args.device,
                                  workers=workers_value(args), backend=args.backend):
        print(json.dumps(result), flush=True)
    return 0
