"""The decoded-photo cache and the datasets every training and prediction reads from. Photos are
decoded by the one decoder, ``maskcls.photos.read_rgb`` (its names are importable from here too)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from torch.utils.data import Dataset

from .. import labels
from ..errors import UserError
from ..photos import MAX_PIXELS, VALIDATE_HINT, PhotoError, decode_error, pil_to_rgb, read_rgb  # noqa: F401
from ..progress import bar as progress_bar
from .preprocess import resize  # noqa: F401  (importable from here, as before)


def available_memory() -> int | None:
    """Bytes this process can still allocate: the system's MemAvailable, or less under a `ulimit -v`
    address-space limit; None where neither can be read."""
    limits = []
    try:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        limits.append(int(meminfo["MemAvailable"].split()[0]) * 1024)
    except (OSError, KeyError, ValueError):
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
            limits.append(soft - int(status["VmSize"].split()[0]) * 1024)
    except (ImportError, OSError, KeyError, ValueError):
        pass
    return max(0, min(limits)) if limits else None


class PhotoStore:
    """Decoded photos of one dataset, resized per training size and kept in RAM.

    Built once by ``prepare`` and shared by every training that uses the prepared data (folds, seeds,
    variants): ``arrays(size)`` decodes each photo once per size, whatever the number of trainings.
    ``decoded`` counts the decodes, so tests (and users) can see that nothing was redone.
    """

    def __init__(self, paths: list[str], *, workers: int = 4) -> None:
        self.paths = list(paths)
        self.workers = max(1, workers)
        self.decoded = 0
        self._arrays: dict[tuple[int, int], np.ndarray] = {}
        self._lock = threading.Lock()

    def arrays(self, preprocess, key: tuple, *, progress: bool = True) -> np.ndarray:
        """(N, H, W, 3) uint8 for every path, in order, after ``preprocess(image, path)`` (crop and
        resize); decoded on the first call for this ``key`` (the settings that shape the result)."""
        if key not in self._arrays:
            self._arrays[key] = self._decode_all(preprocess, progress)
        return self._arrays[key]

    def _decode_all(self, preprocess, progress: bool) -> np.ndarray:
        width, height = preprocess.size
        need = len(self.paths) * height * width * 3
        free = available_memory()
        advice = (f"data.cache=ram needs {need / 2**30:.1f} GiB for {len(self.paths)} photos at {width}x{height}"
                  "{}; use a smaller data.size, data.cache=disk (decoded once into a file) or data.cache=none")
        if free is not None and need > 0.8 * free:  # np.empty is lazy: the shortfall would hit mid-decode
            raise UserError(advice.format(f", more than the {free / 2**30:.1f} GiB this process can still use"))
        try:
            out = np.empty((len(self.paths), height, width, 3), np.uint8)
        except MemoryError:
            raise UserError(advice.format(", more than this machine can give")) from None

        def load(i: int) -> None:
            out[i] = preprocess(read_rgb(self.paths[i]), self.paths[i])
            with self._lock:
                self.decoded += 1

        # Threads: PIL and OpenCV release the GIL while decoding and resizing.
        with ThreadPoolExecutor(self.workers) as pool:
            list(progress_bar(pool.map(load, range(len(self.paths))), total=len(self.paths), desc="caching photos",
                      unit="photo", disable=not progress))
        return out


def sample_seed(epoch_seed: int, i: int) -> int:
    """The augmentation seed of photo ``i`` in an epoch: each photo draws its own augmentation, and
    augment-preview draws as training does."""
    return (epoch_seed * 1_000_003 + i) % (2**32)


# model.name=face-descriptor reads no pixels: its samples carry this placeholder instead of a decoded photo
NO_IMAGE = torch.zeros((3, 1, 1), dtype=torch.uint8)


def _sample(image: torch.Tensor, faces: np.ndarray | None, i: int):
    """What the model takes for one photo: the image, or with face features the image and its descriptor
    (training.model.Inputs; the default collate batches both)."""
    if faces is None:
        return image
    return {"images": image, "faces": torch.from_numpy(faces[i])}


class PhotoDataset(Dataset):
    """Photos (from files or a decoded array) -> (uint8 CHW tensor, (len(TASKS),) int64 targets).

    Each sample's augmentation is seeded from (epoch seed, index), so results do not depend on the
    number of workers or on whether the run was resumed. With ``faces`` ((N, 128) descriptors, NaN rows
    for no face) a sample's first element is {"images", "faces"}; ``images=False`` (a model without a
    CNN) skips decoding and carries ``NO_IMAGE``.
    """

    def __init__(self, paths: list[str], targets: np.ndarray, transform, *,
                 cache: np.ndarray | None = None, faces: np.ndarray | None = None, images: bool = True) -> None:
        self.paths = list(paths)
        self.targets = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
        self.transform = transform
        self.cache = cache
        self.faces = None if faces is None else np.asarray(faces, dtype=np.float32)
        self.images = images
        self.epoch_seed = 0

    def set_epoch_seed(self, seed: int) -> None:
        """The seed of this epoch's augmentations (each photo's own seed derives from it)."""
        self.epoch_seed = seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple:
        seed = sample_seed(self.epoch_seed, i)
        if not self.images:
            return _sample(NO_IMAGE, self.faces, i), self.targets[i]
        if self.cache is not None:  # already cropped and resized
            img = self.transform(self.cache[i], seed=seed, preprocessed=True)
        else:
            img = self.transform(read_rgb(self.paths[i]), seed=seed, key=self.paths[i])
        image = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return _sample(image, self.faces, i), self.targets[i]


class ArrayDataset(Dataset):
    """In-memory RGB uint8 arrays (any sizes) -> the same samples as ``PhotoDataset`` (for the API)."""

    def __init__(self, images: list[np.ndarray], transform, *, faces: np.ndarray | None = None,
                 decode: bool = True) -> None:
        self.images = images
        self.transform = transform
        self.faces = None if faces is None else np.asarray(faces, dtype=np.float32)
        self.decode = decode

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple:
        if not self.decode:
            return _sample(NO_IMAGE, self.faces, i), torch.full((len(labels.TASKS),), -1)
        img = self.transform(self.images[i], seed=0)
        image = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return _sample(image, self.faces, i), torch.full((len(labels.TASKS),), -1)
