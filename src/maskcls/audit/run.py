"""`maskcls audit`: out-of-fold probabilities (from a `--fold all` run, or trained here), ranked label
issues, proposed corrections and a review page; with the demo truth, precision and recall.

DIR/label_issues.csv          person, photos, field, given, suggested, score, rank, proposed (yes, or why
                              not): the full ranking
DIR/proposed_corrections.csv  the corrections format, only issues with score >= rank.PROPOSE_MIN_SCORE in
                              fields read at quality >= --propose-quality that keep the competition's
                              7-photo layout (rank.proposal_verdicts); review them before training on any
DIR/field_quality.csv         the gate: per field, balanced accuracy of the out-of-fold models vs chance, for
                              the networks, the face model and their blend (the blend decides)
DIR/review.html + thumbs/     accept / reject / skip per card; saves the accepted ones as a corrections CSV
DIR/decisions.csv             written by `maskcls review DIR`; read back here (or --decisions FILE)
DIR/summary.json              counts, timings and (with --truth) precision and recall per kind
DIR/precision_recall.png      with --truth: precision and recall against rank, per kind
DIR/cv/                       the `--fold all` run trained when no --run is given (reusable as --run);
DIR/cv-R/                     with --repeats: the further runs, each with other fold draws (data.split_seed)
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from .. import config as config_mod
from ..config import load_config, set_values
from ..data.corrections import FIELDS
from ..data.fingerprint import refuse_other_data
from ..data.prepare import Prepared, prepare
from ..data.table import load_table
from ..errors import UserError
from ..fileio import claim_folder, read_csv, write_csv, write_json
from ..figures import plot_precision_recall
from ..training.folds import fold_identity, train_folds
from ..training.runs import FOLD_PREFIX, read_probs, read_run_config
from ..training.runspec import Launcher
from .decisions import apply_earlier, data_fingerprint, read_decisions, read_log
from .rank import (DEFAULT_MIN_QUALITY, ISSUE_COLUMNS, PROPOSE_MIN_QUALITY, PROPOSE_MIN_SCORE,
                   field_quality, find_issues, issue_evidence, layout_people, precision_recall_curve,
                   proposal_verdicts, score_against_truth, to_corrections)
from .signals import BLENDS, DEFAULT_BLEND, blend, blend_weight, face_opinion, face_view, tempering
from .review import write_review

OURS = {"label_issues.csv", "proposed_corrections.csv", "review.html", "thumbs", "summary.json",
        "precision_recall.png", "cv", "field_quality.csv", "decisions.csv", "accepted_corrections.csv"}
REPORT_COLUMNS = ["person", "photos", "field", "given", "suggested", "score", "rank", "proposed", "networks_say",
                  "face_model_says"]
FACES_CHOICES = ("auto", "off")
# What --set may change with --run: where and how this machine reads, never the labels or the model.
RUN_FREE_KEYS = ("data.cache_dir", "data.face_detectors", "data.workers", "data.allow_outside", "train.device")
# The face model's opinion on a field counts only when it covers this many people (gender, age) or
# photos (mask): its quality, which weighs it in the blend, is not measured on fewer.
MIN_FACE_UNITS = 20


def audit(data: str | Path, out: str | Path, *, run: str | Path | None = None, folds: int = 5,
          config: str | Path | None = "demo", overrides: tuple[str, ...] = (), truth: str | Path | None = None,
          min_quality: float = DEFAULT_MIN_QUALITY, propose_quality: float = PROPOSE_MIN_QUALITY,
          repeats: int = 1, decisions: str | Path | None = None, faces: str = "auto",
          blend_rule: str = DEFAULT_BLEND, launcher: Launcher | None = None, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Audit DATA's labels into OUT; returns summary.json's content.

    min_quality: the gate (``rank.field_quality``); propose_quality: the stricter bar a field's quality
    must reach for its issues to be proposed (``rank.proposal_verdicts``); repeats: how many `--fold all` runs to train,
    each with other fold draws, whose out-of-fold evidence is averaged (ignored with ``run``);
    ``launcher`` (experiments.launch) trains the folds at once when no ``run`` is given; faces: "auto" adds
    the face model's second opinion (signals.face_opinion, computing the faces the cache lacks) when dlib
    loads here, "off" leaves it out; blend_rule: how the two sources' probabilities are combined
    (signals.BLENDS)."""
    out = Path(out)
    check_options(min_quality=min_quality, propose_quality=propose_quality, repeats=repeats, faces=faces,
                  blend_rule=blend_rule)
    claim_folder(out, data=data, ours=lambda name: name in OURS or _is_repeat(name), owner="an audit's")
    noise = _read_truth(truth) if truth is not None else None
    if decisions is not None:
        read_log(decisions)  # a missing or malformed file is refused before any training
    start = time.perf_counter()
    cfg, runs, face_set, prepared, oof, trained = gather_evidence(
        data, out, run=run, folds=folds, config=config, overrides=overrides, repeats=repeats, faces=faces,
        launcher=launcher, progress=progress, log=log)
    issues, quality, sources, opinion = rank_evidence(oof, face_set, prepared, cfg, min_quality=min_quality,
                                                      blend_rule=blend_rule, where=runs[0] / "oof_probs.csv", log=log)
    data_id = data_fingerprint(prepared.table)
    issues, earlier = _apply_decisions(issues, decisions, out, data_id, prepared.table["person"], log)
    layout = layout_people(oof)
    proposed, withheld = propose(issues, quality, layout, propose_quality=propose_quality)
    write_outputs(out, issues, quality, proposed, prepared.table, data_id=data_id, layout=layout, reviewed=bool(earlier))
    summary = summarize(oof, issues, proposed, quality, withheld, face_set, runs, min_quality=min_quality,
                        propose_quality=propose_quality, blend_rule=blend_rule, trained=trained,
                        seconds=time.perf_counter() - start)
    if earlier:
        summary["decisions"] = earlier
    if noise is not None:
        summary.update(score_truth(issues, noise, prepared.table["person"], out, log=log))
    write_json(out / "summary.json", summary)
    _say_what_next(out, issues, proposed, withheld, bar=max(min_quality, propose_quality), log=log)
    return summary


