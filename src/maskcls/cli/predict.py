"""maskcls predict: a submission (ImageID,ans) for an eval folder, in info.csv's order."""

from __future__ import annotations

import argparse

from .common import inference_args, runs_args, runs_of, workers_value


def add_parser(sub) -> None:
    """Add `maskcls predict` to the command line: its options and their help."""
    p = sub.add_parser("predict", help="write a submission for an eval folder",
                       description="Predict every photo of EVAL_DIR/info.csv and write ImageID,ans in the same order.")
    runs_args(p)
    p.add_argument("eval_dir", metavar="EVAL_DIR", help="folder with info.csv and images/ (or the dataset root)")
    p.add_argument("--out", required=True, help="submission CSV to write")
    p.add_argument("--force", action="store_true", help="overwrite --out (and --probs) if they exist")
    p.add_argument("--probs", default=None, metavar="FILE", help="also write the 18 class probabilities per image")
    p.add_argument("--allow-outside", action="store_true",
                   help="read eval photos that are links leading out of the eval folder (refused by default, as "
                        "links out of the training data are)")
    inference_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls predict` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..serve.predict import predict_submission

    info = predict_submission(runs_of(args), args.eval_dir, args.out, tta=args.tta, force=args.force,
                              probs_out=args.probs, device=args.device, workers=workers_value(args), backend=args.backend,
                              allow_outside=args.allow_outside)
    models = f" (mean of {info['models']} models)" if info["models"] > 1 else ""
    print(f"wrote {info['rows']} predictions to {info['out']}{models}")
    return 0
