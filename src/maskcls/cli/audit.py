"""maskcls audit: likely mislabeled photos, ranked, with a review page that writes the corrections."""

from __future__ import annotations

import argparse

from .common import DATA_HELP, at_least, config_args


def add_parser(sub) -> None:
    p = sub.add_parser("audit", help="find likely mislabeled photos; a review page writes the corrections",
                       description="Score every photo with a model that never saw its person (a --fold all run "
                                   "given as --run, or trained here into DIR/cv), rank likely label errors with "
                                   "their probabilities and in-sample training margins (gender and age per person, "
                                   "incorrect/normal swaps as one issue) and write DIR/label_issues.csv (the full "
                                   "ranking), DIR/proposed_corrections.csv (only high-scoring issues in fields the "
                                   "models read well; review them with `maskcls review DIR` before training on any), "
                                   "DIR/field_quality.csv and DIR/review.html.")
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the audit (re-use it to resume)")
    p.add_argument("--run", default=None, help="a `maskcls train DATA --out RUN --fold all` run to take its "
                                               "out-of-fold probabilities from (nothing is trained)")
    p.add_argument("--folds", type=int, default=5, help="folds to train when no --run is given (default 5)")
    p.add_argument("--repeats", type=at_least(1), default=1,
                   help="train this many --fold all runs, each with other fold draws (data.split_seed + r), and "
                        "average their out-of-fold evidence: steadier ranks for R times the training (default 1)")
    p.add_argument("--min-quality", type=float, default=None, metavar="Q",
                   help="the gate: a field (gender, mask, age) gets proposals only when its out-of-fold models "
                        "read it with (balanced accuracy - chance) / (1 - chance) >= Q, chance being 1 / classes "
                        "given; 0 = any lift over chance, 1 = perfect (default 0.5: a 2-class "
                        "field needs balanced accuracy 0.75, a 3-class one 0.67)")
    config_args(p, default="demo", help="config for that training (default demo, CPU-sized)")
    p.add_argument("--truth", default=None, metavar="FILE",
                   help="demo data's truth/injected_noise.csv: print precision and recall per kind")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..audit.run import audit

    audit(args.data, args.out, run=args.run, folds=args.folds, config=args.config, overrides=tuple(args.set),
          truth=args.truth, repeats=args.repeats,
          **({} if args.min_quality is None else {"min_quality": args.min_quality}), progress=not args.quiet)
    return 0
