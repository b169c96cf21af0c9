"""The submission model: is training on every person (`train --fold none`) worth it against one fold's
model, and against the fold ensemble? Each model is scored on independent eval people against their
synthetic truth, with hflip TTA as `maskcls demo`'s submission; never asserts.

    python benchmarks/final_fit.py [--people 240] [--eval-people 100] [--seeds 0,1,2] [--folds 5]
                                   [--config demo] [--set KEY=VALUE ...] [--out DIR] [--draws 1000]

Per seed (train.seed = data.split_seed = seed, so each seed also draws other fold-0 people):
  fold-0, best epoch    `maskcls train` as `make demo` runs it: (k-1)/k of the people, the checkpoint
                        chosen on the 1/k held out
  fold-0, last epoch    the same training, keeping its last epoch (no one chose it)
  final fit, config     `--fold none`: every person, the config's epochs
  final fit, from CV    `--fold none --epochs-from CV`: every person, the median of the folds' best epochs
  k-fold ensemble       `--fold all`: the mean of the k fold models (their best epochs)
Deltas are paired with fold-0's best epoch on the same seed: a t interval over the seeds, and a bootstrap
over eval people (a person's 7 photos together, the seeds averaged). Compute is each model's training
passes (photos x epochs, i.e. steps: every model is the same network at the same size) over fold-0's,
and in minutes at the median training throughput of all the benchmark's epochs (validation left out; the
median, as another job on the machine slows some epochs, not the work); the from-CV fit also needs the
k-fold run that chose its epochs.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _cli import out_folder, positive, run, stamp_of
from maskcls import config as config_mod
from maskcls import load_config
from maskcls.cli.common import CommandParser
from maskcls.config import set_values
from maskcls.data.prepare import prepare
from maskcls.data.synth import make_dataset
from maskcls.data.table import PHOTO_COL, load_eval
from maskcls.errors import UserError
from maskcls.experiments.ablate import t_interval
from maskcls.serve.predictor import Predictor
from maskcls.training.budget import Budget, epochs_from
from maskcls.training.fit import train
from maskcls.training.folds import train_folds
from maskcls.training.runs import load_checkpoint

ROWS = ("fold-0, best epoch", "fold-0, last epoch", "final fit, config's epochs", "final fit, epochs from CV",
        "k-fold ensemble")


def macro_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """The competition's macro F1 over the classes present in truth or prediction (sklearn's
    f1_score(average='macro') with its default labels), in numpy: the bootstrap calls it many times."""
    classes = np.union1d(truth, pred)
    tp = np.bincount(truth[truth == pred], minlength=18)[classes]
    support = np.bincount(truth, minlength=18)[classes]
    predicted = np.bincount(pred, minlength=18)[classes]
    denom = support + predicted
    return float(np.mean(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)))


def _final(cfg, epochs: int):
    """cfg as `train --fold none` runs it (config.NO_HOLDOUT), for ``epochs`` epochs."""
    values = cfg.to_dict()
    values["data"]["fold"] = None
    values["train"].update(select="last", patience=0, epochs=epochs)
    return config_mod.from_dict(values)


def train_seed(cfg, data: Path, root: Path, seed: int) -> dict[str, Path]:
    """The runs of one seed, trained where missing: {'cv': k-fold run, 'config': final fit, 'cv-epochs': final fit}."""
    runs = {"cv": root / "cv", "config": root / "final-config", "cv-epochs": root / "final-cv-epochs"}
    prepared = None

    def prepared_data():
        nonlocal prepared
        prepared = prepared or prepare(cfg, data, log=lambda s: None)
        return prepared

    def timed(what: str, fn) -> None:
        start = time.perf_counter()
        print(f"== seed {seed}: {what}", flush=True)
        fn()
        print(f"   {(time.perf_counter() - start) / 60:.1f} min", flush=True)

    if not (runs["cv"] / "cv_summary.json").is_file():
        timed(f"{cfg.data.folds} folds x {cfg.train.epochs} epochs",
              lambda: train_folds(cfg, prepared_data(), runs["cv"], progress=False, log=lambda s: None))
    for name, budget in (("config", Budget(cfg.train.epochs, "config")), ("cv-epochs", epochs_from(runs["cv"]))):
        if (runs[name] / "summary.json").is_file():
            continue
        if name == "cv-epochs" and budget.epochs == cfg.train.epochs:
            runs[name] = runs["config"]  # the folds chose the config's own budget: the same training
            continue
        timed(f"final fit on every person, {budget.describe()}",
              lambda: train(_final(cfg, budget.epochs), prepared_data(), runs[name], budget=budget, progress=False,
                            log=lambda s: None))
    return runs


def seed_probs(runs: dict[str, Path], paths: list[str], tta: str) -> dict[str, np.ndarray]:
    """(N, 18) eval probabilities of each row's model."""
    fold0 = runs["cv"] / "fold-0"
    out = {ROWS[0]: Predictor(fold0, tta=tta).predict_proba(paths)}
    last = Predictor(fold0, tta=tta)  # fold 0's model with last.pt's weights: its last epoch
    last.members[0].model.load_state_dict(load_checkpoint(fold0 / "last.pt")["model"])
    out[ROWS[1]] = last.predict_proba(paths)
    out[ROWS[2]] = Predictor(runs["config"], tta=tta).predict_proba(paths)
    out[ROWS[3]] = Predictor(runs["cv-epochs"], tta=tta).predict_proba(paths)
    out[ROWS[4]] = Predictor(runs["cv"], tta=tta).predict_proba(paths)
    return out


