"""The real-photo recipe table (benchmarks/real_photos.py --recipes): recipes trained `--fold all` on the
development set's combined.csv (masked faces with mask state + gender, UTKFace adults with gender + age),
each seed its own person-level split (data.split_seed = train.seed = the seed), every photo scored by the
LAST epoch of the fold model that never trained on its person: a fixed budget, so no scored person chose
the checkpoint either (best.pt is chosen on the fold it would be scored on).

Scores per row: mask F1 on the masked-face part, gender F1 on each part, age F1 on UTKFace, and macro F1
over UTKFace's six gender x age classes (each task's answer the argmax of its marginal). Rows trained with
the same seed share their people, so a row's delta to the CNN alone is paired: per seed, and with a
95% bootstrap interval over people (photos of one person resampled together, seeds pooled).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from maskcls.config import flat, load_config
from maskcls.errors import UserError
from maskcls.training.folds import train_folds

# name -> (what it is, settings over the demo recipe). The demo recipe here: regnetx_002 from scratch,
# 112x112, 3 folds x 12 epochs, flips, batch 32; the photos are face crops already (crop none).
RECIPES = {
    "cnn-none": ("CNN alone (the demo recipe), no crop", ["data.crop=none"]),
    "cnn-center": ("CNN alone, centre crop", ["data.crop=center"]),
    "cnn-face": ("CNN alone, face crop (hog+haar)", ["data.crop=face"]),
    "cnn+features": ("CNN + face features", ["data.crop=none", "model.face_features=true"]),
    "cnn-face+features": ("CNN + face features, face crop", ["data.crop=face", "model.face_features=true"]),
    "descriptor": ("heads on the face descriptor alone", ["model.name=face-descriptor"]),
}
BASE = ["data.size=112x112", "data.folds=3", "train.trackers=none"]
BASELINE = "cnn-none"
# the settings that make a run this recipe: a run found with others is refused, not reused
SHAPING = ("model.name", "model.face_features", "model.weights", "data.size", "data.crop", "data.folds",
           "data.split_seed", "data.augment", "data.face_detectors", "train.seed", "train.epochs", "train.lr",
           "train.batch_size")


def recipe_config(name: str, seed: int):
    if name not in RECIPES:
        raise UserError(f"--recipes: unknown recipe {name!r}; expected {', '.join(RECIPES)}")
    return load_config("demo", BASE + RECIPES[name][1] + [f"train.seed={seed}", f"data.split_seed={seed}"])


def train_recipe(dev: Path, out: Path, name: str, seed: int) -> Path:
    """DIR/s<seed>/<name>: the `--fold all` run, trained unless it is there with these settings."""
    cfg = recipe_config(name, seed)
    run = out / f"s{seed}" / name
    if (run / "cv_summary.json").is_file():
        saved, wanted = flat(load_config(str(run / "fold-0" / "config.yaml"))), flat(cfg)
        differ = [k for k in SHAPING if saved[k] != wanted[k]]
        if differ:
            raise UserError(f"{run}: trained with other settings ({', '.join(differ)}); use another --out")
        return run
    start = time.perf_counter()
    print(f"== {name}, seed {seed}: training {cfg.data.folds} folds x {cfg.train.epochs} epochs", flush=True)
    train_folds(cfg, dev / "combined.csv", run, progress=False, log=lambda s: None)
    print(f"   {time.perf_counter() - start:.0f} s", flush=True)
    return run


def last_epoch_oof(run: Path, dev: Path) -> pd.DataFrame:
    """The out-of-fold table of each fold's LAST epoch (last.pt), predicted here: no validation person
    chose that checkpoint (best.pt is chosen on the fold it is scored on). Sorted by path; kept in
    RUN/last_epoch_oof.csv."""
    import torch

    from maskcls import config as config_mod
    from maskcls.data.prepare import prepare
    from maskcls.training.loaders import loader_for
    from maskcls.training.loop import predict_proba
    from maskcls.training.model import model_for
    from maskcls.training.runs import load_checkpoint, probs_frame
    from maskcls.training.runtime import Runtime

    saved = run / "last_epoch_oof.csv"  # predicted once per run: reruns of the table only read it
    if saved.is_file():
        return pd.read_csv(saved, dtype={"person": str})
    cfg = load_config(str(run / "fold-0" / "config.yaml"))  # resolved: mean/std as trained
    prepared = prepare(cfg, dev / "combined.csv", log=lambda s: None)
    given = pd.read_csv(run / "oof_probs.csv", dtype={"person": str}).set_index("path")["fold"]
    paths = [str(Path(p).resolve()) for p in prepared.table["path"]]
    if not (given.reindex(paths).to_numpy() == prepared.folds).all():
        raise UserError(f"{run}: the folds drawn here are not the run's (another face cache?)")
    runtime = Runtime.from_settings(device="cpu", amp="none", channels_last=False)
    probs = np.zeros((len(paths), 18), np.float32)
    for k in range(cfg.data.folds):
        fold_cfg = config_mod.from_dict(cfg.to_dict())
        fold_cfg.data.fold = k
        ckpt = load_checkpoint(run / f"fold-{k}" / "last.pt")
        if ckpt["epoch"] != cfg.train.epochs:
            raise UserError(f"{run}/fold-{k}: last.pt is epoch {ckpt['epoch']}, not the last ({cfg.train.epochs})")
        model = model_for(fold_cfg, "none")
        model.load_state_dict(ckpt["model"])
        _, val_ds = prepared.datasets(fold_cfg, k, progress=False)
        with torch.no_grad():
            probs[prepared.split(k)[1]] = predict_proba(model, loader_for(val_ds, fold_cfg, runtime.device, train=False),
                                                        runtime=runtime, progress=False)
    frame = probs_frame(prepared.table, probs)
    frame["path"] = paths
    frame = frame.sort_values("path").reset_index(drop=True)
    frame.to_csv(saved, index=False)
    return frame


def task_answers(oof: pd.DataFrame) -> dict[str, np.ndarray]:
    return {t: oof[[c for c in oof.columns if c.startswith(f"p_{t}_")]].to_numpy().argmax(1)
            for t in ("mask", "gender", "age")}


def scores(oof: pd.DataFrame, rows: np.ndarray | None = None) -> dict[str, float]:
    """The table's columns for the photos ``rows`` (all by default) of one out-of-fold table."""
    oof = oof if rows is None else oof.iloc[rows]
    ans = task_answers(oof)
    fm = oof["path"].str.contains("/facemask/|^facemask/", regex=True).to_numpy()
    uk = ~fm

    def f1(task: str, column: str, part: np.ndarray) -> float:
        known = part & oof[column].notna().to_numpy()
        y = oof[column].to_numpy()[known].astype(int)
        return float(f1_score(y, ans[task][known], average="macro")) if known.any() else float("nan")

    known = uk & oof["gender"].notna().to_numpy() & oof["age_group"].notna().to_numpy()
    six_true = oof["gender"].to_numpy()[known].astype(int) * 3 + oof["age_group"].to_numpy()[known].astype(int)
    six_pred = ans["gender"][known] * 3 + ans["age"][known]
    return {"mask F1 (masked)": f1("mask", "mask", fm), "gender F1 (masked)": f1("gender", "gender", fm),
            "gender F1 (UTKFace)": f1("gender", "gender", uk), "age F1 (UTKFace)": f1("age", "age_group", uk),
            "macro F1, 6 classes (UTKFace)": float(f1_score(six_true, six_pred, average="macro"))}


