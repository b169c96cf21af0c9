"""Check a whole dataset: layout, CSV rows, folder names, every photo decodes, eval rows have images."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path


from . import corrections as corr_mod
from ..progress import bar as progress_bar
from .images import decode_error
from .table import LABEL_COLUMNS, PHOTO_COL, Problem, load_eval, scan


def decode_problems(paths: list[str], *, workers: int = 4, progress: bool = True) -> list[Problem]:
    """Decode every photo with training's own decoder (``images.read_rgb``) and report the broken ones.
    Threads: PIL releases the GIL while decoding."""
    with ThreadPoolExecutor(workers) as pool:
        results = list(progress_bar(pool.map(decode_error, paths, chunksize=16), total=len(paths),
                            desc="decoding photos", unit="photo", disable=not progress))
    return [Problem(p, msg) for p, msg in zip(paths, results) if msg]


@dataclass
class Validation:
    problems: list[Problem] = field(default_factory=list)
    corrections: corr_mod.CorrectionReport | None = None
    photos: int = 0
    eval_photos: int = 0
    identity: object | None = None  # faces.checks.FaceChecks: findings to look at, not problems
    identity_notes: list[str] = field(default_factory=list)  # why the identity checks were not made


def validate(data: str | Path, *, corrections: str | Path | None = None, decode: bool = True,
             progress: bool = True, faces: str = "cached", cache_dir: str | None = None,
             cascade: str = "hog+haar") -> Validation:
    """Every problem in DATA (and its eval folder, if any), plus what ``corrections`` would change.

    faces: the identity checks (faces.checks) on the faces the cache holds ("cached"), on all photos
    with the missing ones computed ("compute"), or none ("off"). They run only when every photo
    decodes, and their findings are questions, not problems: they never change the exit status."""
    result = scan(data)
    out = Validation(problems=list(result.problems), photos=len(result.table))
    if result.table.empty:
        out.problems.append(Problem(str(data), "no photos found"))
    elif not result.table[list(LABEL_COLUMNS)].notna().any(axis=None):  # train refuses it too
        out.problems.append(Problem(str(data), "no photo has a mask, gender or age label; training needs at least one"))
    paths = list(result.table["path"])
    if result.eval_dir is not None:
        eval_table, eval_problems = load_eval(result.eval_dir)
        out.problems += eval_problems
        found = [p for p in eval_table[PHOTO_COL] if Path(p).is_file()]
        out.eval_photos = len(found)
        paths += found
    if decode:
        out.problems += decode_problems(paths, progress=progress)
    if faces != "off" and not out.problems and not result.table.empty:
        from ..faces.checks import checks_or_note, face_checks

        if faces == "compute":
            out.identity = face_checks(result.table, cache_dir=cache_dir, cascade=cascade, compute=True,
                                       progress=progress)
        else:
            out.identity = checks_or_note(result.table, cache_dir=cache_dir, cascade=cascade,
                                          note=out.identity_notes.append)
    elif faces != "off" and out.problems:
        out.identity_notes.append("identity checks skipped: fix the problems above first")
    corr_path = corr_mod.resolve(corrections)
    if corr_path is not None:
        _, out.corrections = corr_mod.apply(result.table, corr_mod.read(corr_path))
    return out


