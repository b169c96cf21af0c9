"""Read a dataset (competition layout or CSV manifest) into one tidy table.

Table columns, one row per photo:
    path       absolute path of the photo
    person     the person key: the folder name (competition) or person_id (manifest)
    person_id  the id as the user wrote it (competition ids may repeat across folders)
    image      the photo's stem (mask1 ... normal), what corrections name
    mask, gender, age, age_group, label   nullable integers (<NA> where unknown)

Scanning never raises for problems in the data: it collects them as ``Problem`` records so that
``validate`` can list every one. ``load_table`` raises a ``UserError`` when a problem makes the
table wrong (an unreadable CSV, a bad label value, a missing photo named by a manifest).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

import numpy as np

from .. import labels
from ..errors import UserError
from ..fileio import read_csv, refuse_output_inside  # noqa: F401  (imported from here too)
from . import corrections as corr_mod

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
TRAIN_COLUMNS = ("id", "gender", "race", "age", "path")
MANIFEST_COLUMNS = ("path", "person_id")
LABEL_COLUMNS = tuple(t.field for t in labels.TASKS)  # the labels as recorded (age in years)
RAW_COLUMNS = ("path", "person", "person_id", "image", *LABEL_COLUMNS)  # a scan's table
# ... and the answers derived from them (the age group), then the 18-class label
TABLE_COLUMNS = (*RAW_COLUMNS, *(t.column for t in labels.TASKS if t.derived), "label")
FOLDER_RE = re.compile(r"^(?P<id>[^_]+)_(?P<gender>[^_]+)_(?P<race>.+)_(?P<age>[^_]+)$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the data. ``where`` names the file, or file:line for a CSV row."""

    where: str
    message: str
    fatal: bool = True  # True when the table built from this data would be wrong or incomplete

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Scan:
    layout: str  # "competition" or "manifest"
    table: pd.DataFrame  # raw labels: mask, gender, age; age_group and label not yet derived
    eval_dir: Path | None = None
    problems: list[Problem] = field(default_factory=list)


def find_train_root(data: Path) -> Path | None:
    """The folder holding train.csv and images/, given the dataset root or that folder itself."""
    for cand in (data / "train", data):
        if (cand / "train.csv").is_file():
            return cand
    return None


def find_eval_dir(data: Path) -> Path | None:
    """The folder holding info.csv and images/, given the dataset root or that folder itself."""
    for cand in (data / "eval", data):
        if (cand / "info.csv").is_file():
            return cand
    return None


def scan(data: str | Path | pd.DataFrame, *, allow_outside: bool = False) -> Scan:
    """Scan DATA (a competition-layout folder, a .csv manifest, or a DataFrame in the manifest
    columns whose paths are absolute or relative to the working folder) without decoding photos.

    A manifest's paths must stay inside its folder (no ``..``, no absolute paths) unless
    ``allow_outside``: a crafted manifest must not make maskcls read other files. A DataFrame comes
    from the user's own code, so its paths may point anywhere.
    """
    if isinstance(data, pd.DataFrame):
        data = data.copy()
        for col in LABEL_COLUMNS:  # pandas stores an int column with a missing value as floats: 28.0
            if col in data.columns and pd.api.types.is_float_dtype(data[col]):
                whole = data[col].dropna()
                if (whole == whole.round()).all():
                    data[col] = data[col].astype("Int64")
        frame = data.astype(object).where(data.notna(), "").astype(str).reset_index(drop=True)
        return _scan_manifest_frame(frame, Path.cwd(), "DataFrame", allow_outside=True)
    data = Path(data)
    if not data.exists():
        raise UserError(f"{data}: no such file or folder")
    if data.is_file():
        if data.suffix.lower() != ".csv":
            raise UserError(f"{data}: DATA must be a folder in the competition layout or a .csv manifest")
        return _scan_manifest(data, allow_outside=allow_outside)
    train_root = find_train_root(data)
    if train_root is None:
        raise UserError(
            f"{data}: not a dataset folder: expected train/train.csv and train/images/ "
            "(the competition layout), or pass a .csv manifest"
        )
    return _scan_competition(train_root, find_eval_dir(data) if train_root != data else None,
                             allow_outside=allow_outside)