def compute_of(run: Path) -> dict:
    """Training seconds summed over the folds, and the device, from the fold summaries."""
    summaries = [json.loads(p.read_text()) for p in sorted(run.glob("fold-*/summary.json"))]
    return {"seconds": round(sum(s["seconds"] for s in summaries)), "device": summaries[0]["device"]}


def paired_intervals(base: list[pd.DataFrame], other: list[pd.DataFrame], *, draws: int = 1000,
                     seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """column -> (mean delta, low, high): the row's score minus the baseline's, averaged over the seeds
    both have; the interval resamples people (one person's photos together) within each seed."""
    rng = np.random.default_rng(seed)
    groups = [list(pd.Series(np.arange(len(b))).groupby(b["person"].to_numpy()).indices.values()) for b in base]
    point = pd.DataFrame([scores(o) for o in other]).mean() - pd.DataFrame([scores(b) for b in base]).mean()
    deltas = []
    for _ in range(draws):
        d = []
        for b, o, g in zip(base, other, groups):
            rows = np.concatenate([g[k] for k in rng.integers(0, len(g), len(g))])
            d.append(pd.Series(scores(o, rows)) - pd.Series(scores(b, rows)))
        deltas.append(pd.concat(d, axis=1).mean(axis=1))
    frame = pd.DataFrame(deltas)
    return {c: (float(point[c]), float(frame[c].quantile(0.025)), float(frame[c].quantile(0.975))) for c in point.index}


def recipes(dev: Path, out: Path, names: list[str], seeds: list[int], *, draws: int = 1000) -> dict:
    """Train what is missing, score every row, print the table and the paired deltas; write DIR/recipes.json."""
    if not (dev / "combined.csv").is_file():
        raise UserError(f"{dev / 'combined.csv'}: not found; DEV must be build_dev.py's output folder")
    oofs: dict[str, dict[int, pd.DataFrame]] = {}
    compute: dict[str, list[dict]] = {}
    for seed in seeds:
        for name in names:
            run = train_recipe(dev, out, name, seed)
            oofs.setdefault(name, {})[seed] = last_epoch_oof(run, dev)
            compute.setdefault(name, []).append(compute_of(run))
    columns = list(scores(next(iter(next(iter(oofs.values())).values()))).keys())
    table = []
    for name in names:
        per_seed = {s: scores(o) for s, o in oofs[name].items()}
        row = {"recipe": name, "what": RECIPES[name][0], "seeds": len(per_seed),
               "seconds per seed": round(np.mean([c["seconds"] for c in compute[name]])),
               "device": compute[name][0]["device"]}
        for c in columns:
            vals = [per_seed[s][c] for s in sorted(per_seed)]
            row[c] = float(np.mean(vals))
            row[f"{c} per seed"] = [round(v, 3) for v in vals]
        table.append(row)
    deltas = []
    if BASELINE in oofs:
        for name in names:
            if name == BASELINE:
                continue
            common = sorted(set(oofs[name]) & set(oofs[BASELINE]))
            if not common:
                continue
            found = paired_intervals([oofs[BASELINE][s] for s in common], [oofs[name][s] for s in common], draws=draws)
            for c, (point, low, high) in found.items():
                deltas.append({"recipe": name, "score": c, "seeds": common, "delta": point, "low": low, "high": high})
    result = {"dev": str(dev), "seeds": seeds, "base": BASE, "recipes": {n: RECIPES[n] for n in names},
              "table": table, "deltas_vs_" + BASELINE: deltas}
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipes.json").write_text(json.dumps(result, indent=2) + "\n")
    print(render(table, deltas, columns))
    return result


def render(table: list[dict], deltas: list[dict], columns: list[str]) -> str:
    lines = ["| recipe | seeds | " + " | ".join(columns) + " | compute per seed |",
             "|---|---|" + "---|" * len(columns) + "---|"]
    for r in table:
        cells = [f"{r[c]:.3f}" + (f" ({' '.join(f'{v:.2f}' for v in r[c + ' per seed'])})" if r["seeds"] > 1 else "")
                 for c in columns]
        lines.append(f"| {r['what']} | {r['seeds']} | " + " | ".join(cells)
                     + f" | {r['seconds per seed'] / 60:.1f} min ({r['device']}) |")
    if deltas:
        lines += ["", f"paired deltas vs {BASELINE} (mean over shared seeds [95% bootstrap over people]):", ""]
        lines += ["| recipe | seeds | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
        for name in dict.fromkeys(d["recipe"] for d in deltas):
            ds = {d["score"]: d for d in deltas if d["recipe"] == name}
            first = next(iter(ds.values()))
            lines.append(f"| {name} | {len(first['seeds'])} | " + " | ".join(
                f"{ds[c]['delta']:+.3f} [{ds[c]['low']:+.3f}, {ds[c]['high']:+.3f}]" for c in columns) + " |")
    return "\n".join(lines)