def gather_evidence(data, out: Path, *, run, folds: int, config, overrides: tuple[str, ...], repeats: int,
                    faces: str, launcher: Launcher | None, progress: bool,
                    log: Callable[[str], None]) -> tuple[config_mod.Config, list[Path], object, Prepared, pd.DataFrame, float]:
    """The evidence an audit ranks: the face model's opinion (faces="auto") and the networks' out-of-fold
    probabilities, from ``run`` or from folds trained here. Returns (config, runs, face set or None,
    prepared data, out-of-fold table, seconds spent training)."""
    start = time.perf_counter()
    if run is not None:
        cfg = config_of_run(run, overrides)
        runs = [Path(run)]
    else:
        cfg = load_config(config, [*overrides, f"data.folds={folds}"])
        # DATA is read (and a mistake in it named) before anything is announced or trained.
        load_table(data, cutoffs=cfg.cutoffs, corrections=cfg.data.corrections, allow_outside=cfg.data.allow_outside)
    # The faces come before any training: the folds keep person ids whose faces match together
    # (data.face_groups), and the networks and the face model must be judged on the same folds.
    face_set = (_faces(_face_config(cfg, overrides) if run is not None else cfg, data, progress=progress, log=log)
                if faces == "auto" else None)
    if run is None:
        runs = train_evidence(data, out, config, overrides, cfg, folds=folds, repeats=repeats, launcher=launcher,
                              progress=progress, log=log)
    trained = 0.0 if run is not None else time.perf_counter() - start
    prepared = prepare(cfg, data, log=lambda s: None)
    oof = load_evidence(runs, prepared, data)
    if run is not None:  # the same photos, and the run's out-of-fold labels must be DATA's labels too
        for folder in sorted(Path(run).glob(f"{FOLD_PREFIX}*")):
            refuse_other_data(str(run), fold_identity(folder), prepared.identity(), data)
    return cfg, runs, face_set, prepared, oof, trained


