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

from maskcls.audit.run import audit
from maskcls.data.synth import make_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=240)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--config", default="demo")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=None, help="keep the data and the audit here (default: a temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
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
    main()