def _list_photos(folder: Path) -> tuple[dict[str, Path], list[Problem]]:
    """Map photo stem -> file for one person folder; matching is by stem, whatever the suffix."""
    photos: dict[str, Path] = {}
    problems: list[Problem] = []
    for f in sorted(folder.iterdir()):
        if f.name.startswith("."):  # macOS ._mask1.jpg, .DS_Store
            continue
        stem, suffix = f.stem, f.suffix.lower()
        if f.is_file() and suffix in IMAGE_SUFFIXES and stem in labels.PHOTO_MASK:
            if stem in photos:
                problems.append(Problem(str(f), f"second photo for {stem} (already have {photos[stem].name})", False))
            else:
                photos[stem] = f
        else:
            problems.append(Problem(str(f), "extra file: not one of " + ", ".join(labels.PHOTO_STEMS), False))
    missing = [s for s in labels.PHOTO_STEMS if s not in photos]
    if missing:
        problems.append(Problem(str(folder), "missing photo(s): " + ", ".join(missing), False))
    return photos, problems


def parse_folder_name(name: str) -> tuple[str, int, str, int]:
    """``<id>_<gender>_<race>_<age>`` -> (id, gender, race, age); raises ValueError naming the part."""
    m = FOLDER_RE.match(name)
    if not m:
        raise ValueError("folder name does not parse as <id>_<gender>_<race>_<age>")
    return m["id"], labels.parse_gender(m["gender"]), m["race"], labels.parse_age(m["age"])


OUTSIDE_HINT = "to accept such paths, set data.allow_outside=true (`--set data.allow_outside=true`; eda: --allow-outside)"


def _scan_competition(train_root: Path, eval_dir: Path | None, *, allow_outside: bool = False) -> Scan:
    csv_path = train_root / "train.csv"
    root = train_root.resolve()
    images = train_root / "images"
    frame = read_csv(csv_path, TRAIN_COLUMNS)
    problems: list[Problem] = []
    if not images.is_dir():
        raise UserError(f"{images}: folder not found (train.csv's photos live in train/images/<path>/)")
    rows = []
    seen: dict[str, int] = {}
    for i, rec in zip(frame.index, frame.itertuples(index=False)):  # the index holds the line number
        where = f"{csv_path}:{i}"
        folder_name = rec.path.strip()
        try:
            gender = labels.parse_gender(rec.gender)
            age = labels.parse_age(rec.age)
        except ValueError as exc:
            problems.append(Problem(where, str(exc)))
            continue
        if not folder_name:
            problems.append(Problem(where, "empty path"))
            continue
        if folder_name in seen:
            problems.append(Problem(where, f"path {folder_name} already listed on line {seen[folder_name]}"))
            continue
        seen[folder_name] = i
        folder = images / folder_name
        if not folder.is_dir():
            problems.append(Problem(where, f"person folder {folder} not found"))
            continue
        try:
            f_id, f_gender, _, f_age = parse_folder_name(folder_name)
            if (f_id, f_gender, f_age) != (rec.id.strip(), gender, age):
                problems.append(Problem(where, f"row says id={rec.id} gender={rec.gender} age={rec.age} "
                                               f"but the folder name says {folder_name}", False))
        except ValueError as exc:
            problems.append(Problem(str(folder), str(exc), False))
        rows.extend(_person_rows(folder, folder_name, rec.id.strip(), gender, age, root, problems,
                                 allow_outside=allow_outside))
    for folder in sorted(images.iterdir()):
        if not folder.name.startswith(".") and folder.name not in seen:
            problems.append(Problem(str(folder), "not listed in train.csv (ignored)", False))
    table = pd.DataFrame(rows, columns=list(RAW_COLUMNS))
    return Scan("competition", table, eval_dir, problems)


def _scan_manifest(csv_path: Path, *, allow_outside: bool) -> Scan:
    try:
        frame = read_csv(csv_path, MANIFEST_COLUMNS)
    except UserError as exc:
        try:
            header = set(pd.read_csv(csv_path, nrows=0).columns.astype(str))
        except Exception:  # the first error already says what is wrong with the file
            header = set()
        if set(TRAIN_COLUMNS) <= header:  # the competition's train.csv given as DATA
            raise UserError(f"{exc}. This is the competition layout's train.csv: give the dataset folder that "
                            f"holds train/ (here {csv_path.resolve().parent.parent}) as DATA") from None
        raise
    return _scan_manifest_frame(frame, csv_path.resolve().parent, str(csv_path), allow_outside=allow_outside)


