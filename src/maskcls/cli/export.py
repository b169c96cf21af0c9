"""maskcls export: a run (or a k-fold run's ensemble) as one ONNX model."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a run (or a k-fold run's ensemble) to ONNX",
                       description="Write an ONNX model: uint8 images (N, 3, H, W) at the run's size in, the 18 "
                                   "class probabilities and the per-task ones out, normalisation inside, dynamic "
                                   "batch; checked against PyTorch with onnxruntime (the max abs difference is "
                                   "printed). predict and classify run it with --backend onnx.")
    p.add_argument("run", metavar="RUN", help="a run folder or a --fold all run (exported as one averaged graph)")
    p.add_argument("--out", default=None, help="the .onnx file (default RUN/model.onnx)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..serve.export import export_run

    info = export_run(args.run, args.out, force=args.force)
    models = f"the mean of {info['models']} models, " if info["models"] > 1 else ""
    print(f"wrote {info['out']} ({models}uint8 images 3x{info['size']} in, probs/mask/gender/age out); "
          f"max abs difference to PyTorch {info['max_abs_diff']:.2e}")
    return 0
