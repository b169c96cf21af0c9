"""`maskcls eda`: a look at a dataset before training on it, as a report that opens from disk.

One pass over the photos decodes each photo once (``read_rgb``, in a thread pool: PIL and OpenCV
release the GIL) and takes from it everything the report needs: size, mode and format, a perceptual
hash, a small JPEG thumbnail and its share of the mean face. Everything else is computed from the
table and from those per-photo records by the pure functions below (tables and arrays in, plain dicts
out); ``eda_page`` turns the result into figures and HTML.

Near-duplicates are found on 256-bit perceptual hashes (imagehash's phash, hash_size 16) with XOR +
popcount on the hashes packed as four 64-bit words, in numpy, a block of rows at a time: no Python loop
over pairs, and memory bounded. 256 bits, not phash's default 64: the photos share one pose and plain
backgrounds, and on such data 64-bit hashes of different people collide: on the 18,900-photo demo set
11,000 pairs of different people lie within 4 bits of 64 (49 at distance 0), while with 256 bits the
closest two different people are 10 bits apart and JPEG re-encodes of a photo stay within about 8.
Only pairs from DIFFERENT people are listed: one person's photos are alike by design, while the same
face filed under two people is one person entered twice or a labelling mistake.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import imagehash
import numpy as np
import pandas as pd
from PIL import Image

from .. import labels
from ..data import corrections as corr_mod
from ..data.images import PhotoError, read_rgb, resize
from ..data.summary import summarize
from ..data.table import add_derived, describe, parse_folder_name, raise_on_fatal, scan
from ..errors import UserError
from ..fileio import atomic_dir, atomic_open, check_writable, claim_folder, write_json, write_text
from ..progress import bar

FACE_SIZE = (96, 128)  # (width, height) every photo is resized to for the mean face and the hash
HASH_SIZE = 16  # phash's side: HASH_SIZE**2 = 256 bits
HASH_BITS = HASH_SIZE * HASH_SIZE
DUP_THRESHOLD = 8  # default: bits of HASH_BITS
THUMB_SIZE = (48, 64)  # (width, height) of the thumbnails in the report
THUMB_QUALITY = 85
NEAR_YEARS = 2  # "near a cut-off": this many ages on either side of the boundary
ALT_OLD = 58  # the old-age cut-off many teams moved to
MAX_PAIRS = 20_000  # near-duplicate photo pairs kept (closest first); all are counted
UNKNOWN = "unknown"


# --------------------------------------------------------------------------- the photo pass


@dataclass(frozen=True)
class PhotoRecord:
    """What the report needs from one photo, read in one decode."""

    format: str  # PIL's format from the header (JPEG, PNG, ...), or "unreadable"
    mode: str  # PIL's mode from the header (RGB, L, RGBA, P, CMYK, ...), or "unreadable"
    channels: int | None  # bands of that mode
    size: tuple[int, int] | None  # (width, height) as decoded (EXIF orientation applied); None if not
    error: str | None  # the decoder's message (without the path) when the photo does not decode
    phash: bytes = b""  # HASH_BITS-bit perceptual hash, packed (first bit most significant)
    digest: bytes = b""  # hash of the decoded pixels: equal digests are exact duplicates
    thumb: bytes = b""  # THUMB_SIZE JPEG
    face: np.ndarray | None = None  # FACE_SIZE RGB uint8, for the mean face (dropped after summing)


# What this project measured (docs/recipes.md, "Recipes: what beats a plain loop"): inverse-frequency class weights raised macro F1,
# focal loss and a weighted sampler did not beat them. The advice follows the measurement.
REBALANCE_ADVICE = ("Weight the loss by inverse class frequency (train.class_weights=true, the default), which "
                    "helped in this project's recipe study; focal loss (train.loss=focal) and weighted sampling "
                    "did not help there.")


def inspect_photo(path: str) -> PhotoRecord:
    """Read one photo's header (no decode) for format and mode, then decode it once with ``read_rgb``."""
    try:
        with Image.open(path) as im:
            fmt, mode = im.format or UNKNOWN, im.mode
        channels: int | None = Image.getmodebands(mode)
    except Exception:  # the decoder below says what is wrong
        fmt, mode, channels = "unreadable", "unreadable", None
    try:
        rgb = read_rgb(path)
    except PhotoError as exc:
        text, prefix = str(exc), f"{path}: "
        return PhotoRecord(fmt, mode, channels, None, text[len(prefix):] if text.startswith(prefix) else text)
    # An equality check, not security: sha1 is the fastest hashlib digest here (CPU SHA extensions),
    # and hashlib releases the GIL on large buffers.
    digest = hashlib.sha1(str(rgb.shape).encode(), usedforsecurity=False)
    digest.update(np.ascontiguousarray(rgb).data)
    face = resize(rgb, FACE_SIZE)  # the hash, the thumbnail and the mean face all start from it
    bits = imagehash.phash(Image.fromarray(face), hash_size=HASH_SIZE).hash
    thumb = resize(face, THUMB_SIZE)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
    return PhotoRecord(fmt, mode, channels, (rgb.shape[1], rgb.shape[0]), None,
                       phash=np.packbits(bits.ravel()).tobytes(), digest=digest.digest(),
                       thumb=buf.tobytes() if ok else b"", face=face)


