"""What do a k-fold ensemble and hflip TTA add over one model? Prints eval-set macro F1 of each fold
model alone, of their mean (the ensemble), each with and without hflip TTA, and the training cost.
Demo data with held-out eval people scored against the synthetic truth; never asserts.

    python benchmarks/ensemble_gain.py [--people 240] [--eval-people 120] [--folds 5] [--epochs 8]
                                       [--config demo] [--set KEY=VALUE ...] [--out DIR]

A k-fold ensemble costs k trainings (each on (k-1)/k of the people); one model is one of those
trainings, so "single" below is the mean over the k fold models, each compared with the ensemble.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from _cli import check_folds, out_folder, parser_for, positive, run, stamp_of
from maskcls import load_config, train_folds
from maskcls.data.synth import make_dataset
from maskcls.data.table import PHOTO_COL, load_eval
from maskcls.experiments.ablate import t_interval
from maskcls.serve.predictor import Predictor


def macro_f1(truth: np.ndarray, probs: np.ndarray) -> float:
    return float(f1_score(truth, probs.argmax(1), average="macro", labels=range(18), zero_division=0))


def main() -> None:
    parser = parser_for(__doc__, people=240, folds=5, epochs=8, what="the ensemble's fold models")
    parser.add_argument("--eval-people", type=positive, default=120,
                        help="other synthetic people whose photos are scored against the truth (default: %(default)s)")
    args = parser.parse_args()
    check_folds(args)
    # Checked before any data is drawn: a bad --config or --set ends here.
    cfg = load_config(args.config, [f"train.epochs={args.epochs}", f"data.folds={args.folds}", *args.set])
    with tempfile.TemporaryDirectory() as tmp:
        root = out_folder(args.out, stamp_of(args, cfg), tmp)
        data = root / "data"
        if not (data / "train" / "train.csv").is_file():
            make_dataset(data, people=args.people, eval_people=args.eval_people, noise=0.02, seed=2, size=(96, 128))
        runs = root / "cv"
        if not (runs / "cv_summary.json").is_file():
            train_folds(cfg, data, runs, progress=False, log=lambda s: None)
        cv = json.loads((runs / "cv_summary.json").read_text())
        frame, _ = load_eval(data / "eval")
        truth = pd.read_csv(data / "truth" / "eval_truth.csv").set_index("ImageID").loc[frame["ImageID"], "label"].to_numpy()
        paths = frame[PHOTO_COL].tolist()
        rows = {}
        for tta in ("none", "hflip"):
            members = Predictor(runs, tta=tta).member_probs(paths)
            single = np.array([macro_f1(truth, p) for p in members])
            ensemble = macro_f1(truth, np.mean(members, axis=0))
            rows[tta] = (single, ensemble)
    seconds = [f["seconds"] for f in cv["per_fold"]]
    print(f"{args.people} training people, {args.eval_people} eval people scored against the truth; "
          f"{args.folds} folds x {args.epochs} epochs ({args.config} config {' '.join(args.set)})")
    print(f"training: {np.mean(seconds) / 60:.1f} min per model; the ensemble costs {len(seconds)}x that "
          f"({sum(seconds) / 60:.1f} min)")
    base = rows["none"][0]
    print("| | eval macro F1 | paired gain over one model without TTA [95% CI over the fold models] |")
    print("|---|---|---|")
    print(f"| one model, no TTA | {base.mean():.3f} +- {base.std(ddof=1):.3f} | baseline |")
    lines = [("one model, hflip TTA", rows["hflip"][0]),
             (f"{args.folds}-fold ensemble, no TTA", np.full_like(base, rows["none"][1])),
             (f"{args.folds}-fold ensemble, hflip TTA", np.full_like(base, rows["hflip"][1]))]
    for name, value in lines:
        _, lo, hi = t_interval(value - base)
        shown = f"{value.mean():.3f} +- {value.std(ddof=1):.3f}" if name.startswith("one") else f"{value[0]:.3f}"
        print(f"| {name} | {shown} | {(value - base).mean():+.3f} [{lo:+.3f}, {hi:+.3f}] |")


if __name__ == "__main__":
    run(main)
