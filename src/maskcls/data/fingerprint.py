"""Photo fingerprints: an 8-byte hash of each file's bytes. A run keeps those of its training photos,
so that scoring it later can tell when photos it trained on come back, under their own path, in a
copy of the data, or mixed into other data; a path comparison sees none of the last two."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .. import labels
from ..errors import UserError


def photo_digests(paths: Iterable[str | Path]) -> np.ndarray:
    """int64 fingerprints of the files, in order (blake2b, 8 bytes: collisions are ~1e-19 per pair)."""
    out = []
    for path in paths:
        with open(path, "rb") as f:
            out.append(int.from_bytes(hashlib.blake2b(f.read(), digest_size=8).digest(), "little", signed=True))
    return np.asarray(out, dtype=np.int64)


def seen_before(digests: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``digests`` are among ``known``."""
    return np.isin(np.asarray(digests, dtype=np.int64), np.asarray(known, dtype=np.int64))


def trained_on_count(digests: np.ndarray, members) -> int:
    """How many of ``digests`` are photos one of ``members`` (loaded models, each with the fingerprints of
    its training photos in ``train_photos``) learnt from; members from before fingerprints were kept are
    not checked."""
    known = [m.train_photos for m in members if m.train_photos is not None]
    return int(seen_before(digests, np.concatenate(known)).sum()) if known else 0


def data_identity(table: pd.DataFrame, digests: np.ndarray) -> dict[str, str]:
    """What a run learned from, wherever the data lie: ``labels`` hashes each photo's person, name and
    labels, ``photos`` the photos' content (their fingerprints), both in table order. A copy of the data
    has the same identity; the same path with an edited label or photo has another."""
    given = table[["person", "image", *(t.field for t in labels.TASKS)]].astype(str)
    labels_hash = hashlib.sha1(pd.util.hash_pandas_object(given, index=False).to_numpy().tobytes())
    photos_hash = hashlib.sha1(given[["person", "image"]].to_csv(index=False).encode())
    photos_hash.update(np.ascontiguousarray(digests, dtype=np.int64).tobytes())
    return {"labels": labels_hash.hexdigest(), "photos": photos_hash.hexdigest()}


def identity_change(before: dict | None, now: dict) -> str | None:
    """What differs between a run's recorded data identity and the data given now ('labels', 'photos',
    'labels and photos'), or None when they agree or the run predates identities."""
    if not isinstance(before, dict) or not before:
        return None
    changed = [k for k in ("labels", "photos") if k in before and before[k] != now.get(k)]
    return " and ".join(changed) or None


def refuse_other_data(what: str, before: dict | None, now: dict, data: object) -> None:
    """Raise the one-line UserError for a run used with data other than it was trained on."""
    change = identity_change(before, now)
    if change:
        raise UserError(f"{data}: its {change} differ from those {what} was trained on (edited since, or other "
                        f"data); a run is only scored, resumed or audited with the data it learned from: restore "
                        "that data, or train a new run on this one")