def hash_words(packed: Sequence[bytes], bits: int = HASH_BITS) -> np.ndarray:
    """Packed hashes (``bits`` bits each; empty for a photo without one) -> (N, bits // 64) uint64."""
    size = bits // 8
    buf = b"".join(h if len(h) == size else bytes(size) for h in packed)
    return np.frombuffer(buf, dtype=">u8").astype(np.uint64).reshape(len(packed), bits // 64)


def _records(paths: Sequence[str], workers: int, progress: bool) -> Iterator[PhotoRecord]:
    """``inspect_photo`` for every path, in order, through a thread pool, a block at a time so that
    finished records (each holding a small face) never pile up far ahead of the consumer."""
    block = max(64, 32 * workers)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        def run() -> Iterator[PhotoRecord]:
            for start in range(0, len(paths), block):
                yield from pool.map(inspect_photo, paths[start:start + block])

        yield from bar(run(), desc="eda: reading photos", total=len(paths), unit="photo", disable=not progress)


@dataclass
class PhotoScan:
    """The photo pass's result, one entry per table row."""

    records: list[PhotoRecord]  # with ``face`` dropped
    hashes: np.ndarray  # (N, HASH_BITS // 64) uint64 phash words (0 where the photo does not decode)
    decoded: np.ndarray  # (N,) bool
    face_sums: dict[int, np.ndarray]  # mask state (-1 unknown) -> float64 sum of faces
    face_counts: dict[int, int]


def scan_photos(paths: Sequence[str], masks: Sequence[int], *, workers: int = 4, progress: bool = True) -> PhotoScan:
    """Decode every photo once; ``masks`` holds each photo's mask state (-1 unknown) for the mean faces."""
    n = len(paths)
    decoded = np.zeros(n, bool)
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    records = []
    for i, rec in enumerate(_records(list(paths), workers, progress)):
        if rec.face is not None:
            m = int(masks[i])
            if m not in sums:
                sums[m] = np.zeros((FACE_SIZE[1], FACE_SIZE[0], 3), np.float64)
                counts[m] = 0
            sums[m] += rec.face
            counts[m] += 1
            decoded[i] = True
            rec = dataclasses.replace(rec, face=None)  # summed; keeping it would cost 37 KB a photo
        records.append(rec)
    return PhotoScan(records, hash_words([r.phash for r in records]), decoded, sums, counts)


def mean_faces(sums: dict[int, np.ndarray], counts: dict[int, int]) -> dict[int, np.ndarray]:
    """Mask state -> mean face (uint8), for the states that have decoded photos."""
    return {m: np.clip(np.rint(sums[m] / counts[m]), 0, 255).astype(np.uint8) for m in sorted(sums) if counts[m]}


# --------------------------------------------------------------------------- near-duplicates (pure)

_POP8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def popcount64(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (numpy >= 2 has it built in; older numpy: a byte table)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    x = np.ascontiguousarray(x, dtype=np.uint64)
    return _POP8[x.view(np.uint8).reshape(*x.shape, 8)].sum(axis=-1, dtype=np.uint8)


def near_duplicate_pairs(hashes: np.ndarray, groups: np.ndarray, *, threshold: int,
                         max_pairs: int = MAX_PAIRS, block_elems: int = 1 << 22) -> tuple[np.ndarray, int]:
    """Pairs of hashes at Hamming distance <= ``threshold`` whose ``groups`` (people) differ.

    hashes : (N,) or (N, W) uint64: hashes of 64 * W bits, packed in W words.
    groups : (N,) integer group of each hash; pairs inside one group are ignored.
    Returns ((K, 3) int64 rows (i, j, distance) with i < j, sorted by distance then i then j, at most
    ``max_pairs`` of them, the closest kept), and the number of such pairs in all.
    Rows are compared a block at a time (about ``block_elems`` pairs per block), upper triangle only.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    hashes = hashes[:, None] if hashes.ndim == 1 else hashes
    groups = np.asarray(groups)
    if hashes.ndim != 2 or groups.shape != hashes.shape[:1]:
        raise ValueError(f"hashes {hashes.shape} must be (N,) or (N, W) and groups {groups.shape} (N,)")
    n, words = hashes.shape
    rows = max(1, block_elems // max(n, 1))
    kept = np.empty((0, 3), np.int64)
    total = 0
    for a in range(0, n, rows):
        b = min(n, a + rows)
        dist = np.zeros((b - a, n - a), np.uint16)  # column k is photo a + k
        for w in range(words):
            dist += popcount64(hashes[a:b, w, None] ^ hashes[None, a:, w])
        ii, kk = np.nonzero(dist <= threshold)
        d = dist[ii, kk]
        ii = ii + a
        jj = kk + a
        keep = (jj > ii) & (groups[ii] != groups[jj])
        found = np.stack([ii[keep], jj[keep], d[keep].astype(np.int64)], axis=1)
        total += len(found)
        kept = np.concatenate([kept, found])
        if len(kept) > max_pairs:
            kept = kept[np.lexsort((kept[:, 1], kept[:, 0], kept[:, 2]))][:max_pairs]
    kept = kept[np.lexsort((kept[:, 1], kept[:, 0], kept[:, 2]))]
    return kept, total


def duplicate_summary(table: pd.DataFrame, pairs: np.ndarray, total: int, digests: Sequence[bytes], *,
                      threshold: int) -> dict:
    """The near-duplicate pairs named (person, photo, path), and the same grouped by pair of people."""

    def photo(i: int) -> dict:
        return {"person": str(table.at[i, "person"]), "image": str(table.at[i, "image"]), "path": str(table.at[i, "path"])}

    listed = []
    by_people: dict[tuple[str, str], dict] = {}
    for i, j, d in pairs.tolist():
        exact = bool(digests[i]) and digests[i] == digests[j]
        a, b = photo(i), photo(j)
        if a["person"] > b["person"]:
            a, b = b, a
        listed.append({"distance": int(d), "exact": exact, "a": a, "b": b})
        entry = by_people.setdefault((a["person"], b["person"]),
                                     {"people": [a["person"], b["person"]], "pairs": 0, "exact": 0, "closest": int(d)})
        entry["pairs"] += 1
        entry["exact"] += int(exact)
        entry["closest"] = min(entry["closest"], int(d))
    people = sorted(by_people.values(), key=lambda e: (-e["pairs"], e["closest"], e["people"]))
    return {
        "method": f"phash (imagehash, hash_size {HASH_SIZE}): {HASH_BITS} bits, Hamming distance",
        "threshold": threshold,
        "pairs_total": int(total),
        "pairs_listed": len(listed),
        "exact_pairs": sum(p["exact"] for p in listed),
        "people_pairs": people,
        "pairs": listed,
    }


# --------------------------------------------------------------------------- label statistics (pure)


def imbalance(class_counts: dict[str, int]) -> dict:
    """Largest / smallest non-empty class, the empty classes, and what that means for macro F1.

    ``class_counts`` is ``summarize``'s "class" entry: the 18 class names (and maybe "unknown")."""
    known = {k: v for k, v in class_counts.items() if k != UNKNOWN}
    present = {k: v for k, v in known.items() if v > 0}
    empty = [k for k, v in known.items() if v == 0]
    unlabelled = int(class_counts.get(UNKNOWN, 0))
    if not present:
        return {"largest": None, "smallest": None, "ratio": None, "empty_classes": len(empty), "empty": empty,
                "unlabelled_photos": unlabelled,
                "note": "No photo has all three labels (mask, gender, age), so there are no 18-class labels to "
                        "score: only the per-task counts above apply."}
    big = max(present, key=lambda k: present[k])
    small = min(present, key=lambda k: present[k])
    ratio = present[big] / present[small]
    note = (f"Macro F1 weighs the {len(known)} classes equally, so {small} ({present[small]} photos) counts as much "
            f"as {big} ({present[big]} photos, {ratio:.1f}x more): a model that neglects the rare classes loses "
            f"macro F1 even with high accuracy. {REBALANCE_ADVICE} Pick checkpoints by macro F1.")
    if empty:
        note += (f" {len(empty)} class(es) have no photos: a model trained on this data cannot learn them, and on "
                 f"data that has them each scores F1 0, capping macro F1 at {len(present)}/{len(known)} = "
                 f"{len(present) / len(known):.2f}.")
    return {"largest": {"class": big, "photos": present[big]}, "smallest": {"class": small, "photos": present[small]},
            "ratio": round(ratio, 3), "empty_classes": len(empty), "empty": empty, "unlabelled_photos": unlabelled,
            "note": note}


def person_ages(table: pd.DataFrame) -> pd.Series:
    """person -> age (the most common of the person's photos; people without any age left out)."""
    known = table.dropna(subset=["age"])
    if known.empty:
        return pd.Series(dtype="int64")
    pairs = known.groupby(["person", "age"], sort=True).size().reset_index(name="n")
    pairs = pairs.sort_values(["person", "n", "age"], ascending=[True, False, True], kind="stable")
    first = pairs.drop_duplicates("person")
    return pd.Series(first["age"].astype("int64").to_numpy(), index=first["person"].astype(str).to_numpy())


def age_summary(table: pd.DataFrame, cutoffs: labels.AgeCutoffs, *, alt_old: int = ALT_OLD) -> dict:
    """Per-person age histogram, people near each cut-off, and who would change group if the old
    cut-off moved to ``alt_old`` (to 60 when it already is ``alt_old``)."""
    ages = person_ages(table)
    people = int(table["person"].nunique())
    arr = ages.to_numpy(dtype=np.int64)
    out: dict = {"people_with_age": len(arr), "unknown": people - len(arr)}
    if len(arr):
        out.update(min=int(arr.min()), max=int(arr.max()), mean=round(float(arr.mean()), 2),
                   median=float(np.median(arr)))
    values, counts = np.unique(arr, return_counts=True)
    out["histogram"] = {str(int(v)): int(c) for v, c in zip(values, counts)}
    near = []
    for name, cut in (("young", cutoffs.young), ("old", cutoffs.old)):
        below = int(((arr >= cut - NEAR_YEARS) & (arr < cut)).sum())
        above = int(((arr >= cut) & (arr < cut + NEAR_YEARS)).sum())
        near.append({"cutoff": name, "age": cut, "ages": [cut - NEAR_YEARS, cut + NEAR_YEARS - 1],
                     "below": below, "at_or_above": above, "people": below + above})
    out["near_cutoffs"] = near
    alt = alt_old if cutoffs.old != alt_old else 60
    if cutoffs.young < alt:
        lo, hi = min(alt, cutoffs.old), max(alt, cutoffs.old)
        moving_people = ages[(ages >= lo) & (ages < hi)].index
        moving_photos = int(table["person"].isin(moving_people).sum())
        old_before = int((arr >= cutoffs.old).sum())
        old_after = int((arr >= alt).sum())
        names, alt_names = cutoffs.names(), labels.AgeCutoffs(cutoffs.young, alt).names()
        direction = (f"{names[1]} -> {alt_names[2]}" if alt < cutoffs.old else f"{names[2]} -> {alt_names[1]}")
        out["move_old_cutoff"] = {"to": alt, "people": len(moving_people), "photos": moving_photos,
                                  "direction": direction, "old_group_people": [old_before, old_after]}
    else:
        out["move_old_cutoff"] = None
    return out


def gender_age_tables(table: pd.DataFrame, cutoffs: labels.AgeCutoffs) -> dict:
    """mask state -> gender -> age group -> photos; "unknown" rows, columns and states only where present."""
    tasks = [labels.by_field(f) for f in ("mask", "gender", "age")]
    mask, gender, age = (table[t.column].fillna(-1).to_numpy(dtype=np.int64) for t in tasks)
    counts = np.zeros(tuple(t.size + 1 for t in tasks), np.int64)  # index -1 (unknown) lands in the last slot
    np.add.at(counts, (mask, gender, age), 1)
    mask_names, gender_names, age_names = (list(t.names(cutoffs)) + ([UNKNOWN] if (v < 0).any() else [])
                                           for t, v in zip(tasks, (mask, gender, age)))

    def slot(names: list[str], k: int) -> int:
        return -1 if names[k] == UNKNOWN else k

    return {m: {g: {a: int(counts[slot(mask_names, mi), slot(gender_names, gi), slot(age_names, ai)])
                    for ai, a in enumerate(age_names)}
                for gi, g in enumerate(gender_names)}
            for mi, m in enumerate(mask_names)}


def race_counts(people: Sequence[str], layout: str) -> dict[str, int]:
    """People per race, from competition folder names (<id>_<gender>_<race>_<age>); manifests have none."""
    races: Counter[str] = Counter()
    for person in people:
        race = UNKNOWN
        if layout == "competition":
            try:
                race = parse_folder_name(person)[2]
            except ValueError:
                pass
        races[race] += 1
    return dict(sorted(races.items(), key=lambda kv: (-kv[1], kv[0])))


def image_summary(table: pd.DataFrame, records: Sequence[PhotoRecord], *, top: int = 20) -> dict:
    """Sizes (decoded photos), modes, channels and formats (headers), and the photos that do not decode."""

    def tally(values, limit: int | None = None) -> dict[str, int]:
        ranked = sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0]))
        if limit is not None and len(ranked) > limit:
            ranked = ranked[:limit] + [("other", sum(n for _, n in ranked[limit:]))]
        return dict(ranked)

    sizes = [f"{r.size[0]}x{r.size[1]}" for r in records if r.size is not None]
    broken = [{"path": str(table.at[i, "path"]), "person": str(table.at[i, "person"]),
               "image": str(table.at[i, "image"]), "error": r.error}
              for i, r in enumerate(records) if r.error is not None]
    return {
        "decoded": len(sizes),
        "sizes": tally(sizes, top),
        "modes": tally(r.mode for r in records),
        "channels": tally(UNKNOWN if r.channels is None else str(r.channels) for r in records),
        "formats": tally(r.format for r in records),
        "undecodable": broken,
    }


