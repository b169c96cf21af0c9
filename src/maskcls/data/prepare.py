"""Prepare once: scan DATA, apply corrections, derive labels, assign person-level folds and hold the
decoded photos; then hand the result to any number of trainings (folds, seeds, variants).

The folds depend only on the people, their labels, ``data.folds`` and ``data.split_seed``: changing
``train.seed`` never moves a person between training and validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .. import labels
from ..config import FACE_MODEL, face_setting, unknown_choice
from ..errors import UserError
from . import corrections as corr_mod
from . import splits
from .diskcache import DiskCache
from ..faces.cache import default_cache_dir
from .faces import FaceBoxes
from .fingerprint import data_identity, photo_digests
from .images import PhotoDataset, PhotoStore
from .table import describe, load_table, targets
from .transforms import eval_transform, train_transform


@dataclass
class Prepared:
    """One dataset, ready to train on: the tidy table, its targets, the folds and the decoded photos.

    ``key`` records the settings that shaped the table and folds; a training whose config disagrees
    with it is refused (see ``check``) rather than silently trained on other labels.
    """

    source: str  # the resolved DATA path (or "DataFrame")
    table: pd.DataFrame
    report: corr_mod.CorrectionReport
    folds: np.ndarray  # fold index per row
    key: dict
    store: PhotoStore
    targets: np.ndarray = field(init=False)  # for training: age groups with data.age_young/age_old
    score_targets: np.ndarray = field(init=False)  # for scoring: data.score_age_young/score_age_old
    _faces: dict = field(init=False, default_factory=dict)
    _disk: dict = field(init=False, default_factory=dict)
    _digests: np.ndarray | None = field(init=False, default=None)
    _identity: dict | None = field(init=False, default=None)
    # data.face_groups: how many person ids matched another id's face and were kept in one fold with it
    face_grouped: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.targets = targets(self.table)
        self.score_targets = targets(self.table, labels.AgeCutoffs(self.key["data.score_age_young"],
                                                                   self.key["data.score_age_old"]))

    @property
    def k(self) -> int:
        """The number of person-level folds drawn."""
        return int(self.key["data.folds"])

    def split(self, fold: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Row indices (training, validation) when person-level ``fold`` is held out; ``None`` (data.fold
        null, `train --fold none`) holds no one out: every row trains, none validates."""
        if fold is None:
            return np.arange(len(self.table)), np.arange(0)
        if not 0 <= fold < self.k:
            raise UserError(f"fold must be between 0 and {self.k - 1}, got {fold}")
        return np.flatnonzero(self.folds != fold), np.flatnonzero(self.folds == fold)

    def photo_digests(self) -> np.ndarray:
        """Every row's file fingerprint (see data.fingerprint), read once and shared by all the trainings
        of this dataset (folds, ablation runs)."""
        if self._digests is None:
            self._digests = photo_digests(self.table["path"])
        return self._digests

    def identity(self) -> dict[str, str]:
        """The data's labels and photo content as hashes (see data.fingerprint.data_identity)."""
        if self._identity is None:
            self._identity = data_identity(self.table, self.photo_digests())
        return self._identity

    def check(self, cfg) -> None:
        """Raise ValueError when ``cfg`` asks for data other than what was prepared."""
        wanted = prepare_key(cfg)
        diff = [f"{k} (prepared {self.key[k]}, asked {v})" for k, v in wanted.items() if self.key[k] != v]
        if diff:
            raise ValueError(f"prepared data does not match the config: {', '.join(diff)}; prepare it again")

    def face_boxes(self, cfg, *, progress: bool = True) -> FaceBoxes | None:
        """The face detector with every photo's box computed (once per margin and size), or None
        when data.crop is not the face crop."""
        if cfg.data.crop != "face":
            return None
        key = (cfg.data.face_margin, cfg.size, cfg.data.cache_dir, cfg.data.face_detectors)
        if key not in self._faces:
            faces = FaceBoxes(margin=cfg.data.face_margin, size=cfg.size, cache_dir=cfg.data.cache_dir or None,
                              cascade=cfg.data.face_detectors)
            faces.table = faces.boxes(self.table["path"].tolist(), progress=progress)
            self._faces[key] = faces
        return self._faces[key]

    def face_descriptors(self, cfg, *, progress: bool = True) -> np.ndarray | None:
        """model.face_features: every row's face descriptor (N, 128), NaN rows for no face, through the
        cache of `maskcls faces` (computed once per cascade, shared by folds and variants); else None."""
        if not cfg.model.face_features:
            return None
        key = ("descriptors", cfg.data.cache_dir, cfg.data.face_detectors)
        if key not in self._faces:
            from ..faces.features import face_descriptors, require_face_model

            require_face_model(face_setting(cfg))
            self._faces[key] = face_descriptors(self.table["path"].tolist(), cache_dir=cfg.data.cache_dir or None,
                                                cascade=cfg.data.face_detectors, progress=progress)
        return self._faces[key]

    def datasets(self, cfg, fold: int | None, *, progress: bool = True) -> tuple[PhotoDataset, PhotoDataset]:
        """(training, validation) datasets for ``fold`` with the config's crop, augmentation and size.
        With ``data.cache`` they index the shared decoded (and cropped) arrays; nothing is decoded twice.
        With model.face_features the samples carry the face descriptor too; model.name=face-descriptor
        decodes no photo at all."""
        train_idx, val_idx = self.split(fold)
        descriptors = self.face_descriptors(cfg, progress=progress)
        if cfg.model.name == FACE_MODEL:
            def bare(idx: np.ndarray) -> PhotoDataset:
                return PhotoDataset([self.table["path"].iloc[i] for i in idx], self.targets[idx], None,
                                    faces=descriptors[idx], images=False)

            return bare(train_idx), bare(val_idx)
        faces = self.face_boxes(cfg, progress=progress)
        boxes = faces.table if faces else None
        train_tf = train_transform(cfg.data.augment, cfg.size, crop=cfg.data.crop, boxes=boxes, detector=faces)
        val_tf = eval_transform(cfg.size, cfg.data.crop, boxes=boxes, detector=faces)
        cache = None
        key = preprocess_key(cfg)
        if cfg.data.cache == "ram":
            cache = self.store.arrays(val_tf.preprocess, key, progress=progress)
        elif cfg.data.cache == "disk":
            if key not in self._disk:
                disk = DiskCache(cfg.data.cache_dir or default_cache_dir())
                self._disk[key] = disk.rows(self.table["path"].tolist(), val_tf.preprocess, key, progress=progress)
            cache = self._disk[key]
        elif cfg.data.cache != "none":
            raise unknown_choice("data.cache", cfg.data.cache)
        paths = self.table["path"].tolist()

        def subset(idx: np.ndarray, transform) -> PhotoDataset:
            return PhotoDataset([paths[i] for i in idx], self.targets[idx], transform,
                                cache=None if cache is None else cache[idx],
                                faces=None if descriptors is None else descriptors[idx])

        return subset(train_idx, train_tf), subset(val_idx, val_tf)


