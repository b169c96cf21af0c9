"""maskcls score: a submission scored against the true answers (macro F1, accuracy, per task / class, chance)."""

from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    """Add `maskcls score` to the command line: its options and their help."""
    p = sub.add_parser("score", help="score a submission CSV against the true answers",
                       description="Score SUBMISSION (ImageID,ans) against TRUTH: the true answers as ImageID,ans, or "
                                   "demo-data's truth/eval_truth.csv. Prints macro F1 (the competition metric), "
                                   "accuracy, F1 per task and per class, and the chance level of the true answers' "
                                   "class mix beside each, saying so when a score is at or below it.")
    p.add_argument("submission", metavar="SUBMISSION", help="CSV with ImageID,ans (what `maskcls predict` writes)")
    p.add_argument("truth", metavar="TRUTH", help="CSV with ImageID,ans or ImageID,...,label (the true classes)")
    p.add_argument("--json", action="store_true", help="print JSON instead of lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls score` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..serve.score import format_score, score_submission

    result = score_submission(args.submission, args.truth)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(format_score(result)))
    return 0