def pick_samples(table: pd.DataFrame, decoded: np.ndarray, *, per_class: int, seed: int = 0) -> dict[int, list[int]]:
    """Class (-1 for photos without a full label) -> up to ``per_class`` row indices of decodable
    photos, drawn at random with different people first."""
    rng = np.random.default_rng(seed)
    label = table["label"].fillna(-1).to_numpy(dtype=np.int64)
    people = table["person"].to_numpy()
    out: dict[int, list[int]] = {}
    for c in list(range(labels.NUM_CLASSES)) + [-1]:
        rows = np.flatnonzero((label == c) & decoded)
        if not len(rows):
            out[c] = []
            continue
        rows = rows[rng.permutation(len(rows))]
        _, first = np.unique(people[rows], return_index=True)
        is_first = np.zeros(len(rows), bool)
        is_first[first] = True
        ordered = np.concatenate([rows[is_first], rows[~is_first]])  # stable: keeps the random order
        out[c] = [int(r) for r in ordered[:per_class]]
    return out


# --------------------------------------------------------------------------- the report (I/O edge)


def _load(data, corrections: str | Path | None, cutoffs: labels.AgeCutoffs,
          allow_outside: bool) -> tuple[str, pd.DataFrame, pd.DataFrame, corr_mod.CorrectionReport | None, list[str]]:
    """Like ``load_table``, keeping the table before corrections and the non-fatal problems too."""
    result = scan(data, allow_outside=allow_outside)
    raise_on_fatal(result.problems, data)
    if result.table.empty:
        raise UserError(f"{describe(data)}: no photos found")
    before = add_derived(result.table, cutoffs)
    corr_path = corr_mod.resolve(corrections)
    report = None
    after = before
    if corr_path is not None:
        fixed, report = corr_mod.apply(result.table, corr_mod.read(corr_path))
        after = add_derived(fixed, cutoffs)
    return result.layout, before, after, report, [str(p) for p in result.problems]


