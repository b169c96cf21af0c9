"""Identity checks of a dataset from its faces: what validate, summary, the EDA page and the folds use.

The faces come from the cache (`maskcls faces DATA`), or are computed with ``compute=True``. A
finding is a question for a person to look at, not a verdict: masks hide part of the face, and two
siblings can look alike. The thresholds are faces.identity's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .compute import Faces, cached_faces, compute_faces
from .describe import SAME_PERSON_DISTANCE
from .identity import MATCH_DISTANCE, id_spread, identity_groups, matching_people, photo_mismatches


@dataclass
class FaceChecks:
    """``mismatches``: photos whose face is not their person's (path, person, image, distance, others);
    ``matches``: pairs of ids with one face (person_a, person_b, distance, pairs); ``groups``: the
    identity group of every row of the table (the person, or the group of ids matched by face)."""

    faces: Faces
    mismatches: pd.DataFrame
    matches: pd.DataFrame
    groups: np.ndarray
    persons: np.ndarray  # the person of every row
    compared: int = 0  # photos with a face that took part (masked ones are left out)
    note: str = ""  # why a check was not made

    @property
    def grouped_ids(self) -> int:
        """How many person ids share their group with another id."""
        return int(len(set(self.matches["person_a"]) | set(self.matches["person_b"])))

    @property
    def n_groups(self) -> int:
        """How many groups the matched ids form."""
        ids = set(self.matches["person_a"]) | set(self.matches["person_b"])
        return len({g for g, p in zip(self.groups, self.persons) if p in ids})

    def lines(self) -> list[str]:
        """One line per finding, then a count: what validate and summary print."""
        out = [f"identity: {r.path}: the face is not {r.person}'s (median distance {r.distance:.2f} to the "
               f"{r.others} other face(s) of {r.person}; the same person is below {SAME_PERSON_DISTANCE})"
               for r in self.mismatches.itertuples()]
        out += [f"identity: {r.person_a} and {r.person_b} have one face (median distance {r.distance:.3f} over "
                f"{r.pairs} photo pair(s), below {MATCH_DISTANCE}): one person filed twice?"
                for r in self.matches.itertuples()]
        f = self.faces
        if self.note:
            out.append(f"identity: {self.note}")
        out.append(f"identity checks on {self.compared} photos with a face found ({int(f.found.sum())} of "
                   f"{len(f.table)}; photos recorded with a mask worn take no part: a mask hides the face): "
                   f"{len(self.mismatches)} photo(s) unlike their person, {len(self.matches)} pair(s) of ids with one face"
                   + (f"; {f.missing} photo(s) not in the face cache (run `maskcls faces`)" if f.missing else ""))
        return out

    def summary(self) -> dict:
        """The checks' counts for summary.json and the reports."""
        return {"photos_with_face": int(self.faces.found.sum()), "photos_compared": self.compared,
                "photos_not_cached": int(self.faces.missing), "note": self.note,
                "mismatched_photos": self.mismatches.to_dict("records"), "matching_ids": self.matches.to_dict("records")}


def face_checks(table: pd.DataFrame, *, cache_dir: str | Path | None = None, cascade: str = "hog+haar",
                compute: bool = False, progress: bool = True) -> FaceChecks | None:
    """The identity checks of ``table`` (data.table's: path, person, image). With ``compute`` the faces
    the cache lacks are computed; without, None when the cache holds none of the photos."""
    paths = table["path"].tolist()
    faces = (compute_faces(paths, cache_dir=cache_dir, cascade=cascade, progress=progress) if compute
             else cached_faces(paths, cache_dir=cache_dir, cascade=cascade))
    if faces is None:
        return None
    persons = table["person"].astype(str).to_numpy()
    # A mask hides what tells people apart: on the development set's masked faces, 220 pairs of
    # different people (of both genders) fell below MATCH_DISTANCE. Photos recorded as mask worn are left
    # out of the identity checks; unmasked, incorrectly masked and unlabelled ones take part.
    usable = faces.descriptors.copy()
    masked = pd.to_numeric(table["mask"], errors="coerce").to_numpy() == 0 if "mask" in table.columns else None
    if masked is not None:
        usable[masked] = np.nan
    mism = photo_mismatches(persons, usable)
    mism.insert(0, "path", [paths[i] for i in mism["row"]])
    mism.insert(2, "image", [str(table["image"].iloc[i]) for i in mism["row"]])
    note = ""
    spread = id_spread(persons, usable)
    if spread is not None and spread < SAME_PERSON_DISTANCE:
        # Strangers closer than one person's own photos: the model cannot tell these faces apart.
        note = (f"ids not compared: the faces found lie {spread:.2f} apart between ids (median), closer than the "
                f"same-person threshold {SAME_PERSON_DISTANCE}, so the face model cannot tell these people apart "
                "(drawn faces do this)")
        matches = pd.DataFrame(columns=["person_a", "person_b", "distance", "pairs"])
        mism = mism.iloc[0:0]
    else:
        matches = matching_people(persons, usable)
    compared = int((~np.isnan(usable).any(axis=1)).sum())
    return FaceChecks(faces, mism.drop(columns="row"), matches, identity_groups(persons, matches), persons,
                      compared, note)


def checks_or_note(table: pd.DataFrame, *, cache_dir: str | Path | None, cascade: str,
                   note) -> FaceChecks | None:
    """The identity checks on the cached faces, or None after ``note(line)`` says why they could not be
    made (a cache that cannot be read): looking faces up never stops the command that asked."""
    from ..errors import UserError

    try:
        return face_checks(table, cache_dir=cache_dir, cascade=cascade)
    except UserError as exc:
        note(f"identity checks skipped: {exc}")
        return None
