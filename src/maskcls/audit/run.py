"""`maskcls audit`: out-of-fold probabilities (from a `--fold all` run, or trained here), ranked label
issues, proposed corrections and a review page; with the demo truth, precision and recall.

DIR/label_issues.csv          person, photos, field, given, suggested, score, rank
DIR/proposed_corrections.csv  the corrections format: `maskcls train --corrections DIR/proposed_corrections.csv`
DIR/review.html + thumbs/     accept / reject / skip per card; saves the accepted ones as a corrections CSV
DIR/decisions.csv             written by `maskcls review DIR`; read back here (or --decisions FILE)
DIR/summary.json              counts, timings and (with --truth) precision and recall per kind
DIR/precision_recall.png      with --truth: precision and recall against rank, per kind
DIR/cv/                       the `--fold all` run trained when no --run is given (reusable as --run)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pandas as pd

from ..config import load_config
from ..data.corrections import FIELDS
from ..data.fingerprint import refuse_other_data
from ..data.prepare import prepare
from ..data.table import refuse_output_inside
from ..errors import UserError
from ..fileio import read_csv, write_csv, write_json
from ..reports.figures import plot_precision_recall
from ..training.folds import fold_identity, train_folds
from ..training.runs import FOLD_PREFIX, read_probs, read_run_config
from ..training.runspec import Launcher
from .rank import ISSUE_COLUMNS, find_issues, precision_recall_curve, score_against_truth, to_corrections
from .decisions import apply_earlier, data_fingerprint, read_decisions, read_log
from .review import write_review

OURS = {"label_issues.csv", "proposed_corrections.csv", "review.html", "thumbs", "summary.json",
        "precision_recall.png", "cv", "decisions.csv", "accepted_corrections.csv"}
REPORT_COLUMNS = ["person", "photos", "field", "given", "suggested", "score", "rank"]


def audit(data: str | Path, out: str | Path, *, run: str | Path | None = None, folds: int = 5,
          config: str | Path | None = "demo", overrides: tuple[str, ...] = (), truth: str | Path | None = None,
          decisions: str | Path | None = None, launcher: Launcher | None = None, progress: bool = True,
          log: Callable[[str], None] = print) -> dict:
    """Audit DATA's labels into OUT; returns summary.json's content. ``launcher`` (experiments.launch)
    trains the folds at once when no ``run`` is given."""
    out = Path(out)
    refuse_output_inside(data, out)
    if out.exists() and (not out.is_dir() or any(p.name not in OURS and not p.name.startswith(".")
                                                 for p in out.iterdir())):
        raise UserError(f"{out}: exists and holds other files; give a new folder (or a previous audit's)")
    noise = _read_truth(truth) if truth is not None else None
    if decisions is not None:
        read_log(decisions)  # a missing or malformed file is refused before any training
    start = time.perf_counter()
    if run is not None:
        if not (Path(run) / "oof_probs.csv").is_file():
            raise UserError(f"{run}: no oof_probs.csv; --run takes a `maskcls train DATA --out RUN --fold all` run")
        cfg = read_run_config(run)
        oof_path = Path(run) / "oof_probs.csv"
        trained = 0.0
    else:
        cfg = load_config(config, [*overrides, f"data.folds={folds}"])
        log(f"audit: training {folds} person-level folds to score every photo with a model that never saw "
            f"its person ({cfg.model.name} at {cfg.data.size}, {cfg.train.epochs} epochs) into {out / 'cv'}")
        train_folds(cfg, data, out / "cv", launcher=launcher, progress=progress, log=log)
        oof_path = out / "cv" / "oof_probs.csv"
        trained = time.perf_counter() - start
    prepared = prepare(cfg, data, log=lambda s: None)
    oof = read_probs(oof_path)
    paths = set(prepared.table["path"])
    if set(oof["path"]) != paths:
        raise UserError(f"{oof_path} does not cover exactly the photos of {data} "
                        f"({len(set(oof['path']) & paths)} of {len(paths)} in common); audit the data the run "
                        "was trained on, or drop --run to train one")
    if run is not None:  # the same photos, and the run's out-of-fold labels must be DATA's labels too
        for folder in sorted(Path(run).glob(f"{FOLD_PREFIX}*")):
            refuse_other_data(str(run), fold_identity(folder), prepared.identity(), data)
    # The photo's stem and age in years come from the table (runs written before oof_probs.csv held them).
    oof = oof.drop(columns=[c for c in ("image", "age") if c in oof.columns]).merge(
        prepared.table[["path", "image", "age"]].astype({"age": "float"}), on="path", how="left")
    try:
        issues = find_issues(oof, cutoffs=cfg.cutoffs)
    except ValueError as exc:
        raise UserError(f"{oof_path}: {exc}") from None
    data_id = data_fingerprint(prepared.table)
    issues, earlier = _apply_decisions(issues, decisions, out, data_id, prepared.table["person"], log)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "label_issues.csv", issues[REPORT_COLUMNS + (["reviewed"] if earlier else [])])
    write_csv(out / "proposed_corrections.csv", to_corrections(issues))
    photos: dict[str, list[tuple[str, str]]] = {}
    for person, image, path in zip(prepared.table["person"], prepared.table["image"], prepared.table["path"]):
        photos.setdefault(str(person), []).append((str(image), str(path)))
    write_review(issues[[c for c in [*ISSUE_COLUMNS, "reviewed"] if c in issues.columns]], photos, out,
                 data_id=data_id)
    summary = {"photos": len(oof), "people": int(oof["person"].nunique()), "issues": len(issues),
               "issues_per_field": {k: int(v) for k, v in issues["field"].value_counts().items()},
               "run": str(run if run is not None else out / "cv"), "train_seconds": round(trained, 1),
               "seconds": round(time.perf_counter() - start, 1)}
    if earlier:
        summary["decisions"] = earlier
    if noise is not None:
        noise, summary["truth_rows_not_in_data"] = _known_truth(noise, prepared.table["person"], log)
        summary["truth"] = score_against_truth(issues, noise)
        curve = precision_recall_curve(issues, noise)
        plot_precision_recall(curve, out / "precision_recall.png")
        for kind, s in summary["truth"].items():
            p = "n/a" if s["precision"] is None else f"{s['precision']:.2f}"
            r = "n/a" if s["recall"] is None else f"{s['recall']:.2f}"
            log(f"{kind:>10}: precision {p}, recall {r} ({s['found']} of {s['planted']} planted found, "
                f"{s['flagged']} flagged)")
    write_json(out / "summary.json", summary)
    log(f"{len(issues)} suspect label(s); review them in {out / 'review.html'} (`maskcls review {out}` saves "
        f"each decision to disk), then train with --corrections {out / 'accepted_corrections.csv'}")
    return summary


def _apply_decisions(issues: pd.DataFrame, decisions: str | Path | None, out: Path, data_id: str,
                     people: pd.Series, log: Callable[[str], None]) -> tuple[pd.DataFrame, dict]:
    """Earlier review decisions (--decisions, else OUT/decisions.csv when there is one) applied to the
    issues: rejected suggestions dropped, accepted ones marked. ({} when there are none.)"""
    path = Path(decisions) if decisions is not None else out / "decisions.csv"
    if decisions is None and not path.is_file():
        return issues, {}
    decided = read_decisions(path, data_id=data_id, people=people.astype(str).unique())
    issues, counts = apply_earlier(issues, decided)
    log(f"earlier review {path}: {counts['rejected_not_raised']} rejected suggestion(s) not raised again, "
        f"{counts['accepted_shown']} accepted one(s) marked as accepted")
    return issues, {"file": str(path), **counts}


def _read_truth(path: str | Path) -> pd.DataFrame:
    """The planted errors; an unknown field is an error naming its line, as in a corrections file."""
    frame = read_csv(Path(path), ("person", "field", "image", "recorded", "true"))
    for line, fld in frame["field"].items():
        if fld.strip().lower() not in FIELDS:
            raise UserError(f"{path}:{line}: unknown field {fld!r}; expected one of {', '.join(FIELDS)}")
    return frame.reset_index(drop=True)


def _known_truth(noise: pd.DataFrame, people: pd.Series, log: Callable[[str], None]) -> tuple[pd.DataFrame, int]:
    """Truth rows about people in the data, and how many were left out: an error planted on someone who
    is not in the data can be neither found nor missed (corrections treat such rows the same way)."""
    known = noise["person"].str.strip().isin(set(people.astype(str)))
    if not known.all():
        log(f"truth: {int((~known).sum())} row(s) name people not in the data; they are not counted")
    return noise[known].reset_index(drop=True), int((~known).sum())