def propose(issues: pd.DataFrame, quality: pd.DataFrame, layout: set, *,
            propose_quality: float) -> tuple[pd.DataFrame, pd.Series]:
    """Mark each issue proposed or not (its ``proposed`` column: "yes" or "no: <why>"); returns the proposed
    issues and, per reason, how many issues with a proposal's score a bar held back."""
    verdicts = proposal_verdicts(issues, quality=quality, layout=layout, min_quality=propose_quality)
    issues["proposed"] = verdicts.map(lambda v: "yes" if not v else f"no: {v}")
    proposed = issues[(verdicts == "").to_numpy(dtype=bool)].reset_index(drop=True)
    strong = (issues["score"].astype(float) >= PROPOSE_MIN_SCORE).to_numpy(dtype=bool)
    withheld = verdicts[(verdicts != "").to_numpy(dtype=bool) & strong].value_counts()  # held back by a bar, not the score
    return proposed, withheld


def _say_what_next(out: Path, issues: pd.DataFrame, proposed: pd.DataFrame, withheld: pd.Series, *, bar: float,
                   log: Callable[[str], None]) -> None:
    """The closing lines: what was held back, what was found, and the review step. ``bar``: the quality
    proposals effectively meet (a field below the gate has no issues at all, so the higher of the two)."""
    for reason, n in withheld.items():
        log(f"not proposed, listed for review only: {n} issue(s) with score >= {PROPOSE_MIN_SCORE}: {reason}")
    if issues.empty:
        log(f"no suspect labels in the audited fields ({out / 'label_issues.csv'} is empty); nothing to review")
        return
    log(f"{len(issues)} suspect label(s) ranked in {out / 'label_issues.csv'}; {len(proposed)} with score >= "
        f"{PROPOSE_MIN_SCORE} in fields read at quality >= {bar:g} proposed in "
        f"{out / 'proposed_corrections.csv'}. Review them before any training: "
        f"`maskcls review {out}` (saves each decision to disk; or open {out / 'review.html'}), and train only on "
        f"the corrections you accepted ({out / 'accepted_corrections.csv'})")


def summarize(oof: pd.DataFrame, issues: pd.DataFrame, proposed: pd.DataFrame, quality: pd.DataFrame,
              withheld: pd.Series, face_set, runs: list[Path], *, min_quality: float, propose_quality: float,
              blend_rule: str, trained: float, seconds: float) -> dict:
    """summary.json's content: counts, the bars, each field's quality by source, the face model and the runs."""
    return {"photos": len(oof), "people": int(oof["person"].nunique()), "issues": len(issues),
            "issues_per_field": {k: int(v) for k, v in issues["field"].value_counts().items()},
            "proposed": len(proposed), "propose_min_score": PROPOSE_MIN_SCORE, "min_quality": min_quality,
            "propose_quality": propose_quality, "withheld": {k: int(v) for k, v in withheld.items()},
            "fields": {r["field"]: {"balanced_accuracy": _num(r["balanced_accuracy"]), "chance": _num(r["chance"]),
                                    "quality": _num(r["quality"]), "audited": bool(r["passed"]),
                                    "quality_networks": _num(r["quality_networks"]),
                                    "quality_face": _num(r["quality_face"]), "face_weight": _num(r["face_weight"])}
                       for r in quality.to_dict("records")},
            "face_model": ({"used": False} if face_set is None else
                           {"used": True, "blend": blend_rule, "photos_with_face": int(face_set.found.sum()),
                            "cascade": face_set.cascade, "cache": str(face_set.cache_path)}),
            "runs": [str(r) for r in runs], "run": str(runs[0]), "train_seconds": round(trained, 1),
            "seconds": round(seconds, 1)}


