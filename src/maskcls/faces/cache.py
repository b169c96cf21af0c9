"""The face cache: one SQLite file, ``faces-v1.sqlite`` in the cache folder (``data.cache_dir``, else
$MASKCLS_CACHE, else ~/.cache/maskcls), never in the data folder. A record is keyed by the photo's
content (SHA-1 of its bytes) and the detector cascade, so a copy or a renamed photo is found again, an
edited one is computed anew, and a cascade with another detector never reuses "no face" from a
shorter one. Results are committed in small batches as they come: a run killed at any instant (even
``kill -9``) keeps what it committed, and SQLite's journal leaves the file whole."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .describe import DESCRIPTOR_SIZE

CACHE_NAME = "faces-v1.sqlite"  # bump the name when detection or description changes what is stored
_SCHEMA = """CREATE TABLE IF NOT EXISTS faces (
    key TEXT NOT NULL, cascade TEXT NOT NULL, width INTEGER, height INTEGER,
    detector TEXT, score REAL, x INTEGER, y INTEGER, w INTEGER, h INTEGER,
    landmarks BLOB, descriptor BLOB, PRIMARY KEY (key, cascade))"""


def default_cache_dir() -> Path:
    """$MASKCLS_CACHE, else ~/.cache/maskcls: the on-disk caches (faces, preprocessed photos)."""
    return Path(os.environ.get("MASKCLS_CACHE") or Path.home() / ".cache" / "maskcls")


def content_key(path: str | Path) -> str:
    """SHA-1 of the file's bytes: the photo's identity, wherever it lies and whatever its name."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class FaceRecord:
    """What the cache holds for one photo: its size, and the face (None fields when none was found)."""

    width: int
    height: int
    detector: str | None = None
    score: float | None = None
    box: tuple[int, int, int, int] | None = None  # x, y, w, h
    landmarks: np.ndarray | None = None  # (5, 2) float32
    descriptor: np.ndarray | None = None  # (128,) float32

    @property
    def found(self) -> bool:
        """Whether a face was found."""
        return self.detector is not None


class FaceCache:
    """Read and write face records; ``folder`` None means the default cache folder."""

    def __init__(self, folder: str | Path | None = None, *, readonly: bool = False) -> None:
        self.path = Path(folder or default_cache_dir()) / CACHE_NAME
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise UserError(f"{self.path.parent}: the face cache folder (data.cache_dir or $MASKCLS_CACHE) is not a "
                            "folder; give a folder")
        try:
            if readonly:  # looking faces up (validate, summary, eda, the folds) never needs to write
                self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=60)
                self._db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
                self._db.execute(_SCHEMA)
                self._db.commit()
            self._db.execute("SELECT COUNT(*) FROM faces LIMIT 1").fetchone()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _error(self, exc: Exception) -> UserError:
        """One line for a cache that cannot be used: damaged (move it away) or not writable (another folder)."""
        text = str(exc)
        if isinstance(exc, sqlite3.DatabaseError) and any(w in text for w in ("malformed", "not a database", "corrupt")):
            return UserError(f"{self.path}: the face cache is damaged ({text}); move it away and run again (the faces "
                             "are computed anew)")
        return UserError(f"{self.path}: the face cache cannot be used ({text}); check that the folder is writable, or "
                         "give another with --set data.cache_dir=DIR (or $MASKCLS_CACHE)")

    @classmethod
    @contextlib.contextmanager
    def if_exists(cls, folder: str | Path | None = None) -> Iterator["FaceCache | None"]:
        """The cache when its file exists (opened), else None; nothing is created."""
        if not (Path(folder or default_cache_dir()) / CACHE_NAME).is_file():
            yield None
            return
        with cls(folder, readonly=True) as cache:
            yield cache

    def close(self) -> None:
        """Close the cache's database."""
        self._db.close()

    def __enter__(self) -> "FaceCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, keys: Iterable[str], cascade: str) -> dict[str, FaceRecord]:
        """key -> record for the keys the cache holds with this cascade."""
        keys = list(dict.fromkeys(keys))
        out: dict[str, FaceRecord] = {}
        try:
            for i in range(0, len(keys), 500):  # SQLite's limit on bound parameters
                chunk = keys[i:i + 500]
                rows = self._db.execute(
                    f"SELECT key, width, height, detector, score, x, y, w, h, landmarks, descriptor FROM faces "
                    f"WHERE cascade = ? AND key IN ({','.join('?' * len(chunk))})", [cascade, *chunk]).fetchall()
                for key, *rest in rows:
                    out[key] = _record(*rest)
        except (sqlite3.Error, ValueError) as exc:  # ValueError: a blob of the wrong size in a damaged file
            raise self._error(exc if isinstance(exc, sqlite3.Error) else sqlite3.DatabaseError(f"malformed record: {exc}")) from None
        return out

    def put(self, items: Iterable[tuple[str, FaceRecord]], cascade: str) -> None:
        """Store records and commit them at once (one transaction)."""
        rows = []
        for key, r in items:
            box = r.box or (None, None, None, None)
            rows.append((key, cascade, r.width, r.height, r.detector, r.score, *box,
                         None if r.landmarks is None else np.asarray(r.landmarks, np.float32).tobytes(),
                         None if r.descriptor is None else np.asarray(r.descriptor, np.float32).tobytes()))
        try:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO faces VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def count(self) -> int:
        """How many photos the cache holds, or 0 where it cannot be read."""
        try:
            return int(self._db.execute("SELECT COUNT(*) FROM faces").fetchone()[0])
        except sqlite3.Error as exc:
            raise self._error(exc) from None


def _record(width, height, detector, score, x, y, w, h, landmarks, descriptor) -> FaceRecord:
    if detector is None:
        return FaceRecord(width, height)
    return FaceRecord(width, height, detector, score, (x, y, w, h),
                      np.frombuffer(landmarks, np.float32).reshape(-1, 2).copy(),
                      np.frombuffer(descriptor, np.float32).reshape(DESCRIPTOR_SIZE).copy())
