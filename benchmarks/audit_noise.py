"""How well does the audit find planted label errors? Prints precision and recall per kind and the
time it took (never asserts): demo data with planted noise, a CPU-sized model, out-of-fold scores.

    python benchmarks/audit_noise.py [--people 240] [--noise 0.05] [--folds 5] [--epochs 12] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _cli import out_folder, positive, run
from maskcls.audit.run import audit
from maskcls.config import load_config
from maskcls.data.synth import make_dataset
from maskcls.errors import UserError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--people", type=positive, default=240, help="synthetic people (default: %(default)s)")
    parser.add_argument("--noise", type=float, default=0.05, help="fraction of people given a planted label error (default: %(default)s)")
    parser.add_argument("--folds", type=positive, default=5, help="folds of the out-of-fold scores (at least 2) (default: %(default)s)")
    parser.add_argument("--epochs", type=positive, default=12, help="epochs per fold model (default: %(default)s)")
    parser.add_argument("--config", default="demo", help="base config: a built-in name or a YAML file (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting on top of the config (repeatable)")
    parser.add_argument("--out", default=None,
                        help="keep the data and the audit here; reused when rerun with the same settings "
                             "(default: a temp folder)")
    args = parser.parse_args()
    if not 0 < args.noise < 1:
        raise UserError(f"--noise must be a fraction between 0 and 1, got {args.noise}")
    if args.folds < 2:
        raise UserError(f"--folds must be at least 2 (out-of-fold scores need another fold), got {args.folds}")
    if args.people < 2 * args.folds:
        raise UserError(f"--people {args.people} is too few for {args.folds} folds; give at least {2 * args.folds}")
    load_config(args.config, [f"train.epochs={args.epochs}", *args.set])  # a bad --config or --set ends here
    with tempfile.TemporaryDirectory() as tmp:
        root = out_folder(args.out, {k: v for k, v in vars(args).items() if k != "out"}, tmp)
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
