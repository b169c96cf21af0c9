"""maskcls augment-preview: a grid of augmented photos, to see a preset before training on it."""

from __future__ import annotations

import argparse

from .common import DATA_HELP, config_args, nonneg, resolve_config


def preset_help() -> str:
    """Every preset with its one line of help; imports Albumentations, so only --help calls it."""
    from ..data.transforms import PRESETS

    return "; ".join(f"{name}: {p.help}" for name, p in PRESETS.items())


def add_parser(sub) -> None:
    """Add `maskcls augment-preview` to the command line: its options and their help."""
    p = sub.add_parser("augment-preview", help="a grid of augmented photos: see a preset before training on it",
                       description="Each row one person: the original photo (with the box of data.crop, when it "
                                   "crops) beside several augmented draws. Presets: ",
                       more_help=preset_help)
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--preset", required=True, help="preset names joined by +, e.g. hflip+vflip+contrast")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--people", type=int, default=4, help="rows (default 4)")
    p.add_argument("--draws", type=int, default=5, help="augmented draws per person (default 5)")
    p.add_argument("--seed", type=nonneg, default=0, help="which people and draws (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    config_args(p, help="config giving data.size, data.crop and data.face_margin, a YAML file or built-in name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls augment-preview` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..reports.preview import augment_preview

    cfg = resolve_config(args, announce=False)
    info = augment_preview(args.data, args.preset, args.out, cfg=cfg, people=args.people, draws=args.draws,
                           seed=args.seed, force=args.force)
    extra = f"; no face found in {info['fallbacks']} of {info['people']} photos" if info["fallbacks"] is not None else ""
    print(f"wrote {info['out']} ({info['people']} people){extra}")
    return 0
