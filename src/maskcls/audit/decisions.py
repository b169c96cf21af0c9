"""The review's decisions on disk: an append-only log, replayed into the current state.

AUDIT/decisions.csv holds one line per decision, in the order they were made:

    time,person,field,photos,given,suggestion,decision,image,from,to,note,data

decision is accept, reject, skip or undo (an undo names the decision it took back: the last one not
yet undone, wherever the page's cursor was). image/from/to/note are the suggestion's corrections-CSV
fields, so accepted corrections can be rebuilt from the log alone, even for issues a later audit no
longer raises. ``data`` ties every line to the photos it was made on (``data_fingerprint``): a log
is never applied to other data.

Lines are appended with one write each, then flushed and fsynced, so a kill leaves every finished
decision on disk; a torn last line (power loss mid-write) is dropped when read, never misparsed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..errors import UserError
from ..fileio import write_text
from .rank import CORRECTION_COLUMNS

COLUMNS = ["time", "person", "field", "photos", "given", "suggestion", "decision", "image", "from", "to", "note",
           "data"]
DECISIONS = ("accept", "reject", "skip", "undo")
FILE_NAME = "decisions.csv"
ACCEPTED_NAME = "accepted_corrections.csv"
# What identifies a suggestion: the same photos, the same given label and the same proposal.
KEY_FIELDS = ("person", "field", "photos", "given", "suggestion")

Key = tuple[str, str, str, str, str]


def data_fingerprint(table: pd.DataFrame) -> str:
    """16 hex digits naming a dataset's photos (person and photo stem, not labels), so decisions made on
    it are recognised after corrections change its labels and refused on other data."""
    lines = sorted(f"{p}\t{i}" for p, i in zip(table["person"].astype(str), table["image"].astype(str)))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def issue_key(person, field, photos, given, suggestion) -> Key:
    """The key a card's decision is logged under: person, field, photos, given and suggestion as text."""
    return tuple("" if v is None or v != v else str(v) for v in (person, field, photos, given, suggestion))  # type: ignore[return-value]


def card_id(key: Key) -> str:
    """The review page's id of a card (tab-joined key; tabs cannot occur in CSV-read names)."""
    return "\t".join(key)


# ---------------------------------------------------------------- reading and replaying


def read_log(path: str | Path) -> list[dict[str, str]]:
    """The decisions of ``path`` in order, each a dict of ``COLUMNS``; a torn last line is dropped.

    Raises UserError (one line, naming the file and line) on a file that is not a decisions log.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such decisions file") from None
    text = raw.decode("utf-8", errors="replace")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # a line cut short by a kill: never a decision
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:  # random bytes, a field over csv's size limit: not a log maskcls wrote
        raise UserError(f"{path}: not a maskcls decisions file ({exc})") from None
    if not rows or rows[0] != COLUMNS:
        raise UserError(f"{path}: not a maskcls decisions file (its header must be {','.join(COLUMNS)})")
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(COLUMNS):
            raise UserError(f"{path}:{line}: {len(row)} fields, expected {len(COLUMNS)}")
        rec = dict(zip(COLUMNS, row))
        if rec["decision"] not in DECISIONS:
            raise UserError(f"{path}:{line}: unknown decision {rec['decision']!r}; expected one of "
                            f"{', '.join(DECISIONS)}")
        if not rec["person"] or not rec["field"] or not rec["data"]:
            raise UserError(f"{path}:{line}: person, field and data must not be empty")
        rec["line"] = str(line)
        out.append(rec)
    return out


def check_log(log: list[dict[str, str]], path: str | Path, *, data_id: str,
              people: Iterable[str] | None = None) -> None:
    """Refuse a log made on other data: another data fingerprint, or people this data does not have."""
    for rec in log:
        if rec["data"] != data_id:
            raise UserError(f"{path}:{rec['line']}: these decisions were made on other data (data id "
                            f"{rec['data']}, this data is {data_id}); give the decisions of an audit of this data")
    if people is not None:
        known = set(map(str, people))
        unknown = [rec for rec in log if rec["person"] not in known]
        if unknown:
            raise UserError(f"{path}:{unknown[0]['line']}: person {unknown[0]['person']!r} is not in the data "
                            f"({len(unknown)} decision(s) name unknown people); these decisions are of other data")


def replay(log: list[dict[str, str]]) -> tuple[dict[Key, dict[str, str]], list[tuple[Key, dict | None]]]:
    """(state, history): state maps a suggestion to the log row of its standing decision; history is the
    undo stack, (key, the row it replaced or None), newest last. An undo pops the newest entry."""
    state: dict[Key, dict[str, str]] = {}
    history: list[tuple[Key, dict | None]] = []
    for rec in log:
        if rec["decision"] == "undo":
            if history:
                key, prev = history.pop()
                if prev is None:
                    state.pop(key, None)
                else:
                    state[key] = prev
            continue
        key = issue_key(*(rec[f] for f in KEY_FIELDS))
        history.append((key, state.get(key)))
        state[key] = rec
    return state, history


def read_decisions(path: str | Path, *, data_id: str, people: Iterable[str] | None = None) -> dict[Key, str]:
    """The standing decision (accept / reject / skip) per suggestion in a checked decisions file."""
    log = read_log(path)
    check_log(log, path, data_id=data_id, people=people)
    return {key: rec["decision"] for key, rec in replay(log)[0].items()}


# ---------------------------------------------------------------- using them


def apply_earlier(issues: pd.DataFrame, decided: dict[Key, str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Issues minus the suggestions a person rejected, with a ``reviewed`` column saying ``accepted``
    where one was accepted; ranks renumbered 1..n. Returns the table and counts of each."""
    keys = [issue_key(r["person"], r["field"], r["photos"], r["given"], r["suggested"])
            for r in issues.to_dict("records")]
    status = pd.Series([decided.get(k, "") for k in keys], index=issues.index)
    kept = issues[status != "reject"].copy()
    kept["reviewed"] = status[status != "reject"].map({"accept": "accepted"}).fillna("")
    kept = kept.sort_values("rank", kind="stable").reset_index(drop=True)
    kept["rank"] = range(1, len(kept) + 1)
    return kept, {"rejected_not_raised": int((status == "reject").sum()),
                  "accepted_shown": int((status == "accept").sum())}


