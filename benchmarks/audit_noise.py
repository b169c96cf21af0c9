"""How well does the audit find planted label errors? Prints precision and recall per kind and the
time it took (never asserts): demo data with planted noise, a CPU-sized model, out-of-fold scores.

    python benchmarks/audit_noise.py [--people 240] [--noise 0.05] [--folds 5] [--epochs 12] [--out DIR]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from _cli import check_folds, out_folder, parser_for, run, stamp_of
from maskcls.audit.run import audit
from maskcls.config import load_config
from maskcls.data.synth import make_dataset
from maskcls.errors import UserError


def main() -> None:
    parser = parser_for(__doc__, people=240, folds=5, epochs=12, what="folds of the out-of-fold scores")
    parser.add_argument("--noise", type=float, default=0.05,
                        help="fraction of people given a planted label error (default: %(default)s)")
    args = parser.parse_args()
    if not 0 < args.noise < 1:
        raise UserError(f"--noise must be a fraction between 0 and 1, got {args.noise}")
    check_folds(args)
    cfg = load_config(args.config, [f"train.epochs={args.epochs}", *args.set])  # a bad --config or --set ends here
    with tempfile.TemporaryDirectory() as tmp:
        root = out_folder(args.out, stamp_of(args, cfg), tmp)
        data = root / "data"
        if not (data / "train" / "train.csv").is_file():
            make_dataset(data, people=args.people, eval_people=0, noise=args.noise, seed=0, size=(96, 128))
        start = time.perf_counter()
        summary = audit(data, root / "audit", folds=args.folds, config=args.config,
                        overrides=(f"train.epochs={args.epochs}", *args.set),
                        truth=data / "truth" / "injected_noise.csv", progress=False, log=lambda s: None)
        minutes = (time.perf_counter() - start) / 60
    print(f"{args.people} people, {args.noise:.0%} planted noise, {args.folds} folds x {args.epochs} epochs "
          f"({args.config} config {' '.join(args.set)}): audit took {minutes:.1f} min "
          f"(training {summary['train_seconds'] / 60:.1f} min)")
    for kind, s in summary["truth"].items():
        p = "n/a" if s["precision"] is None else f"{s['precision']:.2f}"
        r = "n/a" if s["recall"] is None else f"{s['recall']:.2f}"
        print(f"  {kind:>10}: precision {p}  recall {r}  ({s['found']}/{s['planted']} planted found, {s['flagged']} flagged)")
    print(json.dumps(summary["issues_per_field"]))


if __name__ == "__main__":
    run(main)