def _person_rows(folder: Path, folder_name: str, person_id: str, gender: int, age: int, root: Path, problems: list[Problem], *,
                 allow_outside: bool) -> list[tuple]:
    """The table rows of one competition person folder's photos; its problems appended to ``problems``."""
    rows = []
    photos, photo_problems = _list_photos(folder)
    problems.extend(photo_problems)
    for stem, path in photos.items():
        real = path.resolve()
        # A link inside the data that leads out of it (to /etc/hostname, or another dataset's photo)
        # is held to the same rule as a manifest's ../ path.
        if not allow_outside and not real.is_relative_to(root):
            problems.append(Problem(str(path), f"links to {real}, outside the dataset folder {root}; "
                                               + OUTSIDE_HINT))
            continue
        # The competition's format: the mask state from the photo's name, gender and age from train.csv.
        recorded = {"mask": labels.PHOTO_MASK[stem], "gender": gender, "age": age}
        rows.append((str(real), folder_name, person_id, stem, *(recorded[c] for c in LABEL_COLUMNS)))
    return rows


def _manifest_labels(rec: dict, where: str, problems: list[Problem]) -> tuple[dict[str, int | None], bool]:
    """A manifest row's labels (None where empty); returns them and whether one did not parse (named in
    ``problems``)."""
    values: dict[str, int | None] = {}
    bad = False
    for col in LABEL_COLUMNS:
        text = rec.get(col, "").strip()
        if not text:
            values[col] = None
            continue
        try:
            values[col] = labels.by_field(col).parse(text)
        except ValueError as exc:
            problems.append(Problem(where, str(exc)))
            bad = True
    return values, bad


def _scan_manifest_frame(frame: pd.DataFrame, base: Path, csv_path: str, *, allow_outside: bool) -> Scan:
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"{csv_path}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, frame.columns))}")
    present = [c for c in LABEL_COLUMNS if c in frame.columns]
    if not present:
        raise UserError(f"{csv_path}: a manifest needs at least one label column: {', '.join(LABEL_COLUMNS[:-1])} "
                        f"or {LABEL_COLUMNS[-1]}")
    problems: list[Problem] = []
    rows = []
    seen: dict[str, int] = {}
    for i, rec in zip(frame.index, frame.to_dict("records")):
        where = f"{csv_path}:{i}"
        rel = rec["path"].strip()
        person = rec["person_id"].strip()
        if not rel or not person:
            problems.append(Problem(where, "path and person_id must not be empty"))
            continue
        values, bad = _manifest_labels(rec, where, problems)
        if not allow_outside and (Path(rel).is_absolute() or ".." in Path(rel).parts):
            problems.append(Problem(where, f"photo path {rel} leaves the manifest's folder; paths are relative to "
                                           f"the manifest ({OUTSIDE_HINT})"))
            continue
        try:
            path = (base / rel).resolve(strict=False)
            is_file = path.is_file()
        except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
            problems.append(Problem(where, f"photo {rel} cannot be opened ({exc})"))
            continue
        if not is_file:
            problems.append(Problem(where, f"photo {rel} not found"))
            continue
        if not allow_outside and not path.is_relative_to(base.resolve()):  # a symlink leading out
            problems.append(Problem(where, f"photo {rel} links to {path}, outside the manifest's folder "
                                           f"{base.resolve()}; {OUTSIDE_HINT}"))
            continue
        if str(path) in seen:
            problems.append(Problem(where, f"photo {rel} already listed on line {seen[str(path)]}"))
            continue
        seen[str(path)] = i
        if not bad:
            rows.append((str(path), person, person, path.stem, *(values[c] for c in LABEL_COLUMNS)))
    table = pd.DataFrame(rows, columns=list(RAW_COLUMNS))
    return Scan("manifest", table, None, problems)


def add_derived(table: pd.DataFrame, cutoffs: labels.AgeCutoffs) -> pd.DataFrame:
    """Type the label columns as nullable ints and derive age_group and the 18-class label."""
    out = table.copy()
    for col in LABEL_COLUMNS:
        out[col] = pd.array(out[col], dtype="Int64")
    for t in labels.TASKS:
        if t.derived:  # an age in years -> its group
            out[t.column] = pd.array([pd.NA if pd.isna(a) else cutoffs.group(int(a)) for a in out[t.field]],
                                     dtype="Int64")
    out["label"] = labels.encode_answers({t.name: out[t.column] for t in labels.TASKS}).astype("Int64")
    return out[list(TABLE_COLUMNS)].reset_index(drop=True)


def describe(data: str | Path | pd.DataFrame) -> str:
    """How DATA is named in messages and checkpoints."""
    return "DataFrame" if isinstance(data, pd.DataFrame) else str(Path(data).resolve())


def raise_on_fatal(problems: list[Problem], data, *, hint: bool = True) -> None:
    """Raise one UserError listing the fatal problems (the first ten), with how to see them all."""
    fatal = [p for p in problems if p.fatal]
    if isinstance(data, pd.DataFrame):
        data, hint = "the DataFrame", False
    if fatal:
        shown = "\n  ".join(str(p) for p in fatal[:10])
        more = f"\n  ... and {len(fatal) - 10} more" if len(fatal) > 10 else ""
        advice = f"\nRun `maskcls validate {data}` for the full list." if hint else ""
        raise UserError(f"{data}: {len(fatal)} problem(s) in the data:\n  {shown}{more}{advice}")