def make_report(data: str | Path | pd.DataFrame, out: str | Path, *, corrections: str | Path | None = "none",
                cutoffs: labels.AgeCutoffs = labels.AgeCutoffs(), workers: int = 4, progress: bool = True,
                dup_threshold: int = DUP_THRESHOLD, samples_per_class: int = 6, allow_outside: bool = False,
                faces: str = "cached", cache_dir: str | None = None, cascade: str = "hog+haar") -> dict:
    """Write the EDA report of DATA into the new folder ``out`` and return summary.json's content.

    out/report.html (self-contained: inline style, no script, images by relative path), the PNG plots
    beside it, out/summary.json and out/thumbs/*.jpg. ``out`` must not exist or be an empty folder;
    it appears only when the whole report is written.

    corrections : ``known``, ``none`` or a corrections CSV; with corrections the report shows the
        counts before and after and lists the changes, and everything else uses the corrected labels.
    dup_threshold : largest Hamming distance (of the 256 phash bits) at which two photos of different
        people are listed as near-duplicates; the default 8 catches JPEG re-encodes (and most slightly
        rescaled or brightened copies) and no pair of different people of the 18,900-photo demo set,
        whose closest such pair is 10 apart.
    workers : threads decoding photos.
    faces : the identity section (faces.checks): "cached" uses the faces `maskcls faces` stored,
        "compute" computes the missing ones first, "off" leaves the section out.
    """
    from . import eda_page  # figures and HTML; matplotlib is loaded only when a report is made

    out = Path(out)
    claim_folder(out, data=data)  # new or empty: the report is built beside it and moved into place
    check_writable(out)  # said before every photo is read, not after
    _check_options(dup_threshold=dup_threshold, samples_per_class=samples_per_class, workers=workers)
    layout, before, table, corr_report, problems = _load(data, corrections, cutoffs, allow_outside)
    photos = scan_photos(table["path"].tolist(), table["mask"].fillna(-1).to_numpy(dtype=np.int64),
                         workers=workers, progress=progress)
    pairs, total = _near_duplicates(photos, table, dup_threshold)

    checks, notes = _identity_checks(table, faces, cache_dir=cache_dir, cascade=cascade, progress=progress)
    summary = _summary(data, layout, table, before, cutoffs, photos, pairs, total, problems, checks, notes,
                       corr_report, corrections, dup_threshold=dup_threshold)

    samples = pick_samples(table, photos.decoded, per_class=samples_per_class)
    dup_rows = {i for p in pairs[: eda_page.MAX_DUP_PAIRS_SHOWN].tolist() for i in p[:2]}
    face_rows = eda_page.identity_rows(checks, table)
    shown = sorted(dup_rows | face_rows | {i for rows in samples.values() for i in rows})
    with atomic_dir(out) as tmp:
        thumbs = _write_thumbs(tmp / "thumbs", {i: photos.records[i].thumb for i in shown})
        plots = eda_page.write_plots(tmp, summary, mean_faces(photos.face_sums, photos.face_counts),
                                     photos.face_counts, cutoffs)
        summary["files"] = {"report": "report.html", "summary": "summary.json", "plots": plots,
                            "thumbs": len(thumbs)}
        page = eda_page.render(summary, table=table, pairs=pairs, samples=samples, thumbs=thumbs,
                               cutoffs=cutoffs, plots=plots, checks=checks)
        write_text(tmp / "report.html", page)
        write_json(tmp / "summary.json", summary)
    return summary


