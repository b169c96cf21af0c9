"""The on-disk preprocessed-photo cache (``data.cache=disk``): each photo decoded once, cropped and
resized to the training size, stored as uint8 in one memory-mapped file per preprocessing setting.

Layout: ``CACHE_DIR/photos/<settings>/arrays.u8`` (slots of H x W x 3 bytes, appended) and
``index.json`` (photo content sha1 -> slot). The key is the photo's content, not its path: a changed
photo gets a new slot (its old slot is simply no longer used) and a moved one is found again. Other
commands, runs and processes share it; random augmentations still run per epoch on top of it.

When to use which (docs/speed.md): ``ram`` holds every decoded photo in memory (fine for small sizes:
18,900 photos at 96x128 are 0.7 GB; at 384x512 11 GB); ``disk`` keeps them in the OS page cache and
on disk instead and survives between runs and commands; ``none`` decodes every photo every epoch.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..fileio import write_text
from ..progress import bar as progress_bar
from .images import read_rgb

VERSION = 1


def content_sha1(path: str | Path) -> str:
    """The SHA-1 of a file's bytes (the cache's key for a photo's content)."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Rows:
    """A lazily opened view of some slots of a cache file: ``rows[i]`` is one (H, W, 3) photo.

    Picklable without its data (DataLoader workers each open the memory map themselves), unlike a
    numpy memmap, which would be copied whole into every worker.
    """

    def __init__(self, file: Path, shape: tuple[int, int, int], slots: np.ndarray) -> None:
        self.file, self.shape, self.slots = Path(file), shape, np.asarray(slots, dtype=np.int64)
        self._map: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.slots)

    def _array(self) -> np.ndarray:
        if self._map is None:
            n = os.path.getsize(self.file) // int(np.prod(self.shape))
            self._map = np.memmap(self.file, dtype=np.uint8, mode="r", shape=(n, *self.shape))
        return self._map

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            return np.asarray(self._array()[self.slots[i]])
        return Rows(self.file, self.shape, self.slots[i])  # a subset: still lazy

    def __getstate__(self) -> dict:
        return {"file": self.file, "shape": self.shape, "slots": self.slots, "_map": None}


class DiskCache:
    """``rows(paths, preprocess, key)``: the preprocessed photos of ``paths`` (building what is missing)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root) / "photos"
        self.decoded = 0  # photos decoded by this object (0 on a warm cache)

    def folder(self, key: tuple) -> Path:
        """The folder of one preprocessing (``key``: size, crop and their settings)."""
        name = hashlib.sha1(json.dumps([VERSION, *map(str, key)]).encode()).hexdigest()[:16]
        return self.root / name

    def rows(self, paths: list[str], preprocess, key: tuple, *, workers: int = 4, progress: bool = True) -> Rows:
        """The preprocessed photos of ``paths`` as memory-mapped rows, computing the missing ones with ``preprocess``."""
        folder = self.folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        # One builder at a time per setting (two trainings starting together would interleave slots).
        with open(folder / ".lock", "w") as lock_fh:
            fcntl.flock(lock_fh, fcntl.LOCK_EX)
            try:
                return self._rows(folder, paths, preprocess, workers=workers, progress=progress)
            finally:
                fcntl.flock(lock_fh, fcntl.LOCK_UN)

    def _rows(self, folder: Path, paths: list[str], preprocess, *, workers: int, progress: bool) -> Rows:
        width, height = preprocess.size
        shape = (height, width, 3)
        index_file, data_file = folder / "index.json", folder / "arrays.u8"
        try:
            index: dict[str, int] = json.loads(index_file.read_text())
        except (OSError, ValueError):
            index = {}
        slot_bytes = int(np.prod(shape))
        have = os.path.getsize(data_file) // slot_bytes if data_file.exists() else 0
        index = {k: v for k, v in index.items() if v < have}  # slots written before a crash without an index
        sums = list(progress_bar((content_sha1(p) for p in paths), total=len(paths), desc="checking photo cache",
                                 unit="photo", disable=not progress))
        missing = list(dict.fromkeys(s for s in sums if s not in index))
        if missing:
            first = {s: p for s, p in zip(reversed(sums), reversed(paths))}  # a path for each content
            lock = threading.Lock()
            with open(data_file, "r+b" if data_file.exists() else "wb") as fh:
                fh.truncate(have * slot_bytes)  # drop a half-written slot from a killed build
                fh.seek(have * slot_bytes)

                def build(sha: str) -> tuple[str, bytes]:
                    img = preprocess(read_rgb(first[sha]), first[sha])
                    return sha, np.ascontiguousarray(img, dtype=np.uint8).tobytes()

                with ThreadPoolExecutor(max(1, workers)) as pool:
                    for sha, blob in progress_bar(pool.map(build, missing), total=len(missing),
                                                  desc="caching photos on disk", unit="photo",
                                                  disable=not progress):
                        with lock:
                            fh.write(blob)
                            index[sha] = have
                            have += 1
                            self.decoded += 1
            write_text(index_file, json.dumps(index))
        return Rows(data_file, shape, np.array([index[s] for s in sums], dtype=np.int64))