def score_truth(issues: pd.DataFrame, noise: pd.DataFrame, persons: pd.Series, out: Path, *,
                log: Callable[[str], None]) -> dict:
    """With --truth: precision and recall per kind of planted error (logged, and drawn against rank in
    precision_recall.png); returns summary.json's truth keys."""
    noise, missing = _known_truth(noise, persons, log)
    truth = score_against_truth(issues, noise)
    plot_precision_recall(precision_recall_curve(issues, noise), out / "precision_recall.png")
    for kind, s in truth.items():
        p = "n/a" if s["precision"] is None else f"{s['precision']:.2f}"
        r = "n/a" if s["recall"] is None else f"{s['recall']:.2f}"
        log(f"{kind:>10}: precision {p}, recall {r} ({s['found']} of {s['planted']} planted found, "
            f"{s['flagged']} flagged)")
    return {"truth_rows_not_in_data": missing, "truth": truth}


def rank_evidence(oof: pd.DataFrame, face_set, prepared, cfg, *, min_quality: float, blend_rule: str, where: Path,
                  log: Callable[[str], None]) -> tuple[pd.DataFrame, pd.DataFrame, dict, pd.DataFrame | None]:
    """The pure core's steps on the evidence: the face model's opinion (when its faces are there), each
    source's quality and their blend, the gate per field, the ranked issues with what each source says.
    Returns (issues, the field-quality table, the sources' qualities and weights, the face opinion or None);
    the gate's reasons are logged."""
    try:
        opinion = None if face_set is None else face_evidence(face_set, prepared, oof)
        sources = source_qualities(oof, opinion, cfg, min_quality, blend_rule)
        evidence = oof if opinion is None else blend(oof, opinion, sources["weights"],
                                                     tempering(blend_rule, sources["networks"], sources["face"]))
        quality = field_quality(evidence, cutoffs=cfg.cutoffs, min_quality=min_quality)
        audited = [f for f, ok in zip(quality["field"], quality["passed"]) if ok]
        issues = find_issues(evidence, cutoffs=cfg.cutoffs, fields=audited)
        issues["networks_say"] = issue_evidence(issues, oof, cutoffs=cfg.cutoffs)
        issues["face_model_says"] = ("face model off" if opinion is None else
                                     _face_says(issues, oof, opinion, cfg))
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None
    quality["quality_networks"] = quality["field"].map(sources["networks"])
    quality["quality_face"] = quality["field"].map(sources["face"])
    quality["face_weight"] = quality["field"].map(sources["weights"]).fillna(0.0)
    for line, field in zip(quality["reason"], quality["field"]):
        log(line)
        if field in sources["face"]:
            log(f"  {field} by source: networks quality {_fmt(sources['networks'].get(field))}, face model quality "
                f"{_fmt(sources['face'][field])}{sources['face_units'][field]}; the gate judged their blend "
                f"(--blend {blend_rule}: face weight {sources['weights'][field]:.2f})")
    if opinion is not None and not sources["face"]:
        log(f"face model: no opinion on any field ({int(face_set.found.sum())} of {len(face_set.table)} photos have "
            "a face found; too few to fit on every fold): the networks alone decide")
    return issues, quality, sources, opinion


def write_outputs(out: Path, issues: pd.DataFrame, quality: pd.DataFrame, proposed: pd.DataFrame, table: pd.DataFrame,
                  *, data_id: str, layout: set[str], reviewed: bool) -> None:
    """field_quality.csv, label_issues.csv, proposed_corrections.csv and the review page with its thumbnails."""
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "field_quality.csv", quality.round(4))
    write_csv(out / "label_issues.csv", issues[REPORT_COLUMNS + (["reviewed"] if reviewed else [])].round({"score": 4}))
    write_csv(out / "proposed_corrections.csv", to_corrections(proposed))
    photos: dict[str, list[tuple[str, str]]] = {}
    for person, image, path in zip(table["person"], table["image"], table["path"]):
        photos.setdefault(str(person), []).append((str(image), str(path)))
    card_columns = [*ISSUE_COLUMNS, "networks_say", "face_model_says", "reviewed", "proposed"]
    cards = issues[[c for c in card_columns if c in issues.columns]].assign(
        quality=issues["field"].map(dict(zip(quality["field"], quality["quality"]))))
    write_review(cards, photos, out, data_id=data_id, layout=layout)


