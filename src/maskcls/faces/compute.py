"""`maskcls faces`: detect, align and describe every photo's face once, through the cache.

Photos are keyed by content (cache.content_key); only those the cache lacks are computed, in worker
processes (dlib and OpenCV hold the GIL for much of their work, so threads would not help), and the
results are committed in batches of BATCH photos as they come, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..progress import bar as progress_bar
from .cache import FaceCache, FaceRecord, content_key
from .describe import DESCRIPTOR_SIZE, describe
from ..choices import DEFAULT_CASCADE, check_cascade
from .detect import detect

BATCH = 16  # photos per commit: a kill loses at most this many photos' work
MIN_PER_WORKER = 8  # below this many photos per worker process, starting the process costs more than it saves


@dataclass
class Faces:
    """Every photo's face, in the order of the paths asked for.

    ``table``: path, key (content), width, height, detector (None: no face), score, x, y, w, h.
    ``descriptors``: (N, 128) float32, NaN rows where no face was found. ``landmarks``: (N, 5, 2).
    """

    table: pd.DataFrame
    descriptors: np.ndarray
    landmarks: np.ndarray
    cascade: str
    cache_path: Path
    cached: int = 0  # photos found in the cache
    computed: int = 0  # photos computed by this call
    seconds: float = 0.0  # time spent computing
    per_detector: dict = field(default_factory=dict)
    missing: int = 0  # photos the cache lacked (cached_faces only: they count as no face)
    failed: dict = field(default_factory=dict)  # path -> why it does not decode (not cached; counted as no face)

    @property
    def found(self) -> np.ndarray:
        """Per photo, whether a face was found."""
        return self.table["detector"].notna().to_numpy()

    def summary(self) -> str:
        """One line: photos, faces found, by which detector, and how many came from the cache."""
        n = len(self.table)
        found = int(self.found.sum())
        by = ", ".join(f"{k} {v}" for k, v in self.per_detector.items()) or "none"
        rate = f" in {self.seconds:.1f} s ({self.computed / self.seconds:.1f} photos/s)" if self.computed else ""
        bad = f"; {len(self.failed)} photo(s) could not be read" if self.failed else ""
        return (f"faces: {found} of {n} photos have a face ({by}; no face in {n - found - len(self.failed)}); "
                f"{self.cached} from the "
                f"cache, {self.computed} computed{rate}{bad}; cache {self.cache_path}")


def _analyse(path: str, cascade: tuple[str, ...]) -> FaceRecord | str:
    """The photo's face record, or the reason it does not decode (one bad photo must not stop the rest)."""
    from ..photos import PhotoError, read_rgb

    try:
        image = read_rgb(path)
    except PhotoError as exc:
        return str(exc)
    return analyse_image(image, cascade)


def analyse_image(image: np.ndarray, cascade: tuple[str, ...]) -> FaceRecord:
    """One decoded photo's face record: detect with the cascade, then align and describe (no face: sizes only)."""
    h, w = image.shape[:2]
    face = detect(image, cascade)
    if face is None:
        return FaceRecord(w, h)
    points, vector = describe(image, face)
    return FaceRecord(w, h, face.detector, face.score, face.box, points, vector)


def _work(args: tuple[str, tuple[str, ...]]) -> FaceRecord | str:
    return _analyse(*args)


def _init_worker(parent: int) -> None:
    # One thread per worker process: the processes are the parallelism (oversubscribed BLAS threads
    # on 2 cores slow every process down).
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)
    # A parent killed with kill -9 (or SIGTERM) cannot shut its pool down; its workers would wait on an
    # empty queue for ever. Each one leaves as soon as its parent is gone.
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def compute_faces(paths: Sequence[str | Path], *, cache_dir: str | Path | None = None,
                  cascade: str | Sequence[str] = DEFAULT_CASCADE, workers: int | None = None,
                  progress: bool = True) -> Faces:
    """Faces of ``paths`` (photo files), computed where the cache lacks them and stored there.

    workers: processes that compute (None: the machine's cores, at most 8; 0 or 1: this process).
    A photo that cannot be read or decoded counts as no face, is not cached, and is named in
    ``Faces.failed``; the others are computed and cached all the same.
    """
    names = check_cascade(cascade)
    spelled = "+".join(names)
    paths = [str(p) for p in paths]
    keys = [_key_or_none(p) for p in paths]
    failed = {p: f"{p}: photo not found" for p, k in zip(paths, keys) if k is None}
    records: dict[str, FaceRecord] = {}
    with FaceCache(cache_dir) as cache:
        records.update(cache.get([k for k in keys if k is not None], spelled))
        todo: dict[str, str] = {}
        for path, key in zip(paths, keys):
            if key is not None and key not in records and key not in todo:
                todo[key] = path
        cached = sum(1 for k in keys if k is not None and k not in todo)
        start = time.perf_counter()
        if todo:
            _compute(todo, names, cache, records, failed, workers=workers, progress=progress)
        seconds = time.perf_counter() - start
        cache_path = cache.path
    computed = sum(1 for key in todo if key in records)  # the photos of todo that decoded
    for path, key in zip(paths, keys):
        if path in failed or key is None:
            records.setdefault(key or path, FaceRecord(0, 0))  # no face, and nothing cached for it
    faces = _assemble(paths, [k or p for p, k in zip(paths, keys)], records, spelled, cache_path, cached,
                      computed, seconds)
    faces.failed = failed
    return faces