def photo_passes(run: Path) -> tuple[int, np.ndarray]:
    """(photos trained on x epochs, the run's training throughput per epoch in photos/s) from its
    summary.json and metrics.csv."""
    summary = json.loads((run / "summary.json").read_text())
    metrics = pd.read_csv(run / "metrics.csv")
    return int(summary["train_photos"]) * len(metrics), metrics["images_per_s"].to_numpy(dtype=float)


def compute(runs: dict[str, Path]) -> tuple[dict[str, int], np.ndarray]:
    """Training compute of each row's model as photo passes (photos x epochs: every row trains the same
    network at the same size, so passes are steps), and every epoch's measured throughput."""
    folds = sorted(runs["cv"].glob("fold-*"), key=lambda p: int(p.name.split("-")[1]))
    measured = {name: photo_passes(run) for name, run in
                [*((f.name, f) for f in folds), ("config", runs["config"]), ("cv-epochs", runs["cv-epochs"])]}
    passes = {ROWS[0]: measured["fold-0"][0], ROWS[1]: measured["fold-0"][0], ROWS[2]: measured["config"][0],
              ROWS[3]: measured["cv-epochs"][0], ROWS[4]: sum(measured[f.name][0] for f in folds)}
    return passes, np.concatenate([m[1] for m in measured.values()])


def bootstrap(truth: np.ndarray, person: np.ndarray, preds: list[dict[str, np.ndarray]], *, draws: int,
              seed: int = 0) -> dict[str, tuple[float, float]]:
    """row -> 95% interval of the seed-averaged delta to fold-0's best epoch, resampling eval people."""
    rng = np.random.default_rng(seed)
    groups = list(pd.Series(np.arange(len(person))).groupby(person).indices.values())
    deltas = {r: [] for r in ROWS[1:]}
    for _ in range(draws):
        rows = np.concatenate([groups[k] for k in rng.integers(0, len(groups), len(groups))])
        base = [macro_f1(truth[rows], p[ROWS[0]][rows]) for p in preds]
        for r in ROWS[1:]:
            deltas[r].append(np.mean([macro_f1(truth[rows], p[r][rows]) - b for p, b in zip(preds, base)]))
    return {r: (float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))) for r, d in deltas.items()}


