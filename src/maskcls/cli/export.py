"""maskcls export: a run (or a k-fold run's ensemble) as one ONNX model."""

from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    """Add `maskcls export` to the command line: its options and their help."""
    p = sub.add_parser("export", help="export a run (or a k-fold run's ensemble) to ONNX",
                       description="Write an ONNX model that needs no maskcls: decoded photos in (uint8 RGB, N x "
                                   "height x width x 3, at the training photos' size unless --input-size says "
                                   "otherwise), the 18 class probabilities and the per-task ones out; the run's "
                                   "crop, resize and normalisation inside; dynamic batch; checked against PyTorch "
                                   "with onnxruntime (the max abs difference is printed). A data.crop=face run "
                                   "takes the face crop at its own size instead (the box comes from the face "
                                   "detectors). A run trained with face features (model.face_features) takes a "
                                   "second input, faces (N, 128) float32: the face model's descriptor, NaN rows for "
                                   "no face (--info says how it is computed). predict and classify run it with "
                                   "--backend onnx, computing the descriptor as training did.")
    p.add_argument("run", metavar="RUN", nargs="?", help="a run folder or a --fold all run (exported as one averaged graph)")
    p.add_argument("--info", default=None, metavar="FILE",
                   help="print what an exported FILE holds (input, class names, task encoding, preprocessing) "
                        "as JSON, and export nothing")
    p.add_argument("--out", default=None, help="the .onnx file (default RUN/model.onnx)")
    p.add_argument("--input-size", default=None, metavar="WIDTHxHEIGHT",
                   help="the size of the photos the graph takes (default: the training photos' own size, read "
                        "from the data the run trained on); other photos are resized to it first")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls export` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..errors import UserError
    from ..serve.export import export_run, onnx_info

    if args.info is not None:
        if args.run is not None:
            raise UserError("give RUN to export, or --info FILE to read an export, not both")
        print(json.dumps(onnx_info(args.info), indent=2))
        return 0
    if args.run is None:
        raise UserError("give RUN (a run folder to export) or --info FILE")
    from ..config import parse_size

    size = parse_size(args.input_size) if args.input_size is not None else None
    info = export_run(args.run, args.out, force=args.force, input_size=size)
    models = f"the mean of {info['models']} models, " if info["models"] > 1 else ""
    shape = " x ".join(str(v) for v in info["input"])
    faces = " and faces N x 128 (the face descriptor, NaN rows for no face)" if info["faces"] else ""
    what = "photos" if info["crop_in_graph"] else "images"
    print(f"wrote {info['out']} ({models}uint8 RGB {what} {shape} (N x height x width x channels){faces} in, "
          f"probs/mask/gender/age out); max abs difference to PyTorch {info['max_abs_diff']:.2e}; "
          f"`maskcls export --info {info['out']}` shows its metadata")
    return 0