def _compute(todo: dict[str, str], names: list[str], cache: FaceCache, records: dict[str, FaceRecord],
             failed: dict[str, str], *, workers: int | None, progress: bool) -> None:
    """Compute the faces of ``todo`` (key -> photo path) into ``records`` and the cache, in batches so that
    what is done is kept when something fails; a photo that does not decode goes to ``failed``."""
    spelled = "+".join(names)
    n_workers = min(os.cpu_count() or 1, 8) if workers is None else workers
    n_workers = max(1, min(n_workers, len(todo) // MIN_PER_WORKER))
    items = list(todo.items())
    jobs = [(p, names) for _, p in items]
    pending: list[tuple[str, FaceRecord]] = []
    with progress_bar(total=len(items), desc="faces", unit="photo", disable=not progress) as bar:
        if n_workers <= 1:
            results = map(_work, jobs)
            pool = None
        else:
            pool = ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_worker, initargs=(os.getpid(),))
            results = pool.map(_work, jobs, chunksize=4)
        try:
            for (key, path), record in zip(items, results):
                bar.update(1)
                if isinstance(record, str):
                    failed[path] = record
                    continue
                records[key] = record
                pending.append((key, record))
                if len(pending) >= BATCH:
                    cache.put(pending, spelled)
                    pending = []
        finally:
            if pending:
                cache.put(pending, spelled)  # keep what is done, also when a photo failed
            if pool is not None:
                pool.shutdown(cancel_futures=True)


def _key_or_none(path: str) -> str | None:
    try:
        return content_key(path)
    except OSError:
        return None


def cached_faces(paths: Sequence[str | Path], *, cache_dir: str | Path | None = None,
                 cascade: str | Sequence[str] = DEFAULT_CASCADE) -> Faces | None:
    """The faces the cache already holds for ``paths`` (nothing is computed; a photo the cache lacks
    counts as no face, and ``missing`` says how many), or None when the cache holds none of them. No
    cache file: None at once, without reading the photos."""
    names = "+".join(check_cascade(cascade))
    with FaceCache.if_exists(cache_dir) as cache:
        if cache is None:
            return None
        paths = [str(p) for p in paths]
        keys = [content_key(p) for p in paths]
        records = cache.get(keys, names)
        cache_path = cache.path
    if not records:
        return None
    missing = [k for k in keys if k not in records]
    for key in missing:
        records[key] = FaceRecord(0, 0)
    faces = _assemble(paths, keys, records, names, cache_path, len(paths) - len(missing), 0, 0.0)
    faces.missing = len(missing)
    return faces


def _assemble(paths, keys, records, cascade, cache_path, cached, computed, seconds) -> Faces:
    n = len(paths)
    descriptors = np.full((n, DESCRIPTOR_SIZE), np.nan, np.float32)
    landmarks = np.full((n, 5, 2), np.nan, np.float32)
    rows = []
    for i, (path, key) in enumerate(zip(paths, keys)):
        r = records[key]
        box = r.box or (None, None, None, None)
        rows.append((path, key, r.width, r.height, r.detector, r.score, *box))
        if r.found:
            descriptors[i] = r.descriptor
            landmarks[i] = r.landmarks
    table = pd.DataFrame(rows, columns=["path", "key", "width", "height", "detector", "score", "x", "y", "w", "h"])
    per = table["detector"].value_counts()
    return Faces(table, descriptors, landmarks, cascade, cache_path, cached, computed, seconds,
                 {k: int(per[k]) for k in per.index})
