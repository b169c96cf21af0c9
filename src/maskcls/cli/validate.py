"""maskcls validate: every problem of a dataset, each naming its file and row; exit 0 clean, 2 otherwise."""

from __future__ import annotations

import argparse
import sys

from .common import CORR_HELP, DATA_HELP, data_setting_args, data_settings


def add_parser(sub) -> None:
    """Add `maskcls validate` to the command line: its options and their help."""
    p = sub.add_parser("validate", help="check a dataset and list every problem",
                       description="Check the whole dataset: CSV rows, folder names, missing or extra photos, that "
                                   "every photo decodes, and eval rows without images. Exit 0 when clean, 2 otherwise.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--corrections", default=None, help=CORR_HELP + "; lists what would change")
    p.add_argument("--no-decode", action="store_true", help="skip decoding the photos (fast structural check)")
    p.add_argument("--faces", default="cached", choices=("cached", "compute", "off"),
                   help="identity checks from the pretrained face model: photos whose face is not their person's, "
                        "and ids with one face (one person filed twice). cached (default): on the faces `maskcls "
                        "faces DATA` stored; compute: compute the missing ones first; off. Findings are listed as "
                        "'identity:' lines to look at and never change the exit status")
    data_setting_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls validate` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..data.validate import validate

    cfg = data_settings(args)
    result = validate(args.data, corrections=args.corrections, decode=not args.no_decode, faces=args.faces,
                      cache_dir=cfg.data.cache_dir or None, cascade=cfg.data.face_detectors)
    for problem in result.problems:
        print(problem)
    for line in result.identity_notes:
        print(f"identity: {line}" if not line.startswith("identity") else line)
    if result.identity is not None:
        for line in result.identity.lines():
            print(line)
    elif args.faces == "cached" and not result.problems and not result.identity_notes:
        print("identity: no faces cached for this data; `maskcls faces DATA` (or --faces compute) adds the "
              "face model's identity checks")
    if result.corrections is not None:
        for line in result.corrections.lines():
            print(f"correction: {line}")
        print(result.corrections.summary())
    checked = f"{result.photos} training photos" + (f" and {result.eval_photos} eval photos" if result.eval_photos else "")
    if result.problems:
        print(f"{len(result.problems)} problem(s) found in {args.data} ({checked} checked)", file=sys.stderr)
        return 2
    print(f"{args.data}: no problems ({checked} checked)")
    return 0