def main() -> None:
    parser = CommandParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--people", type=positive, default=240, help="synthetic training people (default: %(default)s)")
    parser.add_argument("--eval-people", type=positive, default=100,
                        help="other synthetic people, scored against their truth (default: %(default)s)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: %(default)s)")
    parser.add_argument("--folds", type=positive, default=5, help="k of the cross-validation (default: %(default)s)")
    parser.add_argument("--config", default="demo", help="the recipe: a built-in name or a YAML file (default: demo)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting on top (repeatable)")
    parser.add_argument("--tta", default="hflip", choices=("none", "hflip"), help="as the demo's submission (default: hflip)")
    parser.add_argument("--draws", type=positive, default=1000, help="bootstrap draws over eval people (default: 1000)")
    parser.add_argument("--out", default=None, help="keep the data and runs here and reuse them when rerun with the "
                                                     "same settings (default: a temp folder)")
    args = parser.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds: expected numbers joined by commas, got {args.seeds!r}") from None
    if not seeds:
        raise UserError("--seeds: give at least one seed")
    for key in ("data.folds", "data.fold", "train.seed", "data.split_seed"):
        if set_values(args.set, key):
            raise UserError(f"--set {key}: the benchmark sets it (--folds, --seeds)")
    if args.folds < 2 or args.people < 2 * args.folds:
        raise UserError(f"--folds {args.folds} with --people {args.people}: need at least 2 folds and 2 people per fold")
    base = load_config(args.config, [*args.set, f"data.folds={args.folds}"])  # a bad setting ends here
    with tempfile.TemporaryDirectory() as tmp:
        root = out_folder(args.out, {k: v for k, v in stamp_of(args, base).items() if k not in ("draws", "tta")}, tmp)
        data = root / "data"
        if not (data / "train" / "train.csv").is_file():
            make_dataset(data, people=args.people, eval_people=args.eval_people, noise=0.02, seed=0, size=(96, 128))
        frame, _ = load_eval(data / "eval")
        truth_table = pd.read_csv(data / "truth" / "eval_truth.csv").set_index("ImageID").loc[frame["ImageID"]]
        truth, person = truth_table["label"].to_numpy(), truth_table["person"].to_numpy()
        paths = frame[PHOTO_COL].tolist()
        preds, seconds, epochs, throughput = [], [], [], []
        for seed in seeds:
            cfg = load_config(args.config, [*args.set, f"data.folds={args.folds}", f"train.seed={seed}",
                                            f"data.split_seed={seed}"])
            runs = train_seed(cfg, data, root / f"seed-{seed}", seed)
            preds.append(seed_probs(runs, paths, args.tta))
            passes, speeds = compute(runs)
            seconds.append(passes)
            throughput.append(speeds)
            epochs.append(epochs_from(runs["cv"]))
        scores = pd.DataFrame([{r: macro_f1(truth, p[r].argmax(1)) for r in ROWS} for p in preds], index=seeds)
        boot = bootstrap(truth, person, [{r: p[r].argmax(1) for r in ROWS} for p in preds], draws=args.draws)
    cost = pd.DataFrame(seconds, index=seeds)  # photo passes
    ratio = cost.div(cost[ROWS[0]], axis=0)
    speed = float(np.median(np.concatenate(throughput)))
    cost = cost / speed  # seconds at the median throughput
    print(f"\n{args.people} training people, {args.eval_people} eval people ({len(truth)} photos) scored against the "
          f"truth, TTA {args.tta}; {args.config} config {' '.join(args.set)}; seeds {', '.join(map(str, seeds))}; "
          f"training throughput {speed:.0f} photos/s (median epoch)")
    print("epochs from CV (median of the folds' best): " + "; ".join(
        f"seed {s}: {b.epochs} (folds {', '.join(map(str, b.best_epochs))})" for s, b in zip(seeds, epochs)))
    print("\n| model | eval macro F1 (mean ± sd over seeds) | paired delta to fold-0 best [95% t over seeds] "
          "[95% bootstrap over eval people] | training compute (x fold-0; minutes) |")
    print("|---|---|---|---|")
    rows = []
    for r in ROWS:
        d = scores[r] - scores[ROWS[0]]
        if r == ROWS[0]:
            delta = "baseline"
        else:
            mean, lo, hi = t_interval(d.to_numpy())
            blo, bhi = boot[r]
            delta = f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}] [{blo:+.3f}, {bhi:+.3f}]"
        print(f"| {r} | {scores[r].mean():.3f} ± {scores[r].std(ddof=1) if len(seeds) > 1 else 0:.3f} | {delta} | "
              f"{ratio[r].mean():.2f}x; {cost[r].mean() / 60:.1f} min |")
        rows.append({"model": r, "per_seed": scores[r].round(4).tolist(), "compute_ratio": round(float(ratio[r].mean()), 3),
                     "minutes": round(float(cost[r].mean() / 60), 2), "bootstrap": boot.get(r)})
    if args.out:
        (Path(args.out) / "final_fit.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    run(main)