def check_options(*, min_quality: float, propose_quality: float, repeats: int, faces: str, blend_rule: str) -> None:
    """The audit's options, each refused in one line before any work."""
    if not 0 <= min_quality <= 1:
        raise UserError(f"--min-quality must be between 0 and 1, got {min_quality}")
    if not 0 <= propose_quality <= 1:
        raise UserError(f"--propose-quality must be between 0 and 1, got {propose_quality}")
    if repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {repeats}")
    if faces not in FACES_CHOICES:
        raise UserError(f"--faces must be one of {', '.join(FACES_CHOICES)}, got {faces!r}")
    if blend_rule not in BLENDS:
        raise UserError(f"--blend must be one of {', '.join(BLENDS)}, got {blend_rule!r}")
    if faces == "off" and blend_rule != DEFAULT_BLEND:
        raise UserError(f"--blend {blend_rule} combines the face model's opinion with the networks', and --faces off "
                        "leaves the face model out; drop one of them")


def config_of_run(run: str | Path, overrides: tuple[str, ...]):
    """The settings of a finished `--fold all` run that --run names; a --set the run was made with is refused
    (its probabilities hold only for its own labels, folds and model), as is a folder that is not such a run."""
    if not Path(run).is_dir():
        raise UserError(f"{run}: no such run folder; --run takes a `maskcls train DATA --out RUN --fold all` run")
    if not (Path(run) / "oof_probs.csv").is_file():
        raise UserError(f"{run}: no oof_probs.csv; --run takes a `maskcls train DATA --out RUN --fold all` run")
    ignored = [o.split("=", 1)[0].strip() for o in overrides if o.split("=", 1)[0].strip() not in RUN_FREE_KEYS]
    if ignored:
        raise UserError(f"--set {ignored[0]}: with --run the audit reads {run}'s own settings (its labels, "
                        f"corrections, folds and model); only {', '.join(RUN_FREE_KEYS)} may be set. Audit "
                        f"without --run to train with {ignored[0]} changed")
    return read_run_config(run)


def _face_config(cfg, overrides: tuple[str, ...]):
    """A run's config, but where faces are cached and how they are found are this machine's: --set may say."""
    face_cfg = config_mod.from_dict(cfg.to_dict())
    for key in ("cache_dir", "face_detectors"):
        given = set_values(overrides, f"data.{key}")
        if given:
            setattr(face_cfg.data, key, getattr(load_config(None, [f"data.{key}={given[-1]}"]).data, key))
    return face_cfg


def train_evidence(data, out: Path, config, overrides: tuple[str, ...], cfg, *, folds: int, repeats: int,
                   launcher: Launcher | None, progress: bool, log: Callable[[str], None]) -> list[Path]:
    """Train the `--fold all` runs whose out-of-fold probabilities are the networks' evidence: OUT/cv, and
    with repeats OUT/cv-R, each with other fold draws. Returns their folders."""
    runs = [out / ("cv" if r == 0 else f"cv-{r}") for r in range(repeats)]
    for r, folder in enumerate(runs):
        run_cfg = load_config(config, [*overrides, f"data.folds={folds}", f"data.split_seed={cfg.data.split_seed + r}"])
        log(f"audit: training {folds} person-level folds{f' (repeat {r + 1} of {repeats})' if repeats > 1 else ''} "
            f"to score every photo with a model that never saw its person ({cfg.model.name} at {cfg.data.size}, "
            f"{cfg.train.epochs} epochs) into {folder}")
        train_folds(run_cfg, data, folder, launcher=launcher, progress=progress, log=log)
    return runs


def _fmt(value) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.2f}"


def _faces(cfg, data, *, progress: bool, log: Callable[[str], None]):
    """Every photo's face through the cache (faces.compute), or None when the face model cannot load
    here (said once: the audit goes on with the networks alone)."""
    from ..faces.compute import compute_faces
    from ..faces.models import available

    why = available()
    if why is not None:
        log(f"audit: no face model second opinion: {why}")
        return None
    table, _ = load_table(data, cutoffs=cfg.cutoffs, corrections="none", allow_outside=cfg.data.allow_outside)
    found = compute_faces(table["path"].tolist(), cache_dir=cfg.data.cache_dir or None,
                          cascade=cfg.data.face_detectors, progress=progress)
    log(found.summary())
    return found


