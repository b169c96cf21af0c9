"""The review page: one static review.html (opens from disk, no server, nothing external) with small
thumbnails beside it, where a person accepts or rejects each proposed fix and saves the accepted ones
as a corrections CSV (the format ``maskcls.data.corrections.read`` takes).

The issues travel into the page as JSON, each with its corrections-CSV row already made by
``rank.to_corrections``, so the page only filters and quotes rows and cannot drift from the format.
Opened from disk, decisions live in the browser's localStorage under a key derived from this audit's
issues and output folder, so a reload keeps them, two tabs of the same page follow each other and
two audits never share them. Served by
``maskcls review`` (``server.py``), the page sends every decision to the server, which writes it to
AUDIT/decisions.csv at once; the server's state is then the page's. Either way ``u`` undoes the
last decision made, wherever the cursor is, and a card accepted in an earlier review (the issues'
``reviewed`` column) starts out accepted.
"""

from __future__ import annotations

from collections.abc import Iterable

import hashlib
from importlib import resources
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import pandas as pd

from ..data.images import PhotoError, read_rgb, resize
from ..fileio import atomic_open, write_text
from .decisions import card_id, issue_key
from .rank import CORRECTION_COLUMNS, to_corrections

SOURCES = (("networks trained here", "networks_say"), ("face model", "face_model_says"))
_NEEDED = ["person", "photos", "field", "given", "suggested", "score", "rank", "fix_image", "fix_from", "fix_to"]
JPEG_QUALITY = 82


def write_review(issues: pd.DataFrame, photo_paths: dict[str, list[tuple[str, str]]], out_dir: Path, *,
                 thumb_size: tuple[int, int] = (72, 96), data_id: str = "", layout: Iterable[str] = ()) -> Path:
    """Write ``out_dir/review.html`` and its thumbnails in ``out_dir/thumbs/``; returns the page's path.

    issues : ``rank.find_issues`` output (or its CSV read back), one card per row, best rank first.
    photo_paths : person -> [(photo stem, photo file path), ...]; the person's photos shown on a card.
        A person missing here gets a card without photos; a photo that does not decode gets a
        placeholder naming it.
    thumb_size : (width, height) of the thumbnails in pixels.
    data_id : ``decisions.data_fingerprint`` of the audited data; ``maskcls review`` needs it to tie the
        decisions it writes to that data.
    layout : people in the competition's 7-photo layout (``data.corrections.layout_people``): a card
        that changes one of their photos' mask alone carries a warning.
    Optional columns shown on each card: ``quality`` (the field's), ``proposed`` ("yes" or "no: why"),
    ``networks_say`` and ``face_model_says`` (each source's probability of the suggestion).
    """
    layout = set(layout)
    missing = [c for c in _NEEDED if c not in issues.columns]
    if missing:
        raise ValueError(f"issues is missing column(s) {', '.join(missing)}")
    out_dir = Path(out_dir)
    issues = issues.sort_values("rank", kind="stable").reset_index(drop=True)
    fixes = to_corrections(issues)
    people = list(dict.fromkeys(issues["person"].astype(str)))
    thumbs = _write_thumbs({p: list(photo_paths.get(p, [])) for p in people}, out_dir / "thumbs", thumb_size)

    cards = [_card(rec, fix, thumbs, photo_paths, layout)
             for rec, fix in zip(issues.to_dict("records"), fixes.to_dict("records"))]
    audit = hashlib.sha256(json.dumps([str(out_dir.resolve()), [c["id"] for c in cards],
                                       [c["correction"] for c in cards]]).encode()).hexdigest()[:16]
    data = {"audit": audit, "data": data_id, "columns": CORRECTION_COLUMNS, "thumb": list(thumb_size), "issues": cards}
    page = out_dir / "review.html"
    write_text(page, _page().replace("__DATA__", _script_json(data)))
    return page


def _card(rec: dict, fix: dict, thumbs: dict, photo_paths: dict[str, list[tuple[str, str]]], layout: set) -> dict:
    """One issue's card for the page's script: what is suggested, how far to trust it, the photos."""
    person, photos = str(rec["person"]), _cell(rec["photos"]) or "*"
    marked = None if photos == "*" else set(photos.split("+"))
    return {
        "id": card_id(issue_key(person, rec["field"], photos, _cell(rec["given"]), _cell(rec["suggested"]))),
        "earlier": "accept" if _cell(rec.get("reviewed", "")) == "accepted" else "",
        "rank": int(rec["rank"]), "score": round(float(rec["score"]), 4), "person": person,
        "field": str(rec["field"]), "photos": photos, "given": _cell(rec["given"]),
        "suggested": _cell(rec["suggested"]), "fix": f"{fix['from']} \u2192 {fix['to']}".strip(),
        "note": _cell(rec.get("note", "")),
        # How far to trust it: the field's quality (the audit's gate), whether it was proposed or is
        # listed only and why (rank.proposal_verdicts), and the 7-photo layout warning.
        "quality": None if _cell(rec.get("quality", "")) == "" else round(float(rec["quality"]), 2),
        "proposed": _cell(rec.get("proposed", "")),
        "warning": LAYOUT_CARD_WARNING if _is_layout_fix(rec, layout) else "",
        # What each source says of the suggestion (audit.run: the networks and the face model).
        "sources": [[name, _cell(rec.get(col, ""))] for name, col in SOURCES if _cell(rec.get(col, ""))],
        "thumbs": [[str(stem), thumbs.get((person, str(stem), str(path))), marked is None or str(stem) in marked]
                   for stem, path in photo_paths.get(person, [])],
        "correction": [fix[c] for c in CORRECTION_COLUMNS],
    }


LAYOUT_CARD_WARNING = ("one photo's mask in the 7-photo layout: one photo there cannot be wrong alone (only a swap "
                       "of incorrect_mask and normal keeps the layout); accept only if the photo shows it")


def _is_layout_fix(rec: dict, layout: set[str]) -> bool:
    return rec["field"] == "mask" and _cell(rec.get("fix_to", "")) != "swap" and str(rec["person"]) in layout


def _cell(value) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def _script_json(obj) -> str:
    """JSON safe inside <script type="application/json">: no '<' (so no '</script>' or '<!--'),
    no '>' or '&', and no U+2028/U+2029 (line breaks to older JavaScript parsers)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _write_thumbs(photos: dict[str, list[tuple[str, str]]], folder: Path,
                  size: tuple[int, int]) -> dict[tuple[str, str, str], str | None]:
    """(person, stem, path) -> 'thumbs/NAME.jpg' relative to the page, or None when it does not decode."""
    jobs = [(person, str(stem), str(path)) for person, items in photos.items() for stem, path in items]

    def make(job: tuple[str, str, str]) -> str | None:
        person, stem, path = job
        # Names from a hash: person names may hold any character, and the page must not depend on them.
        name = hashlib.sha1("\0".join(job).encode()).hexdigest()[:20] + ".jpg"
        try:
            small = resize(read_rgb(path), size)
        except PhotoError:
            return None
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return None
        with atomic_open(folder / name, "wb") as fh:
            fh.write(buf.tobytes())
        return f"thumbs/{name}"

    # Threads: decoding and resizing release the GIL.
    with ThreadPoolExecutor(4) as pool:
        return dict(zip(jobs, pool.map(make, jobs)))


def _page() -> str:
    """The page's HTML, CSS and script (resources/pages/review.html); its data goes where __DATA__ stands."""
    return resources.files("maskcls").joinpath("resources/pages/review.html").read_text(encoding="utf-8")