def preprocess_key(cfg) -> tuple:
    """The settings that shape a preprocessed photo (size, crop, face margin and detectors): the photo
    caches' key. No crop is None, as in the caches written before data.crop, so those stay valid."""
    crop = None if cfg.data.crop == "none" else cfg.data.crop
    if crop == "face":
        return cfg.size, crop, cfg.data.face_margin, cfg.data.face_detectors
    return cfg.size, crop, None


def prepare_key(cfg) -> dict:
    """The settings that decide what ``prepare`` builds: corrections, cut-offs, folds and their seed."""
    return {"data.corrections": cfg.data.corrections, "data.age_young": cfg.data.age_young,
            "data.age_old": cfg.data.age_old, "data.score_age_young": cfg.data.score_age_young,
            "data.score_age_old": cfg.data.score_age_old, "data.folds": cfg.data.folds,
            "data.split_seed": cfg.data.split_seed, "data.allow_outside": cfg.data.allow_outside,
            "data.face_groups": cfg.data.face_groups}


def prepare(cfg, data: str | Path | pd.DataFrame, *, store: PhotoStore | None = None,
            log: Callable[[str], None] = print, folds: bool = True) -> Prepared:
    """Scan DATA, apply ``data.corrections``, derive the age groups with the config's cut-offs and
    assign ``data.folds`` person-level folds with ``data.split_seed``.

    ``store`` lets several preparations of the same photos (e.g. different corrections) share one
    set of decoded images. ``folds=False`` puts every photo in fold 0 and draws nothing: scoring all
    of DATA needs no split, and data too small to split can still be scored.
    """
    table, report = load_table(data, cutoffs=cfg.cutoffs, corrections=cfg.data.corrections,
                               allow_outside=cfg.data.allow_outside)
    if cfg.data.corrections != "none":  # each change, as `validate --corrections` lists them
        log(report.summary())
        for line in report.lines():
            log(f"  {line}")
    known = targets(table) >= 0
    if not known.any():
        raise UserError(f"{describe(data)}: no photo has a mask, gender or age label; training needs at least one")
    # The folds are drawn from the labels as recorded, grouped with the scoring cut-offs: label
    # corrections and training cut-offs then never move a person to another fold, so variants that
    # differ only in them (an ablation) are compared on the same people.
    if not folds:
        fold_of = np.zeros(len(table), dtype=int)
    else:
        recorded = table
        if cfg.data.corrections != "none" or cfg.cutoffs != cfg.score_cutoffs:
            recorded, _ = load_table(data, cutoffs=cfg.score_cutoffs, corrections="none",
                                     allow_outside=cfg.data.allow_outside)
        groups, grouped = _face_groups(cfg, recorded, log)
        fold_of = splits.assign_folds(recorded, k=cfg.data.folds, seed=cfg.data.split_seed, groups=groups)
    if store is None or store.paths != table["path"].tolist():
        store = PhotoStore(table["path"].tolist())
    prepared = Prepared(describe(data), table, report, fold_of, prepare_key(cfg), store)
    prepared.face_grouped = grouped if folds else {}
    return prepared


def _face_groups(cfg, table: pd.DataFrame, log: Callable[[str], None]) -> tuple[np.ndarray | None, dict]:
    """data.face_groups: the identity groups of the cached faces (faces.checks; nothing is computed
    here), so one person filed under two ids never sits on both sides of a split. (None, {}) when off,
    when the cache holds none of these photos, or when no two ids share a face."""
    if not cfg.data.face_groups:
        return None, {}
    from ..faces.checks import checks_or_note

    checks = checks_or_note(table, cache_dir=cfg.data.cache_dir or None, cascade=cfg.data.face_detectors,
                            note=lambda line: log(f"folds: {line}; ids are not grouped by face"))
    if checks is None or checks.matches.empty:
        return None, {}
    grouped = {"ids": checks.grouped_ids, "groups": checks.n_groups}
    log(f"folds: {grouped['ids']} person ids whose faces match another id's are kept together in "
        f"{grouped['groups']} group(s) (data.face_groups; the pairs: `maskcls validate`)")
    return checks.groups, grouped