PHOTO_COL = "_maskcls_photo"  # the resolved photo path added to info.csv's own columns (which may include "path")


EVAL_OUTSIDE_HINT = "to accept such links, give predict --allow-outside"


def _leads_outside(path: Path, root: Path) -> bool:
    try:
        return not path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a link loop: not a photo inside the folder either way
        return False


def load_eval(eval_dir: str | Path, *, allow_outside: bool = False) -> tuple[pd.DataFrame, list[Problem]]:
    """Read eval/info.csv -> its own columns plus PHOTO_COL (the photo's path), in file order, and the
    problems found. A photo that links out of the eval folder is a problem unless ``allow_outside``:
    the training data's rule (a planted link must not make maskcls read, or name, other files)."""
    eval_dir = Path(eval_dir)
    found = find_eval_dir(eval_dir) if eval_dir.is_dir() else None
    if found is None:
        raise UserError(f"{eval_dir}: not an eval folder: expected info.csv and images/")
    info_path = found / "info.csv"
    frame = read_csv(info_path, ("ImageID", "ans"))
    images = found / "images"
    root = found.resolve()
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    paths = []
    for i, image_id in zip(frame.index, frame["ImageID"]):
        image_id = image_id.strip()
        path = images / image_id
        # A link out of the folder is refused before anything about its target is looked at (whether it
        # exists, whether it decodes): nothing outside is read, or named.
        outside = bool(image_id) and not allow_outside and _leads_outside(path, root)
        if image_id and (Path(image_id).name != image_id or image_id in (".", "..")):
            problems.append(Problem(f"{info_path}:{i}", f"ImageID {image_id} is not a file name in {images}"))
        elif outside:
            problems.append(Problem(f"{info_path}:{i}", f"image {image_id} links outside the eval folder {root}; "
                                                        + EVAL_OUTSIDE_HINT))
        elif not image_id or not path.is_file():
            problems.append(Problem(f"{info_path}:{i}", f"image {image_id or '(empty)'} not found in {images}"))
        elif image_id in seen:
            problems.append(Problem(f"{info_path}:{i}", f"ImageID {image_id} already listed on line {seen[image_id]}"))
        seen.setdefault(image_id, i)
        paths.append("" if outside else str(path.resolve()))  # "": never decoded by validate, never named
    if images.is_dir():
        for f in sorted(images.iterdir()):
            if not f.name.startswith(".") and f.name not in seen:
                problems.append(Problem(str(f), "not listed in info.csv (ignored)", False))
    frame = frame.assign(**{PHOTO_COL: paths}).reset_index(drop=True)  # positions, not line numbers, from here on
    return frame, problems


def targets(table: pd.DataFrame, cutoffs: labels.AgeCutoffs | None = None) -> np.ndarray:
    """(N, len(TASKS)) int64 targets, one column per task in ``labels.TASKS`` order, -1 where unknown.

    With ``cutoffs`` the age groups are derived from the ages again with those cut-offs (scoring with
    the competition's groups a model trained with other cut-offs)."""
    out = np.stack([table[t.column].fillna(-1).to_numpy(dtype=np.int64) for t in labels.TASKS], axis=1)
    if cutoffs is not None:
        for j, t in enumerate(labels.TASKS):
            if t.derived:
                ages = table[t.field].fillna(-1).to_numpy(dtype=np.int64)
                known = ages >= 0
                out[known, j] = cutoffs.groups(ages[known])
    return out


def load_table(data: str | Path | pd.DataFrame, *, cutoffs: labels.AgeCutoffs = labels.AgeCutoffs(),
               corrections: str | Path | None = None,
               allow_outside: bool = False) -> tuple[pd.DataFrame, corr_mod.CorrectionReport]:
    """Scan DATA, apply label corrections (``known``, ``none``, or a CSV path) and derive the labels.

    Raises ``UserError`` when the data has a problem that would make the table wrong.
    """
    result = scan(data, allow_outside=allow_outside)
    raise_on_fatal(result.problems, data)
    if result.table.empty:
        raise UserError(f"{describe(data)}: no photos found")
    report = corr_mod.CorrectionReport()
    corr_path = corr_mod.resolve(corrections)
    table = result.table
    if corr_path is not None:
        table, report = corr_mod.apply(table, corr_mod.read(corr_path))
    return add_derived(table, cutoffs), report
