"""maskcls interpret: what a trained run learned (interpret.html: top losses with activation maps,
confusions, calibration, mean maps per task and mask state)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import at_least


def add_parser(sub) -> None:
    """Add `maskcls interpret` to the command line: its options and their help."""
    p = sub.add_parser("interpret", help="interpret.html: top losses with activation maps, confusions, calibration",
                       description="Look at what a trained run learned: DIR/interpret.html (opens from disk) with "
                                   "the top losses and their Grad-CAM maps per task head, the most confused class "
                                   "pairs, reliability diagrams and calibration error per task, per-class F1, the "
                                   "confusion per task and the mean activation map per task and mask state.")
    p.add_argument("run", metavar="RUN", help="a run folder, or a --fold all run (its out-of-fold predictions)")
    p.add_argument("data", metavar="DATA", nargs="?", default=None,
                   help="labelled DATA to look at (default: the run's own validation fold of its training data)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="new or empty folder for interpret.html, its figures and thumbs/")
    p.add_argument("--layer", default=None,
                   help="module whose feature map the activation maps weigh, e.g. layer3 (default: the backbone's "
                        "last convolutional stage, found automatically)")
    p.add_argument("--top", type=at_least(1), default=12, help="top-loss photos shown (default 12)")
    p.add_argument("--per-state", type=at_least(1), default=24,
                   help="photos per mask state averaged into the mean activation maps (default 24)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"), help="where the model runs (default cpu)")
    p.add_argument("--force", action="store_true", help="replace a previous interpret page in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls interpret` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..reports.interpret import interpret

    interpret(args.run, args.data, args.out, layer=args.layer, top=args.top, per_state=args.per_state,
              device=args.device, force=args.force, progress=not args.quiet, log=lambda s: None)
    print(f"wrote {Path(args.out) / 'interpret.html'}; open it in a browser")
    return 0