def face_evidence(face_set, prepared, oof: pd.DataFrame) -> pd.DataFrame:
    """The face model's out-of-fold probabilities on the folds the networks' table records."""
    table = prepared.table
    at = {p: i for i, p in enumerate(face_set.table["path"])}
    descriptors = face_set.descriptors[[at[p] for p in table["path"]]]
    fold_of = dict(zip(oof["path"], oof["fold"])) if "fold" in oof.columns else {}
    folds = (table["path"].map(fold_of).to_numpy() if fold_of else prepared.folds)
    return face_opinion(table, folds.astype(int), descriptors)


def source_qualities(oof: pd.DataFrame, opinion: pd.DataFrame | None, cfg, min_quality: float, rule: str) -> dict:
    """Per field: each source's quality (the gate's figure), how many units the face model covers, and
    the face model's weight in the blend."""
    q_net = field_quality(oof, cutoffs=cfg.cutoffs, min_quality=min_quality)
    out = {"networks": dict(zip(q_net["field"], q_net["quality"])), "face": {}, "face_units": {}, "weights": {}}
    if opinion is None:
        return out
    for field in FIELDS:
        view = face_view(oof, opinion, field)
        if view.empty:
            continue
        q = field_quality(view, cutoffs=cfg.cutoffs, fields=(field,), min_quality=min_quality).iloc[0]
        if pd.isna(q["quality"]) or q["units"] < MIN_FACE_UNITS:
            continue  # a quality measured on a handful of faces would decide the blend on noise
        out["face"][field] = float(q["quality"])
        unit = "people" if field != "mask" else "photos"
        out["face_units"][field] = f" (over {int(q['units'])} {unit} with a face)"
        out["weights"][field] = blend_weight(rule, field, out["networks"].get(field), float(q["quality"]))
    return out


def _face_says(issues: pd.DataFrame, oof: pd.DataFrame, opinion: pd.DataFrame, cfg) -> pd.Series:
    says = pd.Series("no face found", index=issues.index, dtype=object)
    for field in FIELDS:
        rows = issues["field"] == field
        if rows.any():
            view = face_view(oof, opinion, field)
            says[rows] = issue_evidence(issues[rows], view, cutoffs=cfg.cutoffs).replace("no opinion", "no face found")
    return says


def _is_repeat(name: str) -> bool:
    return name.startswith("cv-") and name[3:].isdigit()


def _num(value) -> float | None:
    return None if pd.isna(value) else round(float(value), 4)


def load_evidence(runs: list[Path], prepared, data) -> pd.DataFrame:
    """The runs' out-of-fold probabilities with their oof_signals.csv (when written) merged in, every
    number averaged over the runs (each photo scored by one model per run), and the photo's stem and
    age in years from the prepared table: the table ``rank.find_issues`` takes."""
    paths = set(prepared.table["path"])
    frames = []
    for run in runs:
        path = run / "oof_probs.csv"
        oof = read_probs(path)
        if set(oof["path"]) != paths:
            raise UserError(f"{path} does not cover exactly the photos of {data} "
                            f"({len(set(oof['path']) & paths)} of {len(paths)} in common); audit the data the run "
                            "was trained on, or drop --run to train one")
        if (run / "oof_signals.csv").is_file():
            oof = oof.merge(pd.read_csv(run / "oof_signals.csv"), on="path", how="left")
        frames.append(oof.set_index("path"))
    first = frames[0]
    if len(frames) > 1:
        numeric = [c for c in first.columns if re.fullmatch(r"p\d+|p_\w+_\d+|hflip_\w+_\d+|margin_\w+", c)
                   and all(c in f.columns for f in frames)]
        first = first.copy()
        first[numeric] = sum(f.loc[first.index, numeric].astype(float) for f in frames) / len(frames)
    oof = first.reset_index()
    # The photo's stem and age in years come from the table (runs written before oof_probs.csv held them).
    return oof.drop(columns=[c for c in ("image", "age") if c in oof.columns]).merge(
        prepared.table[["path", "image", "age"]].astype({"age": "float"}), on="path", how="left")


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
