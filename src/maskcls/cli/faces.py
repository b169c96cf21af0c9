"""maskcls faces: every photo's face box, landmarks and descriptor, cached by photo content."""

from __future__ import annotations

import argparse
import json
import sys

from .common import DATA_HELP, data_settings, workers_arg


FACES_KEYS = ("data.face_detectors", "data.cache_dir", "data.allow_outside")


def add_parser(sub) -> None:
    """Add `maskcls faces` to the command line: its options and their help."""
    from ..choices import DEFAULT_CASCADE, DETECTORS

    detectors = "; ".join(f"{k}: {v}" for k, v in DETECTORS.items())
    p = sub.add_parser(
        "faces", help="find, align and describe every photo's face with a pretrained face model (cached)",
        description="Run dlib's pretrained face model over DATA: detect each photo's face (the cascade "
                    f"data.face_detectors, default {'+'.join(DEFAULT_CASCADE)}; {detectors}), align it on 5 "
                    "landmarks and compute its 128-d ResNet descriptor. Results are cached by photo content in "
                    "data.cache_dir (default $MASKCLS_CACHE or ~/.cache/maskcls), never in DATA; a rerun computes "
                    "only photos not cached yet, and a killed run resumes. validate, summary, eda and the folds "
                    "(data.face_groups) read this cache (validate and eda compute what it lacks with --faces "
                    "compute); audit and data.crop=face compute what it lacks themselves. The descriptor was trained for identity, not "
                    "gender or age: see docs/faces.md, 'The pretrained face model'.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    workers_arg(p, help="processes that compute faces (default: the machine's cores, at most 8; 0: this process)")
    p.add_argument("--json", action="store_true", help="print the counts as JSON instead of a line")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="data.face_detectors (hog, haar, cnn joined by +), data.cache_dir (where the cache lives) or "
                        "data.allow_outside (manifest paths outside its folder)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls faces` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..data.table import load_table
    from ..faces.compute import compute_faces

    from ..errors import UserError

    for item in args.set:
        if item.partition("=")[0].strip() not in FACES_KEYS:
            raise UserError(f"--set {item}: `maskcls faces` takes only {', '.join(FACES_KEYS)}")
    cfg = data_settings(args)
    table, _ = load_table(args.data, cutoffs=cfg.cutoffs, corrections="none", allow_outside=cfg.data.allow_outside)
    faces = compute_faces(table["path"].tolist(), cache_dir=cfg.data.cache_dir or None,
                          cascade=cfg.data.face_detectors, workers=args.workers)
    if args.json:
        print(json.dumps({"photos": len(table), "failed": len(faces.failed), "found": int(faces.found.sum()), "per_detector": faces.per_detector,
                          "cached": faces.cached, "computed": faces.computed, "seconds": round(faces.seconds, 2),
                          "cascade": faces.cascade, "cache": str(faces.cache_path)}, indent=2))
    else:
        print(faces.summary())
    for path, why in list(faces.failed.items())[:10]:
        print(f"maskcls faces: error: {why}", file=sys.stderr)
    if faces.failed:
        more = f" ({len(faces.failed) - 10} more not shown)" if len(faces.failed) > 10 else ""
        print(f"maskcls faces: {len(faces.failed)} photo(s) could not be read{more}; every other photo's face is "
              "cached. `maskcls validate DATA` lists every problem", file=sys.stderr)
        return 2
    return 0