def _check_options(*, dup_threshold: int, samples_per_class: int, workers: int) -> None:
    """Refuse a threshold that would list unrelated photos, and impossible counts."""
    if not 0 <= dup_threshold <= HASH_BITS // 8:
        raise UserError(f"duplicate threshold must be 0-{HASH_BITS // 8} bits of {HASH_BITS} (a larger one lists "
                        f"unrelated photos), got {dup_threshold}")
    if samples_per_class < 0 or workers < 1:
        raise UserError("samples per class must be >= 0 and workers >= 1")


def _near_duplicates(photos, table: pd.DataFrame, threshold: int) -> tuple[np.ndarray, int]:
    """Near-duplicate pairs of photos of different people among those that decoded, as table rows;
    returns (pairs, how many in all)."""
    ok = np.flatnonzero(photos.decoded)
    person_codes = pd.factorize(table["person"])[0]
    pairs, total = near_duplicate_pairs(photos.hashes[ok], person_codes[ok], threshold=threshold)
    pairs[:, :2] = ok[pairs[:, :2]]  # back to table rows
    return pairs, total


def _identity_checks(table: pd.DataFrame, faces: str, *, cache_dir, cascade: str, progress: bool):
    """(the identity checks or None, why they could not be made): from the cached faces, computing the
    missing ones first with faces="compute", none with "off"."""
    notes: list[str] = []  # why the identity checks could not be made (a cache that cannot be read)
    if faces == "off":
        return None, notes
    from ..faces.checks import checks_or_note, face_checks

    if faces == "compute":
        return face_checks(table, cache_dir=cache_dir, cascade=cascade, compute=True, progress=progress), notes
    checks = checks_or_note(table, cache_dir=cache_dir, cascade=cascade, note=notes.append)
    for line in notes:
        print(f"eda: {line}", file=sys.stderr)
    return checks, notes