def accepted_corrections(state: dict[Key, dict[str, str]], cards: list[dict]) -> pd.DataFrame:
    """The corrections CSV of every accepted suggestion: the page's row for it when the page shows it
    (identical to what the page's Save button downloads), else rebuilt from the log. Cards the page
    marks as accepted in an earlier review count unless this log decided them otherwise."""
    by_id = {c["id"]: c for c in cards}
    rows, seen = [], set()
    for c in cards:
        key = tuple(c["id"].split("\t"))
        rec = state.get(key)  # type: ignore[arg-type]
        if (rec["decision"] if rec else c.get("earlier", "")) == "accept":
            rows.append(list(c["correction"]))
            seen.add(c["id"])
    for key, rec in state.items():
        if rec["decision"] == "accept" and card_id(key) not in seen and card_id(key) not in by_id:
            rows.append([rec["person"], rec["field"], rec["image"] or "*", rec["from"], rec["to"], "audit", rec["note"]])
    return pd.DataFrame(rows, columns=CORRECTION_COLUMNS)


# ---------------------------------------------------------------- writing


def now() -> str:
    """The time now, UTC, to the second, as the decisions log writes it."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _line(values: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def prepare_log(path: str | Path) -> None:
    """Make ``path`` ready to append to: created with its header (atomically) when missing; a torn last
    line left by a kill is cut off (atomic rewrite), so the next decision starts on a line of its own."""
    path = Path(path)
    if not path.exists():
        write_text(path, _line(COLUMNS))
        return
    read_log(path)  # a file that is not a decisions log is refused before anything is appended
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        write_text(path, raw[: raw.rfind(b"\n") + 1].decode("utf-8", errors="replace"))


def append(path: str | Path, rec: dict[str, str]) -> None:
    """Append one decision: one write() on an O_APPEND descriptor, then fsync, before the caller answers
    the page, so a decision the page shows as saved is on disk."""
    data = _line([str(rec.get(c, "")) for c in COLUMNS]).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        written = os.write(fd, data)
        if written != len(data):  # a full disk: do not leave a torn line for the next append to glue onto
            os.ftruncate(fd, os.fstat(fd).st_size - written)
            raise OSError(28, "no space left to write the decision", str(path))
        os.fsync(fd)
    finally:
        os.close(fd)
