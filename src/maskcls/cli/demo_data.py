"""maskcls demo-data: synthetic face photos in the competition layout, with their true labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import nonneg, workers_arg, workers_value


def add_parser(sub) -> None:
    """Add `maskcls demo-data` to the command line: its options and their help."""
    p = sub.add_parser("demo-data", help="write synthetic face photos in the competition layout",
                       description="Write synthetic face photos in the competition layout, with the true labels "
                                   "in OUT/truth/ and a list of the label errors planted at rate --noise.")
    p.add_argument("out", metavar="OUT", help="folder to create (must not exist or be empty)")
    p.add_argument("--people", type=int, default=2700, help="training people, 7 photos each (default 2700)")
    p.add_argument("--eval-people", type=int, default=1800, help="eval people, 7 photos each (default 1800)")
    p.add_argument("--noise", type=float, default=0.01, help="fraction of people given a wrong label (default 0.01)")
    p.add_argument("--seed", type=nonneg, default=0, help="random seed; the same seed gives the same bytes")
    p.add_argument("--size", default="384x512", help="photo size WIDTHxHEIGHT (default 384x512, as the real set)")
    workers_arg(p, help="rendering processes (default: the machine's cores, at most 8)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls demo-data` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..config import parse_size
    from ..data.synth import make_dataset

    info = make_dataset(args.out, people=args.people, eval_people=args.eval_people, noise=args.noise,
                        seed=args.seed, size=parse_size(args.size), workers=max(1, workers_value(args)))
    print(f"wrote {info['photos']} training photos of {info['people']} people and {info['eval_photos']} eval "
          f"photos to {info['out']} ({info['size']}); {info['noisy_people']} people carry planted label noise "
          f"(see {Path(info['out']) / 'truth' / 'injected_noise.csv'})")
    return 0
