"""Declarative label corrections: a CSV the user edits, applied when the table is built, never to files.

Format (one correction per line; the shipped ``known`` set is the corrections teams published):

    person_id,field,image,from,to,agreement,note
    006359,gender,*,female,male,widely,age 18
    000020,mask,incorrect_mask+normal,,swap,widely,the two photos are swapped
    001009,age,*,40,29,several,

person_id  a person folder name, or the id part of one (an id shared by two folders matches both)
field      gender | mask | age
image      ``*`` for every photo of the person, or photo stems joined by ``+``
from       optional: the value the correction expects to find; rows holding another value are left
           alone and reported, so applying a set twice, or to already-fixed data, changes nothing.
           For a swap, the value the first named photo should hold (default: what its name says,
           incorrect_mask -> incorrect), so a swap is never undone by a second application
to         the new value; ``flip`` (gender) or ``swap`` (mask, exactly two photos)
agreement, note   free text, carried into the report
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from .. import labels
from ..errors import UserError
from ..fileio import read_csv, require_file

FIELDS = tuple(t.field for t in labels.TASKS)  # each task's recorded label
MASK_INCORRECT, MASK_NORMAL = labels.PHOTO_MASK["incorrect_mask"], labels.PHOTO_MASK["normal"]
LAYOUT_WARNING = ("one photo's mask changed in the competition's 7-photo layout (5 mask, 1 incorrect_mask, 1 normal): "
                  "one photo there cannot be wrong alone, only a swap of incorrect_mask and normal keeps the layout; "
                  "check the photo before training on it")
BUILTIN = {"known": "known_mislabels.csv"}


@dataclass(frozen=True)
class Correction:
    where: str  # file:line, for messages
    person: str
    field: str
    images: tuple[str, ...] | None  # None means every photo of the person
    expect: int | None
    to: int | str  # a value, or "flip" / "swap"
    agreement: str = ""
    note: str = ""


@dataclass(frozen=True)
class Change:
    person: str
    image: str
    field: str
    old: str
    new: str
    where: str
    note: str


@dataclass
class CorrectionReport:
    changes: list[Change] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # messages for corrections that found no person
    skipped: list[str] = field(default_factory=list)  # messages for rows left alone
    warnings: list[str] = field(default_factory=list)  # applied, but worth a look (LAYOUT_WARNING)

    def changes_frame(self) -> pd.DataFrame:
        """One row per label change: person, image, field, old, new, where (file:line) and note."""
        cols = ["person", "image", "field", "old", "new", "where", "note"]
        return pd.DataFrame([c.__dict__ for c in self.changes], columns=cols)

    def lines(self, verbose: bool | None = None) -> list[str]:
        """Human-readable report: one line per change, then what was not applied and why.

        Corrections naming people not in the data are the rule when a set written for one dataset
        (like ``known``) is applied to another, so by default they are one count line; ``verbose``
        lists each (default: the command line's --verbose). Rows left alone for another reason always get
        one line each.
        """
        if verbose is None:
            from ..progress import is_verbose

            verbose = is_verbose()
        out = [f"{c.person} {c.image}: {c.field} {c.old} -> {c.new}" for c in self.changes]
        if verbose:
            out += [f"not applied: {m}" for m in self.unmatched]
        elif self.unmatched:
            out.append(f"not applied: {len(self.unmatched)} correction(s) name people not in the data "
                       "(list them with --verbose)")
        out += [f"not applied: {m}" for m in self.skipped]
        out += [f"warning: {m}" for m in self.warnings]
        return out

    def summary(self) -> str:
        """One line: changes, photos, people, corrections naming people not in the data, rows left alone, warnings."""
        people = len({c.person for c in self.changes})
        photos = len({(c.person, c.image) for c in self.changes})
        return (f"corrections: {len(self.changes)} label change(s) on {photos} photo(s) of {people} person(s); "
                f"{len(self.unmatched)} correction(s) name people not in the data; {len(self.skipped)} left alone"
                + (f"; {len(self.warnings)} warning(s)" if self.warnings else ""))


def _value_name(field_name: str, value: int) -> str:
    return labels.by_field(field_name).value_name(value)


def resolve(spec: str | Path | None) -> Path | None:
    """``known`` -> the shipped set, ``none``/None -> no corrections, anything else -> a CSV path."""
    if spec is None or str(spec).lower() == "none":
        return None
    if str(spec) in BUILTIN:
        return Path(str(resources.files("maskcls") / "resources" / BUILTIN[str(spec)]))
    return require_file(spec, "CSV file", what="corrections", hint="use known, none, or a CSV path",
                        missing="no such file")


def read(path: str | Path) -> list[Correction]:
    """Parse and check a corrections CSV; an unknown field or value is an error naming its line."""
    path = Path(path)
    frame = read_csv(path, ("person_id", "field", "to"))
    _check_row_lengths(path)
    out = []
    seen: dict[tuple, str] = {}
    for i, rec in zip(frame.index, frame.to_dict("records")):
        where = f"{path}:{i}"
        person = rec["person_id"].strip()
        fld = rec["field"].strip().lower()
        image = rec.get("image", "").strip() or "*"
        expect_text = rec.get("from", "").strip()
        to_text = rec["to"].strip().lower()
        if not person:
            raise UserError(f"{where}: person_id is empty")
        if fld not in FIELDS:
            raise UserError(f"{where}: unknown field {rec['field']!r}; expected one of {', '.join(FIELDS)}")
        images = None if image == "*" else tuple(s.strip() for s in image.split("+"))
        if images is not None and not all(images):
            raise UserError(f"{where}: image must be * or photo names joined by +, got {image!r}")
        if images is not None and len(set(images)) != len(images):
            raise UserError(f"{where}: image {image!r} names the same photo twice")
        task = labels.by_field(fld)
        try:
            expect = task.parse(expect_text) if expect_text else None
            if to_text == "flip" and task.size == 2 and not task.derived:
                to: int | str = "flip"
            elif to_text == "swap" and not task.per_person:
                if images is None or len(images) != 2:
                    raise ValueError(f"swap needs exactly two photos in image (like incorrect_mask+normal), got {image!r}")
                to = "swap"
            else:
                to = task.parse(to_text)
        except ValueError as exc:
            raise UserError(f"{where}: {exc}") from None
        key = (person, fld, images, expect, to)
        if to == "flip" and key in seen:  # a flip given twice undoes itself (a swap or a value is guarded)
            raise UserError(f"{where}: repeats the flip of line {seen[key].rsplit(':', 1)[1]}; a flip given twice "
                            "undoes itself: remove one")
        seen[key] = where
        out.append(Correction(where, person, fld, images, expect, to,
                              rec.get("agreement", "").strip(), rec.get("note", "").strip()))
    return out


def _check_row_lengths(path: Path) -> None:
    """A row with more fields than the header (a comma too many) would shift its values into the wrong
    columns, and a short one may stop before ``to``: say so, naming the line, not a wrong value."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = csv.reader(fh)
        header = [h.strip() for h in next(rows, [])]
        needed = max(header.index(c) for c in ("person_id", "field", "to")) + 1
        for line, row in enumerate(rows, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                raise UserError(f"{path}:{line}: {len(row)} fields where the header has {len(header)} "
                                f"({','.join(header)}); a comma too many?")
            if len(row) < needed:
                raise UserError(f"{path}:{line}: {len(row)} field(s); the row ends before "
                                f"{header[len(row)]!r} (the header is {','.join(header)})")


def apply(table: pd.DataFrame, corrections: list[Correction]) -> tuple[pd.DataFrame, CorrectionReport]:
    """Apply corrections to a table's raw label columns (mask, gender, age); returns a new table.

    Derived columns (age_group, label) are the caller's to recompute afterwards.
    """
    table = table.copy()
    report = CorrectionReport()
    layout = layout_people(table) if any(c.field == "mask" and c.to != "swap" for c in corrections) else set()
    for corr in corrections:
        hit = (table["person"] == corr.person) | (table["person_id"] == corr.person)
        if not hit.any():
            report.unmatched.append(f"{corr.where}: person {corr.person} is not in the data")
            continue
        for person, rows in table[hit].groupby("person", sort=True):
            before = len(report.changes)
            _apply_one(table, corr, str(person), rows, report)
            if corr.field == "mask" and corr.to != "swap" and str(person) in layout and len(report.changes) > before:
                images = "+".join(c.image for c in report.changes[before:])
                report.warnings.append(f"{corr.where}: {person} {images}: {LAYOUT_WARNING}")
    return table, report


def _apply_one(table: pd.DataFrame, corr: Correction, person: str, rows: pd.DataFrame,
               report: CorrectionReport) -> None:
    if corr.images is not None:
        missing = [s for s in corr.images if s not in set(rows["image"])]
        if missing:
            report.skipped.append(f"{corr.where}: {person} has no photo {', '.join(missing)}")
            return
        rows = rows[rows["image"].isin(corr.images)]
    col = corr.field
    if corr.to == "swap":
        if len(rows) != 2:
            report.skipped.append(f"{corr.where}: {person} has {len(rows)} photos named {'+'.join(corr.images)}; "
                                  "a swap needs exactly two")
            return
        i = rows.index[rows["image"] == corr.images[0]][0]
        j = rows.index[rows["image"] == corr.images[1]][0]
        a, b = table.loc[i, col], table.loc[j, col]
        if pd.isna(a) or pd.isna(b) or a == b:
            report.skipped.append(f"{corr.where}: {person} photos hold the same {col}; nothing to swap")
            return
        # The guard: `from` names what the first photo should hold; without it, a competition photo
        # should hold what its name says (incorrect_mask -> incorrect). Either way a swap that was
        # already applied (a repeated row, `known` on fixed data) is left alone, not swapped back.
        expect = corr.expect if corr.expect is not None else labels.PHOTO_MASK.get(corr.images[0])
        if expect is not None and int(a) != expect:
            report.skipped.append(f"{corr.where}: {person} {corr.images[0]} has {col} {_value_name(col, int(a))}, "
                                  f"not {_value_name(col, expect)}: already swapped?")
            return
        table.loc[i, col], table.loc[j, col] = b, a
        for idx, old, new in ((i, a, b), (j, b, a)):
            report.changes.append(Change(person, table.loc[idx, "image"], col, _value_name(col, int(old)),
                                         _value_name(col, int(new)), corr.where, corr.note))
        return
    for idx, old in rows[col].items():
        if pd.isna(old):
            report.skipped.append(f"{corr.where}: {person} {table.loc[idx, 'image']} has no {col} to correct")
            continue
        old = int(old)
        if corr.expect is not None and old != corr.expect:
            report.skipped.append(f"{corr.where}: {person} {table.loc[idx, 'image']} has {col} "
                                  f"{_value_name(col, old)}, not {_value_name(col, corr.expect)}")
            continue
        new = 1 - old if corr.to == "flip" else int(corr.to)
        if new == old:
            continue
        table.loc[idx, col] = new
        report.changes.append(Change(person, table.loc[idx, "image"], col, _value_name(col, old),
                                     _value_name(col, new), corr.where, corr.note))


def layout_people(oof: pd.DataFrame) -> set[str]:
    """People whose photos are exactly the competition's seven (mask1-5, incorrect_mask, normal), each
    given the mask its name says. Their mask labels are fixed by that layout: one photo cannot be
    mislabeled alone (two ``normal`` photos are not a person of this data), so the only mask fix that
    keeps the layout is a swap of the incorrect_mask and normal photos, the competition's known error."""
    if "mask" not in oof.columns or oof.empty:
        return set()
    stems = oof["image"].astype(str)
    expected = stems.map(labels.PHOTO_MASK)
    given = pd.to_numeric(oof["mask"], errors="coerce")
    # A swapped pair keeps the layout (one of each), so the pair's own labels may be either way round.
    ok = (given == expected) | (stems.isin(["incorrect_mask", "normal"]) & given.isin([MASK_INCORRECT, MASK_NORMAL]))
    frame = pd.DataFrame({"person": oof["person"].astype(str), "stem": stems, "ok": ok, "given": given})
    out = set()
    for person, rows in frame.groupby("person", sort=False):
        if (len(rows) == len(labels.PHOTO_STEMS) and set(rows["stem"]) == set(labels.PHOTO_STEMS)
                and rows["ok"].all() and sorted(rows["given"]) == sorted(labels.PHOTO_MASK.values())):
            out.add(str(person))
    return out
