"""Rank likely label errors from out-of-fold probabilities: the pure core of ``maskcls audit``.

Tables in, a table of issues out, no file I/O. Gender and age belong to a person, so they are judged
once per person from all of that person's photos (one issue per person, not seven); masks are judged
per photo, and one person's ``incorrect_mask`` and ``normal`` photos recorded the wrong way round are
reported as one ``swap`` issue, the way the known errors of the competition data look.

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

# Confident learning estimates per-class thresholds and a noise matrix from the data; with only a
# handful of labelled examples those estimates are noise themselves, so below this size (or when
# cleanlab raises on a degenerate input) the fallback below is used instead.
MIN_CLEANLAB_EXAMPLES = 10
# Flag exactly the examples the confident joint counts off its diagonal: a label is flagged when the
# model's probability for another class reaches that class's own average confidence (the per-class
# threshold makes this fair to rare classes such as 60+). cleanlab's default, prune_by_noise_rate,
# first scales those counts up by the share of examples not counted anywhere and then flags that
# many by margin, so every class with a hard tail gets extra borderline flags (more than 1 in 10 in
# our simulations, for a little recall). A review queue is read by a person: precision matters more.
FILTER_BY = "confident_learning"
# Fallback rule (tiny inputs): the model gives the given label less than even odds and prefers
# another one.
FALLBACK_MAX_CONFIDENCE = 0.5
# Photo probabilities are clipped to [POOL_EPS, 1] before pooling log-probabilities, so one photo the
# model got confidently wrong moves a person's pooled log-odds by at most log(1/POOL_EPS)/n.
POOL_EPS = 1e-2


def find_issues(oof: pd.DataFrame, *, cutoffs: AgeCutoffs = AgeCutoffs(),
                fields: Iterable[str] = FIELDS) -> pd.DataFrame:
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
    probs = {f: _probabilities(oof, labels.task_prob_columns(_TASKS[f])) for f in fields}
    # A derived answer (the age group) also has its recorded value (years), which an age fix names.
    years = {f: _given_labels(oof[f], f, 130) for f in fields if _TASKS[f].derived}
    for f, recorded in years.items():
        # A row with an age but no group (a hand-made table) gets its group from the cut-offs.
        derive = np.isnan(given[f]) & ~np.isnan(recorded)
        given[f][derive] = cutoffs.groups(recorded[derive].astype(int))

    found: list[dict] = []
    for f in fields:
        if _TASKS[f].per_person:
            found += _person_issues(_TASKS[f], persons, given[f], probs[f], years.get(f), cutoffs)
        else:
            found += _photo_issues(_TASKS[f], persons, stems, given[f], probs[f])
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


# ---------------------------------------------------------------- flagging


def _flag(given: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) int labels, (N, K) probs -> (N,) bool flagged, (N,) quality in 0..1 (1 = label looks right)."""
    if len(given) >= MIN_CLEANLAB_EXAMPLES:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        try:
            with warnings.catch_warnings():
                # cleanlab warns that a class with very few examples may not have all its issues
                # flagged; pruning conservatively there is what an audit of rare classes wants.
                warnings.simplefilter("ignore")
                flagged = find_label_issues(given, probs, filter_by=FILTER_BY, n_jobs=1)
                # self-confidence, p(given label): comparable across fields and with the swap score.
                quality = get_label_quality_scores(given, probs, method="self_confidence")
            return np.asarray(flagged, bool), np.asarray(quality, float)
        except Exception:  # noqa: BLE001 - degenerate inputs make cleanlab fail in varied ways
            pass  # fall through to the self-confidence rule below
    # Fallback (too few examples, or cleanlab could not run): rank by self-confidence and flag
    # labels the model gives less than even odds while preferring another class.
    quality = probs[np.arange(len(given)), given]
    return (quality < FALLBACK_MAX_CONFIDENCE) & (_best_other(given, probs) != given), quality


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


# ---------------------------------------------------------------- per field


def _person_issues(task: labels.Task, persons: np.ndarray, given: np.ndarray, probs: np.ndarray,
                   years: np.ndarray | None, cutoffs: AgeCutoffs) -> list[dict]:
    """Issues of an answer that belongs to the person; ``years`` holds the recorded ages of a derived one."""
    field, names = task.field, task.names(cutoffs)
    people, person_given, person_probs, notes, person_years = [], [], [], [], []
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
        if years is not None:
            known = years[idx][~np.isnan(years[idx])].astype(int)
            person_years.append(int(np.bincount(known).argmax()) if len(known) else None)
    if not people or len(set(person_given)) < 2:
        return []
    g_arr, p_arr = np.array(person_given), np.array(person_probs)
    flagged, quality = _flag(g_arr, p_arr)
    suggested = _best_other(g_arr, p_arr)
    out = []
    for i in np.flatnonzero(flagged):
        g, s = int(g_arr[i]), int(suggested[i])
        issue = {"person": people[i], "photos": "*", "field": field, "given": names[g], "suggested": names[s],
                 "score": 1.0 - float(quality[i]), "fix_image": "*", "note": notes[i]}
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
                  probs: np.ndarray) -> list[dict]:
    """Issues of a per-photo answer (the mask), one person's incorrect/normal swap reported as one."""
    rows = np.flatnonzero(~np.isnan(given))
    if not len(rows):
        return []
    lab, p = given[rows].astype(int), probs[rows]
    if len(set(lab.tolist())) < 2:
        return []
    flagged, quality = _flag(lab, p)
    suggested = _best_other(lab, p)
    field, names = task.field, task.names()
    out, used = [], set()
    for person, idx in pd.Series(range(len(rows))).groupby(persons[rows], sort=True).indices.items():
        inc, nor = idx[lab[idx] == _MASK_INCORRECT], idx[lab[idx] == _MASK_NORMAL]
        if len(inc) != 1 or len(nor) != 1:
            continue
        i, j = int(inc[0]), int(nor[0])
        # A swap when cleanlab doubts either photo and the swapped assignment explains both photos
        # better than the given one. Its score is the geometric mean of p(normal | photo recorded
        # incorrect) and p(incorrect | photo recorded normal): high only when *both* photos look
        # swapped (an AND, where a max would fire on one odd photo), and on the same 0..1 scale as a
        # single photo's 1 - p(given), so swaps and single-photo issues rank together fairly.
        swapped = p[i, _MASK_NORMAL] * p[j, _MASK_INCORRECT]
        if (flagged[i] or flagged[j]) and swapped > p[i, _MASK_INCORRECT] * p[j, _MASK_NORMAL]:
            photos = f"{stems[rows[i]]}+{stems[rows[j]]}"
            out.append({"person": person, "photos": photos, "field": field,
                        "given": f"{names[_MASK_INCORRECT]}+{names[_MASK_NORMAL]}", "suggested": "swap",
                        "score": float(np.sqrt(swapped)), "fix_image": photos,
                        "fix_from": names[_MASK_INCORRECT], "fix_to": "swap", "note": ""})
            used.update((i, j))
    for i in np.flatnonzero(flagged):
        if i in used:
            continue
        g, s = int(lab[i]), int(suggested[i])
        stem = str(stems[rows[i]])
        out.append({"person": str(persons[rows[i]]), "photos": stem, "field": field, "given": names[g],
                    "suggested": names[s], "score": 1.0 - float(quality[i]), "fix_image": stem,
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
