"""One answer key for a comparison: every run of an ablation or of `improve` is scored on the same
labels, whatever labels the run itself trained on.

Without it, a variant with corrections would be scored on its own corrected labels and the baseline
on the uncorrected ones: a photo fixed from class 0 to 12 counts as right for one and wrong for the
other, and part of the "gain" is only a moved key.

A key is either
- a corrections set (``known``, ``none`` or a corrections CSV): DATA's labels with it applied, or
- an answer-key CSV with columns ``person,image,mask,gender,age`` (one row per photo of DATA; empty
  where unknown), such as ``demo-data``'s ``truth/train_truth.csv``: the labels as they truly are.
The scoring cut-offs (``data.score_age_young/old``) turn ages into groups, as in every run's scoring.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import labels
from ..data import corrections as corr_mod
from ..data.table import add_derived, load_table, targets
from ..errors import UserError
from ..fileio import read_csv
from ..metrics import chance_metrics, compute_metrics
from ..training.runs import read_probs

KEY_COLUMNS = ("person", "image", "mask", "gender", "age")


@dataclass(frozen=True)
class AnswerKey:
    """``targets`` (N, len(TASKS)), -1 where unknown, for the photos at ``paths`` (DATA's resolved paths)."""

    description: str  # what the table and results.csv say the runs were scored on
    paths: tuple[str, ...]
    targets: np.ndarray
    digest: str  # the key's content: a rerun with another key must not pair with these runs

    def score(self, paths: pd.Series, probs: np.ndarray) -> dict[str, float | None]:
        """Metrics of ``probs`` (rows in ``paths`` order) against the key."""
        where = pd.Series(np.arange(len(self.paths)), index=list(self.paths))
        missing = ~paths.isin(where.index)
        if missing.any():
            raise ValueError(f"{int(missing.sum())} scored photo(s) are not in the answer key, e.g. "
                             f"{paths[missing].iloc[0]}")
        truth = self.targets[where[paths].to_numpy()]
        # chance_*: what a photo-blind guess reaches on the same class mix, so a table can say when a
        # score is no better than that.
        return compute_metrics(truth, probs) | {f"chance_{k}": v for k, v in chance_metrics(truth).items()}


def _header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return [c.strip() for c in fh.readline().strip().split(",")]


def is_answer_key(path: Path) -> bool:
    """True when the CSV's header has the answer-key columns (a corrections CSV has person_id,field,to)."""
    header = set(_header(path))
    return set(KEY_COLUMNS) <= header and "field" not in header


def _refuse_neither(path: Path) -> None:
    """A key file that is neither kind: say both formats, not only the corrections' columns."""
    header = _header(path)
    if not {"person_id", "field", "to"} <= set(header):
        raise UserError(f"{path}: neither an answer key (columns {','.join(KEY_COLUMNS)}; demo-data writes "
                        f"DATA/truth/train_truth.csv) nor corrections (columns person_id,field,image,from,to); "
                        f"found {', '.join(header) or 'no header'}")


def resolve_key(spec: str | Path, data, *, cutoffs: labels.AgeCutoffs, allow_outside: bool = False) -> AnswerKey:
    """The answer key named by ``spec`` (see the module doc) for every photo of DATA."""
    spec_text = str(spec)
    path = Path(spec_text)
    if spec_text not in corr_mod.BUILTIN and spec_text.lower() != "none" and path.is_file() and is_answer_key(path):
        table, _ = load_table(data, cutoffs=cutoffs, corrections="none", allow_outside=allow_outside)
        table = _apply_key_file(table, path, cutoffs)
        description = f"answer key {path.name}"
        content = path.read_bytes()
    else:
        if spec_text not in corr_mod.BUILTIN and spec_text.lower() != "none" and path.is_file():
            _refuse_neither(path)
        table, report = load_table(data, cutoffs=cutoffs, corrections=spec, allow_outside=allow_outside)
        described = "no corrections" if spec_text.lower() == "none" else \
            f"corrections {spec_text if spec_text in corr_mod.BUILTIN else path.name}"
        description = f"labels with {described} ({len(report.changes)} change(s))"
        resolved = corr_mod.resolve(spec)
        content = resolved.read_bytes() if resolved is not None else b"none"
    tg = targets(table, cutoffs)
    # by photo identity, not path: a copy of the data elsewhere is scored on the same key
    photos = "\n".join(table["person"].astype(str) + "/" + table["image"].astype(str)).encode()
    digest = hashlib.sha1(content + tg.tobytes() + photos).hexdigest()
    return AnswerKey(description, tuple(table["path"]), tg, digest)


def _apply_key_file(table: pd.DataFrame, path: Path, cutoffs: labels.AgeCutoffs) -> pd.DataFrame:
    """DATA's table with its labels replaced by the key's; the key must name exactly DATA's photos."""
    key = read_csv(path, KEY_COLUMNS)
    key["person"], key["image"] = key["person"].str.strip(), key["image"].str.strip()
    dup = key.duplicated(["person", "image"])
    if dup.any():
        line = key.index[dup][0]
        raise UserError(f"{path}:{line}: photo {key.loc[line, 'person']}/{key.loc[line, 'image']} is listed twice")
    have = pd.MultiIndex.from_frame(table[["person", "image"]])
    given = pd.MultiIndex.from_frame(key[["person", "image"]])
    absent, extra = have.difference(given), given.difference(have)
    if len(absent) or len(extra):
        example = f"{absent[0][0]}/{absent[0][1]} has no row" if len(absent) else \
            f"{extra[0][0]}/{extra[0][1]} is not in the data"
        raise UserError(f"{path}: does not fit the data: {len(absent)} of its {len(have)} photos have no row and "
                        f"{len(extra)} row(s) name photos it does not have (e.g. {example}); give the key "
                        "written for this data")
    parsers = {"mask": labels.parse_mask, "gender": labels.parse_gender, "age": labels.parse_age}
    key = key.set_index(["person", "image"])
    out = table.copy()
    for col, parse in parsers.items():
        values = []
        for (person, image), text in zip(have, key.loc[have, col]):
            text = str(text).strip()
            try:
                values.append(parse(text) if text else pd.NA)
            except ValueError as exc:
                raise UserError(f"{path}: {person}/{image}: {exc}") from None
        out[col] = values
    return add_derived(out, cutoffs)


def score_run(run_dir: Path, key: AnswerKey) -> tuple[dict[str, float | None], list[str]]:
    """Score a finished run's kept checkpoint (its val_probs.csv) on the key; also return the people it
    was scored on."""
    frame = read_probs(run_dir / "val_probs.csv")
    probs = frame[labels.class_prob_columns()].to_numpy(dtype=np.float64)
    return key.score(frame["path"], probs), sorted(frame["person"].unique())
