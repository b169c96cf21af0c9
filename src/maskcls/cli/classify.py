"""maskcls classify: one JSON line per photo (mask, gender, age group, class, probabilities)."""

from __future__ import annotations

import argparse
import json

from .common import inference_args


def add_parser(sub) -> None:
    p = sub.add_parser("classify", help="classify photos; one JSON line each",
                       description="Print one JSON line per photo: mask, gender, age group, class and probabilities.")
    p.add_argument("run", metavar="RUN", help="a run folder or a --fold all run (all its folds)")
    p.add_argument("photos", metavar="PHOTO", nargs="+",
                   help="photo files, folders (every photo inside) or quoted globs like 'shots/*.jpg'")
    p.add_argument("--add-run", action="append", default=[], metavar="RUN",
                   help="another run to average with RUN (an ensemble); repeat for more")
    inference_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..serve.predict import classify_photos, expand_photos

    photos = expand_photos(args.photos)
    for result in classify_photos([args.run, *args.add_run], photos, tta=args.tta, device=args.device,
                                  workers=args.workers, backend=args.backend):
        print(json.dumps(result), flush=True)
    return 0
