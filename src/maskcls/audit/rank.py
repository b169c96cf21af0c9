"""Rank likely label errors from out-of-fold probabilities: the pure core of ``maskcls audit``.

Tables in, a table of issues out, no file I/O. Gender and age belong to a person, so they are judged
once per person from all of that person's photos (one issue per person, not seven); masks are judged
per photo, and one person's ``incorrect_mask`` and ``normal`` photos recorded the wrong way round are
reported as one ``swap`` issue, the way the known errors of the competition data look. Each issue's
score combines the out-of-fold probabilities (with hflip TTA when given) and the photos' in-sample
training margins (see SIGNALS). ``field_quality`` is the gate: a field the models do not read clearly
better than chance is not audited; ``proposals`` keeps the issues past the proposal threshold, in
fields read far better than chance, that keep the competition's 7-photo layout.

CAUTION (as in cleanlab): the probabilities must be **out-of-sample**: every photo predicted by a
model that never saw that person (``maskcls train --fold all`` writes such a table, oof_probs.csv).
Probabilities from a model trained on the same people have learnt the given labels, errors included,
and hide exactly the errors this module looks for.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

from .. import labels
from ..data.corrections import layout_people  # noqa: F401  (the audit's proposals read it)
from ..labels import AgeCutoffs

# An issue's field is the task's recorded label, the field of the corrections CSV that fixes it.
_TASKS = {t.field: t for t in labels.TASKS}
FIELDS = tuple(_TASKS)
ISSUE_COLUMNS = ["person", "photos", "field", "given", "suggested", "score", "rank",
                 "fix_image", "fix_from", "fix_to", "note"]
CORRECTION_COLUMNS = ["person_id", "field", "image", "from", "to", "agreement", "note"]
KINDS = tuple(t.field if t.per_person else f"{t.field}_swap" for t in labels.TASKS)
# The two photos whose masks are recorded the wrong way round in the competition data.
_MASK_INCORRECT, _MASK_NORMAL = labels.PHOTO_MASK["incorrect_mask"], labels.PHOTO_MASK["normal"]

# The score of an issue is the mean of two pieces of evidence that the given label is wrong, each on
# 0..1: (1) 1 - p(given label) from the out-of-fold models (averaged with their mirror-image
# prediction when oof_signals.csv has one, and over repeated fold draws), and (2) (1 - margin) / 2,
# the photo's in-sample training margin (Area Under the Margin) when recorded. The out-of-fold
# probability says what a model that never saw the person thinks; the margin says how hard the
# given label was to learn. Which field uses which was measured (benchmarks/audit_noise.py, demo
# data, 3 seeds): margins lifted the recall of swaps at the listing floor (0.94 -> 1.00) but cost
# gender a planted person in 18 at k (0.39 -> 0.33), so masks use them and the person fields do
# not; hflip changed no figure and costs only inference, so it stays everywhere.
SIGNALS = ("hflip", "margin")
DEFAULT_SIGNALS = {"mask": ("hflip", "margin"), "gender": ("hflip",), "age": ("hflip",)}
# An issue is listed in label_issues.csv when its score passes this: the evidence leans against the
# given label. It is a review queue, read top-down; nothing is proposed from it unchecked.
LIST_MIN_SCORE = 0.5
# proposed_corrections.csv holds only issues whose score reaches this: a fixed score, where the
# evidence against the given label is 3 to 1. On the demo benchmark (3 seeds) it is the highest
# threshold that keeps nearly every planted swap (15 of 18, all 15 proposed swaps right).
PROPOSE_MIN_SCORE = 0.75
# ...and only in fields the models read far better than the gate asks. A label error shows as a
# disagreement only if the model reads the truth (rate b, its balanced accuracy), and a clean label
# disagrees whenever the model errs (1 - b), so at a noise rate pi the share of disagreements that
# are label errors is pi*b / (pi*b + (1 - pi)(1 - b)). At pi = 5% that share is 1/3 for b = 0.91 and
# 1/5 for b = 0.82: a field read worse than quality 0.8 (b = 0.9 for gender, 0.87 for mask or age)
# raises mostly false alarms, however its issues are thresholded. Measured on the demo benchmark:
# gender read at quality 0.54-0.65 had 1 proposal in 6 right, age at 0.52-0.58 none; masks, read at
# 0.90, had every proposed swap right. Below the bar a field's issues are still listed and reviewed.
PROPOSE_MIN_QUALITY = 0.8
# The gate: a field is audited only when its out-of-fold models read it clearly better than chance.
# quality = (balanced accuracy - chance) / (1 - chance): 0 at chance, 1 perfect, the share of the gap
# between guessing and reading the field perfectly that the models close (the normalisation makes a
# 2-class field and a 3-class field comparable). At 0.5 a 2-class field needs balanced accuracy 0.75.
# A model that reads a field worse than that gets its own errors wrong more often than the data
# (1-5% label noise) is wrong, so its disagreements with the labels are mostly its own mistakes.
DEFAULT_MIN_QUALITY = 0.5
# Photo probabilities are clipped to [POOL_EPS, 1] before pooling log-probabilities, so one photo the
# model got confidently wrong moves a person's pooled log-odds by at most log(1/POOL_EPS)/n.
POOL_EPS = 1e-2


def find_issues(oof: pd.DataFrame, *, cutoffs: AgeCutoffs = AgeCutoffs(),
                fields: Iterable[str] = FIELDS,
                signals: Iterable[str] | dict[str, Iterable[str]] | None = None) -> pd.DataFrame:
    """Likely label errors in a table of out-of-fold probabilities, most suspicious first.

    Parameters
    ----------
    oof : DataFrame of N rows, one per photo
        Columns ``person`` and ``image`` (the photo stem), and for each requested field (a task's
        ``field``) its given answer in the task's ``column`` and the model's probabilities in
        ``labels.task_prob_columns(task)``, which must be **out-of-sample** (see the module note):
        gender: ``gender`` (0 male, 1 female) and ``p_gender_0..1``, shape (N, 2);
        mask: ``mask`` (0 wear, 1 incorrect, 2 normal) and ``p_mask_0..2``, shape (N, 3);
        age: ``age_group`` (0..2), ``age`` (years) and ``p_age_0..2``, shape (N, 3).
        A given label may be missing (NaN or an empty string): that row is skipped for that field.
        A field with no labelled row, or with fewer than two classes given, is skipped.
    cutoffs : the age groups of ``age_group`` and ``p_age_*``; they name the groups and pick the
        age in years proposed for an age fix.
    fields : which of gender, mask, age to audit.
    signals : per field (a dict) or for every field (names), the extra evidence used when its columns
        are present (default ``DEFAULT_SIGNALS``): ``hflip`` (``hflip_<task>_<k>``,
        out-of-fold probabilities of the mirror image, averaged with ``p_*``) and ``margin``
        (``margin_<task>``: the photo's mean in-sample training margin in -1..1, see
        ``maskcls.training.margins``). A missing value leaves that photo with the other evidence.

    Returns
    -------
    DataFrame, one row per issue, columns ``ISSUE_COLUMNS``:
        person, photos (stems joined by ``+``, or ``*`` for the whole person), field, given and
        suggested (names: male/female, wear/incorrect/normal, age groups like ``<30``; a swap is
        given ``incorrect+normal`` and suggested ``swap``), score (0..1, higher = more likely
        mislabeled), rank (1 = most suspicious over all fields), fix_image / fix_from / fix_to (the
        corrections-CSV fields image/from/to that fix it; age fixes are in years) and note.

    Raises
    ------
    ValueError : an unknown field, missing columns (named), or labels / probabilities out of range.
    """
    fields = _check_fields(fields)
    _check_columns(oof, fields)
    persons = oof["person"].astype(str).to_numpy()
    stems = oof["image"].astype(str).to_numpy()
    given = {f: _given_labels(oof[_TASKS[f].column], _TASKS[f].column, _TASKS[f].size) for f in fields}
    used = _signals(signals, fields)
    probs = {f: _evidence_probs(oof, f, used[f]) for f in fields}
    margin = {f: _margins(oof, f, used[f]) for f in fields}
    # A derived answer (the age group) also has its recorded value (years), which an age fix names.
    years = {f: _given_labels(oof[f], f, 130) for f in fields if _TASKS[f].derived}
    for f, recorded in years.items():
        # A row with an age but no group (a hand-made table) gets its group from the cut-offs.
        derive = np.isnan(given[f]) & ~np.isnan(recorded)
        given[f][derive] = cutoffs.groups(recorded[derive].astype(int))

    found: list[dict] = []
    for f in fields:
        if _TASKS[f].per_person:
            found += _person_issues(_TASKS[f], persons, given[f], probs[f], margin[f], years.get(f), cutoffs)
        else:
            found += _photo_issues(_TASKS[f], persons, stems, given[f], probs[f], margin[f])
    return _ranked(found)


def to_corrections(issues: pd.DataFrame) -> pd.DataFrame:
    """Issues (``find_issues`` output, or its CSV read back) -> rows of the corrections CSV.

    Written with ``to_csv(index=False)`` it reads back with ``maskcls.data.corrections.read``.
    """
    _require(issues, ["person", "field", "fix_image", "fix_from", "fix_to", "score", "rank"], "issues")
    notes = issues["note"] if "note" in issues.columns else pd.Series("", index=issues.index)
    rows = []
    for rec, note in zip(issues.to_dict("records"), notes):
        text = f"score {float(rec['score']):.2f}, rank {int(rec['rank'])}"
        note = _text(note)
        rows.append({"person_id": _text(rec["person"]), "field": _text(rec["field"]),
                     "image": _text(rec["fix_image"]) or "*", "from": _text(rec["fix_from"]),
                     "to": _text(rec["fix_to"]), "agreement": "audit",
                     "note": f"{text}; {note}" if note else text})
    return pd.DataFrame(rows, columns=CORRECTION_COLUMNS)


def score_against_truth(issues: pd.DataFrame, noise: pd.DataFrame) -> dict:
    """Precision and recall of flagged issues against the planted errors of a demo dataset.

    ``noise`` is ``truth/injected_noise.csv`` (columns person, field, image, recorded, true). A
    flagged issue is a true positive when an error of the same kind was planted on the same person
    (and, for masks, on the same photos). Kinds: ``gender``, ``mask_swap`` (incorrect/normal swaps),
    ``age``, ``mask_photo`` (single-photo mask errors, only when flagged or planted) and ``all``.

    Returns {kind: {"precision", "recall", "found", "flagged", "planted"}}: found = planted errors
    that were flagged, flagged = issues of that kind, planted = errors of that kind. A precision or
    recall with nothing to divide by is None.
    """
    flagged, planted = _issue_keys(issues), _noise_keys(noise)
    out = {}
    for kind in _kinds(flagged, planted):
        f = [k for k in flagged if kind == "all" or k[1] == kind]
        p = {k for k in planted if kind == "all" or k[1] == kind}
        hits = sum(k in planted for k in f)
        found = len(p & set(f))
        out[kind] = {"precision": hits / len(f) if f else None, "recall": found / len(p) if p else None,
                     "found": found, "flagged": len(f), "planted": len(p)}
    return out


def precision_recall_curve(issues: pd.DataFrame, noise: pd.DataFrame) -> pd.DataFrame:
    """Precision and recall after each rank, per kind (as in ``score_against_truth``), for a plot.

    Columns: kind, rank (the issue's overall rank), flagged (issues of that kind so far),
    found (planted errors found so far), precision, recall (NaN when nothing of that kind was planted).
    """
    order = issues.sort_values("rank", kind="stable") if len(issues) else issues
    flagged, planted = _issue_keys(order), _noise_keys(noise)
    ranks = order["rank"].astype(int).tolist() if len(order) else []
    rows = []
    for kind in _kinds(flagged, planted):
        p = {k for k in planted if kind == "all" or k[1] == kind}
        seen: set = set()
        hits = n = 0
        for key, rank in zip(flagged, ranks):
            if kind != "all" and key[1] != kind:
                continue
            n += 1
            if key in p:
                hits += 1
                seen.add(key)
            rows.append({"kind": kind, "rank": rank, "flagged": n, "found": len(seen),
                         "precision": hits / n, "recall": len(seen) / len(p) if p else np.nan})
    return pd.DataFrame(rows, columns=["kind", "rank", "flagged", "found", "precision", "recall"])


# ---------------------------------------------------------------- checks and parsing


def _check_fields(fields: Iterable[str]) -> tuple[str, ...]:
    if isinstance(fields, str):
        fields = (fields,)
    fields = tuple(dict.fromkeys(fields))
    bad = [f for f in fields if f not in FIELDS]
    if bad:
        raise ValueError(f"unknown field(s) {', '.join(map(repr, bad))}; expected some of {', '.join(FIELDS)}")
    return fields


def _check_columns(oof: pd.DataFrame, fields: tuple[str, ...]) -> None:
    if not isinstance(oof, pd.DataFrame):
        raise TypeError(f"oof must be a pandas DataFrame, got {type(oof).__name__}")
    need = ["person", "image"]
    for f in fields:
        t = _TASKS[f]
        need += [t.column, *labels.task_prob_columns(t)] + ([t.field] if t.derived else [])
    _require(oof, need, "out-of-fold table")


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} is missing column(s) {', '.join(missing)}; "
                         f"found {', '.join(map(str, frame.columns)) or 'none'}")


def _given_labels(column: pd.Series, name: str, k: int) -> np.ndarray:
    """(N,) float: the integer labels 0..k-1, NaN where unknown (NaN, None or an empty string)."""
    text = column.astype("string").str.strip()
    unknown = column.isna().to_numpy() | (text.fillna("") == "").to_numpy()
    values = np.array(pd.to_numeric(column.where(~unknown), errors="coerce"), dtype=float)  # writable copy
    bad = ~unknown & (np.isnan(values) | (values != np.round(values)) | (values < 0) | (values >= k))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"column {name}: {int(bad.sum())} value(s) are not a whole number in 0..{k - 1} "
                         f"nor empty (first at row {i}: {column.iloc[i]!r})")
    return values


def _probabilities(oof: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """(N, K) float probabilities, rows renormalised to sum to 1."""
    values = oof[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(values) | (values < -1e-6) | (values > 1 + 1e-6)
    if bad.any():
        col = columns[int(np.flatnonzero(bad.any(axis=0))[0])]
        raise ValueError(f"column {col}: probabilities must be numbers in 0..1 "
                         f"({int(bad.any(axis=1).sum())} row(s) are not)")
    values = values.clip(0.0, 1.0)
    total = values.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise ValueError(f"columns {', '.join(columns)}: a row of probabilities sums to 0")
    return values / total


def _text(value) -> str:
    """A corrections-CSV cell: '' for missing, whole floats (45.0 from a CSV read back) as integers."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


# ---------------------------------------------------------------- evidence


def _signals(signals, fields: tuple[str, ...]) -> dict[str, set[str]]:
    """field -> the signal names it uses (see DEFAULT_SIGNALS); unknown names raise."""
    if signals is None:
        signals = DEFAULT_SIGNALS
    per_field = ({f: set(signals.get(f, ())) for f in fields} if isinstance(signals, dict)
                 else {f: set((signals,) if isinstance(signals, str) else signals) for f in fields})
    bad = set().union(*per_field.values()) - set(SIGNALS) if per_field else set()
    if bad:
        raise ValueError(f"unknown signal(s) {', '.join(sorted(bad))}; expected some of {', '.join(SIGNALS)}")
    return per_field


def _evidence_probs(oof: pd.DataFrame, field: str, signals: set[str]) -> np.ndarray:
    """(N, K) out-of-fold probabilities of ``field``, averaged with the mirror image's when present."""
    task = _TASKS[field]
    probs = _probabilities(oof, labels.task_prob_columns(task))
    flipped = [f"hflip_{task.name}_{k}" for k in range(probs.shape[1])]
    if "hflip" in signals and all(c in oof.columns for c in flipped):
        values = oof[flipped].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        ok = ~np.isnan(values).any(axis=1)
        if ok.any():
            probs[ok] = (probs[ok] + _probabilities(oof.loc[ok], flipped)) / 2
    return probs


def _margins(oof: pd.DataFrame, field: str, signals: set[str]) -> np.ndarray | None:
    """(N,) in-sample training margins of ``field`` in -1..1 (NaN unknown), or None when not used."""
    col = f"margin_{_TASKS[field].name}"
    if "margin" not in signals or col not in oof.columns:
        return None
    values = pd.to_numeric(oof[col], errors="coerce").to_numpy(dtype=float)
    if np.isnan(values).all():
        return None
    if (np.abs(values[~np.isnan(values)]) > 1 + 1e-6).any():
        raise ValueError(f"column {col}: training margins must lie in -1..1")
    return values.clip(-1.0, 1.0)


def _score(prob_given: np.ndarray, margin: np.ndarray | None) -> np.ndarray:
    """(n,) evidence that the given label is wrong, 0..1 (see SIGNALS): the mean of 1 - p(given) and
    (1 - margin) / 2 where a margin is known, 1 - p(given) alone where not."""
    score = 1.0 - prob_given
    if margin is None:
        return score
    known = ~np.isnan(margin)
    out = score.copy()
    out[known] = (score[known] + (1.0 - margin[known]) / 2) / 2
    return out


def _best_other(given: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(N,) the most probable class other than the given one."""
    others = probs.copy()
    others[np.arange(len(given)), given] = -1.0
    return others.argmax(axis=1)


def _pool(probs: np.ndarray) -> np.ndarray:
    """(n, K) photo probabilities of one person -> (K,) person probabilities.

    Mean of log-probabilities, renormalised (a geometric mean, i.e. a product of experts tempered by
    1/n). A product of the n photos' probabilities would treat them as independent evidence; they
    are the same face seen by the same model, so that would be wildly over-confident. The geometric
    mean keeps one photo's scale, and unlike the arithmetic mean it lets a photo the model is unsure
    about (a masked face for gender: p near 1/K) abstain while clear photos decide. Clipping at
    POOL_EPS bounds the pull of one odd photo, so six agreeing photos outvote it.
    """
    logp = np.log(np.clip(probs, POOL_EPS, 1.0)).mean(axis=0)
    p = np.exp(logp - logp.max())
    return p / p.sum()


def _pool_margin(margins: np.ndarray | None, idx: np.ndarray) -> float:
    """A person's training margin: the mean over their photos with a known margin (NaN if none)."""
    if margins is None:
        return np.nan
    m = margins[idx]
    m = m[~np.isnan(m)]
    return float(m.mean()) if len(m) else np.nan


def issue_evidence(issues: pd.DataFrame, oof: pd.DataFrame, *, cutoffs: AgeCutoffs = AgeCutoffs(),
                   signals: Iterable[str] | dict[str, Iterable[str]] | None = None) -> pd.Series:
    """What one source of probabilities (``oof``, find_issues' input) says of each issue, as text for
    a reader: the probability it gives the suggested answer, pooled over the person's photos as the
    ranking pools them ("female 0.93"; a swap: "swap 0.88"), or "no opinion" where it has none
    (``oof`` lacks the photos or the field's columns, or its probabilities are missing there)."""
    out = []
    rows = {p: i for i, p in enumerate(zip(oof["person"].astype(str), oof["image"].astype(str)))} if len(oof) else {}
    persons = oof["person"].astype(str).to_numpy() if len(oof) else np.array([], str)
    by_person = pd.Series(range(len(persons))).groupby(persons, sort=False).indices if len(oof) else {}
    cache: dict[str, np.ndarray | None] = {}
    for issue in issues.itertuples(index=False):
        field = issue.field
        if field not in cache:
            task = _TASKS[field]
            cols = labels.task_prob_columns(task)
            if not len(oof) or not all(c in oof.columns for c in cols):
                cache[field] = None
            else:
                values = oof[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
                ok = ~np.isnan(values).any(axis=1)
                probs = np.full_like(values, np.nan)
                if ok.any():
                    probs[ok] = _evidence_probs(oof.loc[ok], field, _signals(signals, (field,))[field])
                cache[field] = probs
        probs = cache[field]
        names = _TASKS[field].names(cutoffs)
        text = "no opinion"
        if probs is not None and issue.photos == "*":
            idx = by_person.get(str(issue.person))
            if idx is not None:
                p = probs[idx]
                p = p[~np.isnan(p).any(axis=1)]
                if len(p) and issue.suggested in names:
                    text = f"{issue.suggested} {_pool(p)[names.index(issue.suggested)]:.2f}"
        elif probs is not None and issue.suggested == "swap":
            a, b = str(issue.photos).split("+", 1)
            i, j = rows.get((str(issue.person), a)), rows.get((str(issue.person), b))
            if i is not None and j is not None and not np.isnan(probs[[i, j]]).any():
                text = f"swap {np.sqrt(probs[i, _MASK_NORMAL] * probs[j, _MASK_INCORRECT]):.2f}"
        elif probs is not None:
            i = rows.get((str(issue.person), str(issue.photos)))
            if i is not None and not np.isnan(probs[i]).any() and issue.suggested in names:
                text = f"{issue.suggested} {probs[i, names.index(issue.suggested)]:.2f}"
        out.append(text)
    return pd.Series(out, index=issues.index, dtype=object)


# ---------------------------------------------------------------- the gate


def field_quality(oof: pd.DataFrame, *, cutoffs: AgeCutoffs = AgeCutoffs(),
                  fields: Iterable[str] = FIELDS,
                  signals: Iterable[str] | dict[str, Iterable[str]] | None = None,
                  min_quality: float = DEFAULT_MIN_QUALITY) -> pd.DataFrame:
    """How well the out-of-fold models read each field: the audit's gate.

    Balanced accuracy (sklearn's ``balanced_accuracy_score``: the mean recall over the classes
    given) of the models' answer against the given labels, judged as the ranking judges them: per
    person for gender and age (pooled photos, majority given label), per photo for mask. Chance is
    1 / number of classes given (what a constant or random answer scores); quality =
    (balanced accuracy - chance) / (1 - chance). A field passes when quality >= ``min_quality``.

    Returns one row per field: field, units, classes, balanced_accuracy, chance, quality, passed,
    reason (a one-line verdict). A field with no labels or one class is not passed (nothing to audit).
    """
    if not 0 <= min_quality <= 1:
        raise ValueError(f"min_quality must be between 0 and 1, got {min_quality}")
    fields = _check_fields(fields)
    _check_columns(oof, fields)
    used = _signals(signals, fields)
    persons = oof["person"].astype(str).to_numpy()
    rows = []
    for f in fields:
        task = _TASKS[f]
        given = _given_labels(oof[task.column], task.column, task.size)
        if task.derived:
            years = _given_labels(oof[f], f, 130)
            derive = np.isnan(given) & ~np.isnan(years)
            given[derive] = cutoffs.groups(years[derive].astype(int))
        probs = _evidence_probs(oof, f, used[f])
        if not task.per_person:
            ok = ~np.isnan(given)
            y, pred = given[ok].astype(int), probs[ok].argmax(1)
        else:
            y, pred = [], []
            for _, idx in pd.Series(range(len(persons))).groupby(persons, sort=True).indices.items():
                lab = given[idx]
                lab = lab[~np.isnan(lab)].astype(int)
                if len(lab):
                    y.append(int(np.bincount(lab).argmax()))
                    pred.append(int(_pool(probs[idx]).argmax()))
            y, pred = np.array(y, int), np.array(pred, int)
        unit = "people" if task.per_person else "photos"
        classes = len(set(y.tolist()))
        row = {"field": f, "units": len(y), "classes": classes, "balanced_accuracy": np.nan, "chance": np.nan,
               "quality": np.nan, "passed": False}
        if classes < 2:
            row["reason"] = f"{f}: not audited: {'no' if not len(y) else 'one'} class given over {len(y)} {unit}"
        else:
            from sklearn.metrics import balanced_accuracy_score

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a predicted class never given: harmless here
                ba = float(balanced_accuracy_score(y, pred))
            chance = 1.0 / classes
            quality = (ba - chance) / (1 - chance)
            passed = quality >= min_quality
            row.update(balanced_accuracy=ba, chance=chance, quality=quality, passed=bool(passed))
            head = (f"{f}: balanced accuracy {ba:.2f} vs chance {chance:.2f} over {len(y)} {unit} "
                    f"(quality {quality:.2f}, bar {min_quality:.2f})")
            row["reason"] = head + ("; audited" if passed else
                                    f"; not audited: read below the bar (--min-quality {min_quality:g}), so the "
                                    "models' disagreements with the labels would mostly be their own errors")
        rows.append(row)
    return pd.DataFrame(rows, columns=["field", "units", "classes", "balanced_accuracy", "chance", "quality",
                                       "passed", "reason"])


def proposal_verdicts(issues: pd.DataFrame, *, quality: pd.DataFrame | None = None,
                      layout: Iterable[str] = (), min_score: float = PROPOSE_MIN_SCORE,
                      min_quality: float = PROPOSE_MIN_QUALITY) -> pd.Series:
    """Per issue, "" when it is proposed, else why not (one short phrase).

    An issue is proposed when its score reaches ``min_score`` (PROPOSE_MIN_SCORE), its field's
    quality in ``quality`` (``field_quality``'s table; None = no field bar) reaches ``min_quality``
    (PROPOSE_MIN_QUALITY), and it is not a single-photo mask change of a person in ``layout``
    (``layout_people``)."""
    if not 0 <= min_quality <= 1:
        raise ValueError(f"min_quality must be between 0 and 1, got {min_quality}")
    read = {} if quality is None else dict(zip(quality["field"], quality["quality"].astype(float)))
    layout = set(layout)
    verdicts = []
    for score, field, person, fix_to in zip(issues["score"].astype(float), issues["field"].astype(str),
                                            issues["person"].astype(str), issues["fix_to"].astype(str)):
        q = read.get(field)
        if score < min_score:
            verdicts.append(f"score below {min_score:g}")
        elif quality is not None and (q is None or not q >= min_quality):
            verdicts.append(f"{field} read at quality {q:.2f} < {min_quality:g}" if q is not None and q == q
                            else f"{field} quality unknown")
        elif field == "mask" and fix_to != "swap" and person in layout:
            verdicts.append("one photo of the 7-photo layout (only a swap keeps it)")
        else:
            verdicts.append("")
    return pd.Series(verdicts, index=issues.index, dtype=object)


def proposals(issues: pd.DataFrame, *, quality: pd.DataFrame | None = None, layout: Iterable[str] = (),
              min_score: float = PROPOSE_MIN_SCORE, min_quality: float = PROPOSE_MIN_QUALITY) -> pd.DataFrame:
    """The issues worth proposing as corrections (see ``proposal_verdicts``)."""
    keep = proposal_verdicts(issues, quality=quality, layout=layout, min_score=min_score,
                             min_quality=min_quality) == ""
    return issues[keep.to_numpy(dtype=bool)].reset_index(drop=True)


# ---------------------------------------------------------------- per field


def _person_issues(task: labels.Task, persons: np.ndarray, given: np.ndarray, probs: np.ndarray,
                   margins: np.ndarray | None, years: np.ndarray | None, cutoffs: AgeCutoffs) -> list[dict]:
    """Issues of an answer that belongs to the person; ``years`` holds the recorded ages of a derived one."""
    field, names = task.field, task.names(cutoffs)
    people, person_given, person_probs, person_margins, notes, person_years = [], [], [], [], [], []
    for person, idx in pd.Series(range(len(persons))).groupby(persons, sort=True).indices.items():
        lab = given[idx]
        lab = lab[~np.isnan(lab)].astype(int)
        if not len(lab):
            continue  # nobody told us: nothing to audit
        counts = np.bincount(lab, minlength=len(names))
        g = int(counts.argmax())  # the majority; a tie goes to the lower class
        notes.append("" if counts[g] == len(lab) else
                     f"photos disagree on the given {field} ("
                     + ", ".join(f"{n} {names[c]}" for c, n in enumerate(counts) if n) + "); majority used")
        people.append(person)
        person_given.append(g)
        # Every photo of the person is evidence, labelled for this field or not.
        person_probs.append(_pool(probs[idx]))
        # Margins exist only for photos labelled with this person's majority (or their own) label.
        person_margins.append(_pool_margin(margins, idx[given[idx] == g]))
        if years is not None:
            known = years[idx][~np.isnan(years[idx])].astype(int)
            person_years.append(int(np.bincount(known).argmax()) if len(known) else None)
    if not people or len(set(person_given)) < 2:
        return []
    g_arr, p_arr = np.array(person_given), np.array(person_probs)
    score = _score(p_arr[np.arange(len(g_arr)), g_arr], None if margins is None else np.array(person_margins))
    suggested = _best_other(g_arr, p_arr)
    out = []
    for i in np.flatnonzero(score >= LIST_MIN_SCORE):
        g, s = int(g_arr[i]), int(suggested[i])
        issue = {"person": people[i], "photos": "*", "field": field, "given": names[g], "suggested": names[s],
                 "score": float(score[i]), "fix_image": "*", "note": notes[i]}
        if years is not None:
            age = person_years[i]
            issue["fix_from"] = "" if age is None else str(age)
            issue["fix_to"] = str(_representative_age(s, g, age, cutoffs))
        else:
            issue["fix_from"], issue["fix_to"] = names[g], names[s]
        out.append(issue)
    return out


def _representative_age(group: int, given_group: int, given_age: int | None, cutoffs: AgeCutoffs) -> int:
    """An age in years inside ``group``, as near the given age as the group allows."""
    if group == 0:
        return cutoffs.young - 1
    if group == 2:
        return cutoffs.old
    if given_age is not None:
        return int(min(max(given_age, cutoffs.young), cutoffs.old - 1))
    return cutoffs.young if given_group == 0 else cutoffs.old - 1


def _photo_issues(task: labels.Task, persons: np.ndarray, stems: np.ndarray, given: np.ndarray,
                  probs: np.ndarray, margins: np.ndarray | None) -> list[dict]:
    """Issues of a per-photo answer (the mask), one person's incorrect/normal swap reported as one."""
    rows = np.flatnonzero(~np.isnan(given))
    if not len(rows):
        return []
    lab, p = given[rows].astype(int), probs[rows]
    m = None if margins is None else margins[rows]
    if len(set(lab.tolist())) < 2:
        return []
    score = _score(p[np.arange(len(lab)), lab], m)
    suggested = _best_other(lab, p)
    field, names = task.field, task.names()
    out, used = [], set()
    for person, idx in pd.Series(range(len(rows))).groupby(persons[rows], sort=True).indices.items():
        inc, nor = idx[lab[idx] == _MASK_INCORRECT], idx[lab[idx] == _MASK_NORMAL]
        if len(inc) != 1 or len(nor) != 1:
            continue
        i, j = int(inc[0]), int(nor[0])
        # A swap when the swapped assignment explains both photos better than the given one. Its
        # out-of-fold part is the geometric mean of p(normal | photo recorded incorrect) and
        # p(incorrect | photo recorded normal): high only when *both* photos look swapped (an AND,
        # where a max would fire on one odd photo), and on the same 0..1 scale as a single photo's
        # 1 - p(given), so swaps and single-photo issues rank together fairly. Its margin is the
        # lower of the two photos' evidence (again an AND).
        swapped = p[i, _MASK_NORMAL] * p[j, _MASK_INCORRECT]
        pair_margin = None if m is None or np.isnan(m[[i, j]]).any() else np.array([max(m[i], m[j])])
        pair_score = float(_score(np.array([1.0 - np.sqrt(swapped)]), pair_margin)[0])
        if pair_score >= LIST_MIN_SCORE and swapped > p[i, _MASK_INCORRECT] * p[j, _MASK_NORMAL]:
            photos = f"{stems[rows[i]]}+{stems[rows[j]]}"
            out.append({"person": person, "photos": photos, "field": field,
                        "given": f"{names[_MASK_INCORRECT]}+{names[_MASK_NORMAL]}", "suggested": "swap",
                        "score": pair_score, "fix_image": photos,
                        "fix_from": names[_MASK_INCORRECT], "fix_to": "swap", "note": ""})
            used.update((i, j))
    for i in np.flatnonzero(score >= LIST_MIN_SCORE):
        if i in used:
            continue
        g, s = int(lab[i]), int(suggested[i])
        stem = str(stems[rows[i]])
        out.append({"person": str(persons[rows[i]]), "photos": stem, "field": field, "given": names[g],
                    "suggested": names[s], "score": float(score[i]), "fix_image": stem,
                    "fix_from": names[g], "fix_to": names[s], "note": ""})
    return out


def _ranked(found: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(found, columns=[c for c in ISSUE_COLUMNS if c != "rank"])
    frame["score"] = frame["score"].astype(float).clip(0.0, 1.0)
    frame["_field"] = frame["field"].map({f: i for i, f in enumerate(FIELDS)})
    # Ties broken by field, person and photos, so the same input always gives the same ranks.
    frame = frame.sort_values(["score", "_field", "person", "photos"], ascending=[False, True, True, True],
                              kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1, dtype=np.int64)
    return frame[ISSUE_COLUMNS]


# ---------------------------------------------------------------- scoring against planted errors


def _issue_keys(issues: pd.DataFrame) -> list[tuple]:
    """One (person, kind, photos) key per issue, in row order."""
    _require(issues, ["person", "field", "photos", "fix_to"], "issues")
    keys = []
    for rec in issues.to_dict("records"):
        field, to = _text(rec["field"]), _text(rec["fix_to"]).lower()
        keys.append(_key(_text(rec["person"]), field, _text(rec["photos"]), swap=to == "swap"))
    return keys


def _noise_keys(noise: pd.DataFrame) -> set[tuple]:
    _require(noise, ["person", "field", "image"], "noise table")
    keys = set()
    for rec in noise.to_dict("records"):
        values = {_text(rec.get(c, "")).lower() for c in ("recorded", "true")}
        keys.add(_key(_text(rec["person"]), _text(rec["field"]), _text(rec["image"]), swap="swap" in values))
    return keys


def _key(person: str, field: str, photos: str, *, swap: bool) -> tuple:
    field = field.lower()
    if field in _TASKS and not _TASKS[field].per_person:
        # Photos compared as a set: incorrect_mask+normal and normal+incorrect_mask are one swap.
        return (person, f"{field}_swap" if swap else f"{field}_photo", frozenset(photos.split("+")))
    return (person, field, frozenset())


def _kinds(flagged: list[tuple], planted: set[tuple]) -> list[str]:
    present = {k[1] for k in flagged} | {k[1] for k in planted}
    return list(KINDS) + sorted(present - set(KINDS)) + ["all"]
