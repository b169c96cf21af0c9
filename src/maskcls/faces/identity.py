"""Same person or not, from face descriptors: photos filed under a person whose face is someone else's,
and person ids whose faces match another id (one person registered twice). Pure: arrays in, tables out.

Two thresholds, because the questions differ:
- A photo against its own person's other photos: dlib's documented same-person threshold, 0.6
  (describe.SAME_PERSON_DISTANCE). One question per photo, so few chances of a false alarm.
- One id against every other id: N^2/2 questions, so a threshold that admits 1 stranger in 1,000 still
  matches hundreds of strangers in a data set of a few thousand people. MATCH_DISTANCE is stricter.
  Measured on the real development set (docs/faces.md): on UTKFace adults, pairs of different
  ids below 0.4 share their gender in 224 of 225 and are 3 years apart in age (median), i.e. the same
  person filed twice; between 0.4 and 0.5 they share their gender in 91% only (strangers who look
  alike come in), and 0.5-0.6 held 38,000 pairs. On masked faces 0.4% of random pairs fall below 0.5.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .describe import SAME_PERSON_DISTANCE

MATCH_DISTANCE = 0.4  # two ids whose faces are this close are one person (see the module note)
_BLOCK = 2048  # rows per block of the id-to-id distance matrix (memory: _BLOCK x ids floats)


def _faces_by_person(persons: np.ndarray, descriptors: np.ndarray) -> dict[str, np.ndarray]:
    """person -> row indices of their photos with a face, in first-appearance order of persons."""
    has = ~np.isnan(descriptors).any(axis=1)
    groups = pd.Series(np.arange(len(persons))).groupby(pd.Series(persons).astype(str), sort=False).indices
    return {p: idx[has[idx]] for p, idx in groups.items()}


def photo_mismatches(persons, descriptors: np.ndarray, *, threshold: float = SAME_PERSON_DISTANCE) -> pd.DataFrame:
    """Photos whose face is not their person's: the median distance to the person's other faces is
    above ``threshold``. A person with 2 faces farther apart than that has both photos listed (which
    one is odd cannot be told); one face alone is never listed.

    persons : (N,) person of each photo; descriptors : (N, 128), NaN rows where no face was found.
    Returns rows (row, person, distance, others), ``row`` indexing the inputs, farthest first.
    """
    persons = np.asarray(persons).astype(str)
    rows = []
    for person, idx in _faces_by_person(persons, descriptors).items():
        if len(idx) < 2:
            continue
        d = descriptors[idx].astype(float)
        dist = np.sqrt(((d[:, None, :] - d[None, :, :]) ** 2).sum(-1))
        for k, i in enumerate(idx):
            med = float(np.median(np.delete(dist[k], k)))
            if med > threshold:
                rows.append({"row": int(i), "person": person, "distance": round(med, 4), "others": len(idx) - 1})
    out = pd.DataFrame(rows, columns=["row", "person", "distance", "others"])
    return out.sort_values("distance", ascending=False, kind="stable").reset_index(drop=True)


def matching_people(persons, descriptors: np.ndarray, *, threshold: float = MATCH_DISTANCE) -> pd.DataFrame:
    """Pairs of person ids whose faces match: the median distance over their photo pairs is below
    ``threshold``. Candidates are found on each id's mean unit descriptor (a block at a time, so any
    number of ids fits in memory), then confirmed on the photos.

    Returns rows (person_a, person_b, distance, pairs) with person_a < person_b, closest first.
    """
    persons = np.asarray(persons).astype(str)
    by_person = {p: idx for p, idx in _faces_by_person(persons, descriptors).items() if len(idx)}
    names = sorted(by_person)
    if len(names) < 2:
        return pd.DataFrame(columns=["person_a", "person_b", "distance", "pairs"])
    means = np.stack([descriptors[by_person[p]].astype(float).mean(axis=0) for p in names])
    sq = (means ** 2).sum(axis=1)
    # The means' distance is at most the mean photo-pair distance (the triangle inequality), which
    # exceeds the median only where a few pairs are far: 0.15 of slack keeps such candidates too.
    loose = threshold + 0.15
    rows = []
    for start in range(0, len(names), _BLOCK):
        block = means[start:start + _BLOCK]
        d2 = sq[start:start + _BLOCK, None] + sq[None, :] - 2 * block @ means.T
        for a, b in zip(*np.nonzero(d2 < loose ** 2)):
            i, j = start + int(a), int(b)
            if j <= i:
                continue
            pa, pb = descriptors[by_person[names[i]]].astype(float), descriptors[by_person[names[j]]].astype(float)
            cross = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
            med = float(np.median(cross))
            if med < threshold:
                rows.append({"person_a": names[i], "person_b": names[j], "distance": round(med, 4),
                             "pairs": int(cross.size)})
    out = pd.DataFrame(rows, columns=["person_a", "person_b", "distance", "pairs"])
    return out.sort_values(["distance", "person_a", "person_b"], kind="stable").reset_index(drop=True)


def id_spread(persons, descriptors: np.ndarray, *, sample: int = 400, seed: int = 0) -> float | None:
    """The median distance between different ids' faces (their mean descriptors, at most ``sample`` ids
    drawn at random), or None with fewer than 2 ids with a face. Real faces of strangers lie far apart
    (0.77-0.84 on the development set); faces that all look alike to the model (drawn faces, masks)
    lie close, and then "below the threshold" says nothing about identity."""
    persons = np.asarray(persons).astype(str)
    by_person = [idx for idx in _faces_by_person(persons, descriptors).values() if len(idx)]
    if len(by_person) < 2:
        return None
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(by_person), size=min(sample, len(by_person)), replace=False)
    means = np.stack([descriptors[by_person[i]].astype(float).mean(axis=0) for i in pick])
    d = np.sqrt(((means[:, None, :] - means[None, :, :]) ** 2).sum(-1))
    return float(np.median(d[np.triu_indices(len(means), 1)]))


def identity_groups(persons, pairs: pd.DataFrame) -> np.ndarray:
    """(N,) a group name per photo: the person, or for ids matched by ``pairs`` (matching_people's
    table), the smallest id of their connected group, so every id of one face lands in one fold."""
    persons = np.asarray(persons).astype(str)
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    for a, b in zip(pairs["person_a"].astype(str), pairs["person_b"].astype(str)):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(p) for p in persons], dtype=object)
