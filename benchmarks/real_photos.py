"""The face model on REAL photos: how well the audit finds planted label flips with the networks alone,
the face model alone, and their blends, next to plain cleanlab on the same probabilities; and how many
faces each detector finds per mask state. Prints markdown tables (never asserts).

    python benchmarks/real_photos.py DEV --out DIR [--noise 0.05] [--seed 0] [--folds 3] [--epochs 12]
                                     [--size 112x112] [--detector-every 3]
    python benchmarks/real_photos.py DEV --out DIR --recipes all [--seeds 0,1,2]

The second form is the real-photo recipe table (benchmarks/_recipes.py): the CNN alone with each crop,
the CNN with face features and the descriptor-only heads, trained `--fold all` on DEV/combined.csv.

DEV is the development set `../shared/realdata/build_dev.py` builds (DEV/facemask: mask state + gender,
one photo per person; DEV/utkface: gender + age). Never point this at the half build_dev.py leaves out.

For each part, a fixed seed plants flips on --noise of the people per field (facemask: gender and mask,
the mask moved to one of the two other states; utkface: gender and age, the age moved into another
age group), writes the noisy manifest and the truth into DIR/<part>/, trains the audit's `--fold all`
run there (the demo recipe from scratch: --config demo, data.crop=none since the photos are face crops
already, at --size, --folds x --epochs; reused when rerun) and computes the faces (maskcls faces' cache).
Then per field, on the same person-level folds:
  networks        the out-of-fold probabilities of the trained networks (what the audit used before)
  face            a logistic regression on the face descriptors (audit.signals.face_opinion)
  blend <rule>    the two combined (audit.signals.BLENDS; quality is the audit's default)
  cleanlab (on X) cleanlab.filter.find_label_issues(labels, pred_probs) on the same probabilities X,
                  ranked by self-confidence: what a plain cleanlab user would get from them
top-k precision: planted flips among the k highest-ranked issues of the field, k = flips planted.
precision / recall: of the issues the audit lists (score >= 0.5) or cleanlab flags.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from _cli import run
from _recipes import RECIPES, recipes
from maskcls import labels
from maskcls.audit.rank import field_quality, find_issues
from maskcls.audit.run import face_evidence, load_evidence, source_qualities
from maskcls.audit.signals import blend, blend_weight, face_view, tempering
from maskcls.cli.common import CommandParser
from maskcls.config import load_config
from maskcls.data.prepare import prepare
from maskcls.errors import UserError
from maskcls.faces.compute import compute_faces
from maskcls.training.folds import train_folds

PARTS = {"facemask": ("gender", "mask"), "utkface": ("gender", "age")}
OTHER_AGE = {0: (45, 65), 1: (22, 65), 2: (22, 45)}  # a flipped age: an age in one of the other groups


def plant(manifest: pd.DataFrame, fields: tuple[str, ...], rate: float, rng: np.random.Generator):
    """(noisy manifest, truth rows): flips on ``rate`` of the people per field, no person flipped twice."""
    noisy = manifest.copy()
    truth = []
    free = np.arange(len(noisy))
    for field in fields:
        n = max(1, round(rate * len(noisy)))
        pick = rng.choice(free, size=n, replace=False)
        free = np.setdiff1d(free, pick)
        for i in pick:
            row = noisy.iloc[i]
            if field == "gender":
                new = "female" if row["gender"] == "male" else "male"
                old = row["gender"]
            elif field == "mask":
                old = row["mask"]
                new = rng.choice([m for m in ("wear", "incorrect", "normal") if m != old])
            else:
                old = int(row["age"])
                group = 0 if old < 30 else 1 if old < 60 else 2
                new = int(rng.choice(OTHER_AGE[group]))
            noisy.iloc[i, noisy.columns.get_loc(field)] = str(new)  # the manifest is read as text
            truth.append({"person": row["person_id"], "field": field,
                          "image": Path(row["path"]).stem if field == "mask" else "*",
                          "recorded": new, "true": old})
    return noisy, pd.DataFrame(truth, columns=["person", "field", "image", "recorded", "true"])


def issue_rows(issues: pd.DataFrame, truth: pd.DataFrame, field: str) -> tuple[list[bool], int]:
    """Hit or not per issue of ``field`` in rank order, and the number planted."""
    planted = truth[truth["field"] == field]
    keys = set(zip(planted["person"], planted["image"] if field == "mask" else ["*"] * len(planted)))
    mine = issues[issues["field"] == field].sort_values("rank")
    hits = [(p, ph if field == "mask" else "*") in keys for p, ph in zip(mine["person"], mine["photos"])]
    return hits, len(planted)


def scores(hits: list[bool], planted: int) -> dict:
    k = planted
    return {"topk": sum(hits[:k]) / k if k else float("nan"),
            "precision": sum(hits) / len(hits) if hits else float("nan"),
            "recall": sum(hits) / planted if planted else float("nan"), "listed": len(hits)}


def cleanlab_scores(evidence: pd.DataFrame, truth: pd.DataFrame, field: str) -> dict:
    """cleanlab on one photo per person (every part has one): flagged set and self-confidence ranking."""
    from cleanlab.filter import find_label_issues

    task = next(t for t in labels.TASKS if t.field == field)
    cols = labels.task_prob_columns(task)
    given = pd.to_numeric(evidence[task.column], errors="coerce")
    ok = given.notna().to_numpy()
    frame = evidence[ok]
    y = given[ok].astype(int).to_numpy()
    probs = frame[cols].to_numpy(dtype=float)
    probs = probs / probs.sum(axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranked = find_label_issues(y, probs, return_indices_ranked_by="self_confidence")
        conf = probs[np.arange(len(y)), y]
    planted = truth[truth["field"] == field]
    keys = set(planted["person"] if field != "mask" else zip(planted["person"], planted["image"]))
    key = (lambda i: frame["person"].iloc[i]) if field != "mask" else \
        (lambda i: (frame["person"].iloc[i], str(frame["image"].iloc[i])))
    flagged = [key(i) in keys for i in ranked]
    order = [key(i) in keys for i in np.argsort(conf, kind="stable")]
    out = scores(flagged, len(planted))
    out["topk"] = sum(order[:len(planted)]) / len(planted)
    return out


def detectors(manifest: pd.DataFrame, root: Path, every: int) -> pd.DataFrame:
    """Faces found by each detector alone, per mask state, on every ``every``-th photo."""
    from maskcls.photos import read_rgb
    from maskcls.faces.detect import _RUN

    rows = []
    sample = manifest.iloc[::every]
    for rec in sample.to_dict("records"):
        image = read_rgb(root / rec["path"])
        row = {"mask": rec["mask"]}
        for name, fn in _RUN.items():
            start = time.perf_counter()
            row[name] = fn(image) is not None
            row[f"{name}_s"] = time.perf_counter() - start
        row["hog+haar"] = row["hog"] or row["haar"]
        row["hog+haar+cnn"] = row["hog+haar"] or row["cnn"]
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame) -> str:
    """A markdown table (pandas' to_markdown needs tabulate, which maskcls does not install)."""
    def cell(v):
        return f"{v:.2f}" if isinstance(v, (float, np.floating)) else str(v)
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = CommandParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("dev", metavar="DEV", help="the development set build_dev.py wrote")
    parser.add_argument("--out", required=True, help="noisy manifests, runs and results (reused when rerun)")
    parser.add_argument("--noise", type=float, default=0.05, help="share of people flipped per field (default 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="which flips are planted (default 0)")
    parser.add_argument("--folds", type=int, default=3, help="person-level folds (default 3)")
    parser.add_argument("--epochs", type=int, default=12, help="epochs per fold network (default 12)")
    parser.add_argument("--size", default="112x112", help="network input size (default 112x112)")
    parser.add_argument("--detector-every", type=int, default=3,
                        help="the detector table uses every N-th facemask photo (default 3: the CNN is slow; 0: no table)")
    parser.add_argument("--parts", default="facemask,utkface", help="which parts (default both)")
    parser.add_argument("--recipes", default=None, metavar="NAMES",
                        help="instead of the audit study: the recipe table on DEV/combined.csv for these recipes, "
                             f"joined by commas ({', '.join(RECIPES)}; 'all': every one)")
    parser.add_argument("--seeds", default="0,1,2", help="--recipes: the seeds, each its own split (default 0,1,2)")
    parser.add_argument("--draws", type=int, default=1000, help="--recipes: bootstrap draws (default 1000)")
    args = parser.parse_args()
    dev, out = Path(args.dev), Path(args.out)
    if args.recipes is not None:
        names = list(RECIPES) if args.recipes == "all" else args.recipes.split(",")
        try:
            seeds = [int(s) for s in args.seeds.split(",")]
        except ValueError:
            raise UserError(f"--seeds: whole numbers joined by commas, got {args.seeds!r}") from None
        recipes(dev, out, names, seeds, draws=args.draws)
        return
    if not 0 < args.noise < 0.5:
        raise UserError(f"--noise must be between 0 and 0.5, got {args.noise}")
    results = {"settings": {k: v for k, v in vars(args).items()}}
    tables = []
    for part in args.parts.split(","):
        if part not in PARTS:
            raise UserError(f"--parts: unknown part {part!r}; expected {', '.join(PARTS)}")
        src = dev / part / "manifest.csv"
        if not src.is_file():
            raise UserError(f"{src}: not found; DEV must be build_dev.py's output folder")
        manifest = pd.read_csv(src, dtype=str, keep_default_na=False)
        manifest["path"] = [str((dev / part / p).resolve()) for p in manifest["path"]]
        folder = out / part
        folder.mkdir(parents=True, exist_ok=True)
        noisy, truth = plant(manifest, PARTS[part], args.noise, np.random.default_rng(args.seed))
        noisy_path = folder / "manifest.csv"
        noisy.to_csv(noisy_path, index=False)
        truth.to_csv(folder / "truth.csv", index=False)
        overrides = [f"data.size={args.size}", "data.crop=none", f"data.folds={args.folds}",
                     f"train.epochs={args.epochs}", "data.allow_outside=true", "train.trackers=none"]
        cfg = load_config("demo", overrides)
        print(f"== {part}: {len(noisy)} photos, {len(truth)} flips planted", flush=True)
        faces = compute_faces(noisy["path"].tolist(), cascade=cfg.data.face_detectors, progress=True)
        print(faces.summary(), flush=True)
        start = time.perf_counter()
        train_folds(cfg, noisy_path, folder / "cv", progress=False, log=lambda s: None)
        print(f"networks: {args.folds} folds x {args.epochs} epochs in {time.perf_counter() - start:.0f} s "
              "(reused when already trained)", flush=True)
        prepared = prepare(cfg, noisy_path, log=lambda s: None)
        oof = load_evidence([folder / "cv"], prepared, noisy_path)
        opinion = face_evidence(faces, prepared, oof)
        src_q = source_qualities(oof, opinion, cfg, 0.5, "quality")
        for field in PARTS[part]:
            planted = int((truth["field"] == field).sum())
            views = {"networks": oof, "face": face_view(oof, opinion, field)}
            for rule in ("quality", "odds", "tempered", "mean", "face"):
                w = blend_weight(rule, field, src_q["networks"].get(field), src_q["face"].get(field))
                views[f"blend {rule}"] = blend(oof, opinion, {field: w}, tempering(rule, src_q["networks"], src_q["face"]))
            for name, evidence in views.items():
                q = field_quality(evidence, cutoffs=cfg.cutoffs, fields=(field,)).iloc[0]
                issues = find_issues(evidence, cutoffs=cfg.cutoffs, fields=(field,))
                ours = scores(*issue_rows(issues, truth, field))
                row = {"part": part, "field": field, "source": name, "planted": planted, "quality": q["quality"],
                       "units": int(q["units"]), **{f"maskcls {k}": v for k, v in ours.items()}}
                if name != "face" or len(evidence):
                    cl = cleanlab_scores(evidence, truth, field)
                    row.update({f"cleanlab {k}": v for k, v in cl.items()})
                tables.append(row)
                print(f"{part} {field} {name}: quality {q['quality']:.2f}, top-k {ours['topk']:.2f}, "
                      f"P {ours['precision']:.2f} R {ours['recall']:.2f}"
                      + (f"; cleanlab top-k {row['cleanlab topk']:.2f} P {row['cleanlab precision']:.2f} "
                         f"R {row['cleanlab recall']:.2f}" if "cleanlab topk" in row else ""), flush=True)
        if part == "facemask" and args.detector_every > 0:
            det = detectors(manifest, Path("/"), args.detector_every)
            counts = det.groupby("mask")[["haar", "hog", "cnn", "hog+haar", "hog+haar+cnn"]].agg(["sum", "count"])
            results["detectors"] = {m: {d: f"{int(counts.loc[m, (d, 'sum')])}/{int(counts.loc[m, (d, 'count')])}"
                                        for d in ("haar", "hog", "cnn", "hog+haar", "hog+haar+cnn")}
                                    for m in counts.index}
            results["detector_seconds"] = {d: round(float(det[f"{d}_s"].mean()), 4) for d in ("haar", "hog", "cnn")}
            print(results["detectors"], results["detector_seconds"], flush=True)
    frame = pd.DataFrame(tables)
    results["table"] = frame.to_dict("records")
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    cols = ["part", "field", "source", "planted", "quality", "maskcls topk", "maskcls precision", "maskcls recall",
            "cleanlab topk", "cleanlab precision", "cleanlab recall"]
    print("\n" + markdown(frame[[c for c in cols if c in frame.columns]]))
    if "detectors" in results:
        print("\nfaces found per detector, facemask photos (every "
              f"{args.detector_every}th), per mask state:")
        print(markdown(pd.DataFrame(results["detectors"]).T.reset_index(names="mask")))
        print("seconds per photo:", results["detector_seconds"])


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    run(main)
