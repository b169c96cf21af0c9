"""maskcls audit: likely mislabeled photos, ranked, with a review page that writes the corrections."""

from __future__ import annotations

import argparse

from .common import DATA_HELP, FOLDS_HELP, at_least, config_args, launch_args, launch_asked, launch_options, resolve_config, setting_args, setting_flags


def add_parser(sub) -> None:
    """Add `maskcls audit` to the command line: its options and their help."""
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
    p.add_argument("--folds", type=at_least(2), default=None, metavar="K", help=FOLDS_HELP + " (when no --run is given)")
    p.add_argument("--repeats", type=at_least(1), default=1, metavar="R",
                   help="train this many --fold all runs, each with other fold draws (data.split_seed + r), and "
                        "average their out-of-fold evidence: R times the training (default 1; not with --run)")
    p.add_argument("--min-quality", type=float, default=None, metavar="Q",
                   help="the gate: a field (gender, mask, age) is audited (its issues listed) only when its "
                        "out-of-fold models read it with (balanced accuracy - chance) / (1 - chance) >= Q, chance being 1 / classes "
                        "given; 0 = every field, even one read at chance; 1 = perfect (default 0.5: a 2-class "
                        "field needs balanced accuracy 0.75, a 3-class one 0.67)")
    p.add_argument("--propose-quality", type=float, default=None, metavar="Q",
                   help="the stricter bar for proposed_corrections.csv: a field's issues are proposed only when "
                        "its quality (as --min-quality) reaches Q; below it they are listed and reviewed, never "
                        "proposed. At 5%% label noise a field read at quality 0.8 (gender: balanced accuracy "
                        "0.9) still raises about two false alarms per real error (default 0.8)")
    config_args(p, help="config of that training, a YAML file or built-in name")
    setting_args(p)
    p.add_argument("--truth", default=None, metavar="FILE",
                   help="demo data's truth/injected_noise.csv: print precision and recall per kind")
    p.add_argument("--decisions", default=None, metavar="FILE",
                   help="a review's decisions.csv (default DIR/decisions.csv when it exists): suggestions "
                        "rejected there are not raised again, accepted ones are marked as accepted")
    p.add_argument("--faces", default="auto", choices=("auto", "off"),
                   help="auto (default): add the pretrained face model's second opinion (a logistic regression on "
                        "dlib's face descriptors, fitted on the same folds; faces computed as `maskcls faces` does, "
                        "cached) and rank issues on the blend of both sources; off: the networks alone")
    p.add_argument("--blend", default="tempered", choices=("tempered", "quality", "odds", "mean", "face", "cnn"),
                   help="how the networks' and the face model's probabilities are combined, per field: tempered "
                        "(default: each source shrunk toward uniform by its gate quality, then weighted by it), "
                        "quality (weighted by quality, not shrunk), odds (weighted by quality odds q / (1 - q)), "
                        "mean, face (the face model alone where it found a face), cnn (the networks alone; the cards "
                        "still show the face model). Measured on real photos: docs/audit.md, 'The face model's second opinion'")
    launch_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls audit` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..audit.run import audit
    from ..errors import UserError
    from ..experiments.launch import open_launcher

    if args.run is not None:
        trains = [flag for flag, given in (("--jobs/--devices/--launcher", launch_asked(args)),
                                           ("--folds", args.folds is not None), ("--repeats", args.repeats != 1)) if given]
        if trains:
            raise UserError(f"{', '.join(trains)}: {'these shape' if len(trains) > 1 else 'it shapes'} the training "
                            "of the folds; with --run nothing is trained (the run's own folds are used): drop "
                            f"{'them' if len(trains) > 1 else 'it'}")
    args.set = [*args.set, *setting_flags(args)]
    cfg = resolve_config(args, announce=args.run is None)  # with --run nothing is trained
    with open_launcher(**launch_options(args)) as launcher:
        audit(args.data, args.out, run=args.run, folds=args.folds or cfg.data.folds, config=args.config,
              overrides=tuple(args.set), truth=args.truth, decisions=args.decisions, launcher=launcher,
              repeats=args.repeats, **({} if args.min_quality is None else {"min_quality": args.min_quality}),
              **({} if args.propose_quality is None else {"propose_quality": args.propose_quality}),
              faces=args.faces, blend_rule=args.blend, progress=not args.quiet)
    return 0