def _summary(data, layout: str, table: pd.DataFrame, before: pd.DataFrame, cutoffs: labels.AgeCutoffs, photos,
             pairs: np.ndarray, total: int, problems: list, checks, notes: list[str], corr_report, corrections, *,
             dup_threshold: int) -> dict:
    """summary.json's content: counts, imbalance, ages, images, duplicates, corrections, problems, identity."""
    counts = summarize(table, cutoffs)
    summary: dict = {
        "data": describe(data),
        "layout": layout,
        "cutoffs": {"young": cutoffs.young, "old": cutoffs.old, "age_groups": list(cutoffs.names())},
        **counts,
        "imbalance": imbalance(counts["class"]),
        "ages": age_summary(table, cutoffs),
        "gender_by_age": gender_age_tables(table, cutoffs),
        "race": race_counts(list(dict.fromkeys(table["person"].astype(str))), layout),
        "images": image_summary(table, photos.records),
        "duplicates": duplicate_summary(table, pairs, total, [r.digest for r in photos.records],
                                        threshold=dup_threshold),
        "corrections": None,
        "data_problems": problems,
        "identity": None if checks is None else checks.summary(),
        "identity_notes": notes,
    }
    if corr_report is not None:
        summary["corrections"] = {
            "spec": str(corrections),
            "summary": corr_report.summary(),
            "before": summarize(before, cutoffs),
            "after": counts,
            "changes": corr_report.changes_frame().drop(columns=["where"]).to_dict("records"),
            "not_applied": [line for line in corr_report.lines(verbose=True) if line.startswith("not applied")],
        }
    return summary


def _write_thumbs(folder: Path, thumbs: dict[int, bytes]) -> dict[int, str]:
    """Row index -> thumbnail path relative to the page (rows without a thumbnail left out)."""
    out = {}
    for i, data in thumbs.items():
        if data:
            name = f"{i:06d}.jpg"  # from the row, never from a user's file name
            with atomic_open(folder / name, "wb") as fh:
                fh.write(data)
            out[i] = f"thumbs/{name}"
    return out


__all__: list[str] = ["make_report", "inspect_photo", "scan_photos", "near_duplicate_pairs", "duplicate_summary",
                      "imbalance", "age_summary", "gender_age_tables", "race_counts", "image_summary",
                      "pick_samples", "popcount64", "hash_words", "mean_faces"]
