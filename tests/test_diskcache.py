"""The on-disk preprocessed cache: built once, reused by later runs, rebuilt only for changed photos."""

import pickle

import cv2
import numpy as np
import pytest

from maskcls.data import images
from maskcls.data.diskcache import DiskCache
from maskcls.data.transforms import Preprocess


def _photos(tmp_path, n=4):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = tmp_path / "src" / f"{i}.png"
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), rng.integers(0, 255, (64, 48, 3), dtype=np.uint8))
        paths.append(str(p))
    return paths


def test_second_use_decodes_nothing_and_a_changed_photo_is_rebuilt(tmp_path, monkeypatch):
    paths = _photos(tmp_path)
    pre = Preprocess(size=(24, 32), crop="center")
    key = ((24, 32), "center", None)
    first = DiskCache(tmp_path / "cache")
    rows = first.rows(paths, pre, key, progress=False)
    assert first.decoded == 4 and len(rows) == 4
    for i, p in enumerate(paths):
        assert np.array_equal(rows[i], pre(images.read_rgb(p), p))
    calls = []
    real = images.read_rgb
    import maskcls.data.diskcache as dc
    monkeypatch.setattr(dc, "read_rgb", lambda p: calls.append(p) or real(p))
    second = DiskCache(tmp_path / "cache")
    again = second.rows(paths, pre, key, progress=False)
    assert second.decoded == 0 and calls == []
    assert all(np.array_equal(again[i], rows[i]) for i in range(4))
    cv2.imwrite(paths[2], np.zeros((64, 48, 3), np.uint8))  # the user edits one photo
    third = DiskCache(tmp_path / "cache")
    changed = third.rows(paths, pre, key, progress=False)
    assert third.decoded == 1 and calls == [paths[2]]
    assert changed[2].max() == 0 and np.array_equal(changed[0], rows[0])
    other = DiskCache(tmp_path / "cache").rows(paths, Preprocess(size=(12, 16)), ((12, 16), None, None), progress=False)
    assert other[0].shape == (16, 12, 3)  # another setting has its own file


def test_rows_pickle_without_their_data_and_subset_lazily(tmp_path):
    paths = _photos(tmp_path)
    rows = DiskCache(tmp_path / "cache").rows(paths, Preprocess(size=(24, 32)), ("k",), progress=False)
    _ = rows[0]  # opens the memory map
    blob = pickle.dumps(rows)
    assert len(blob) < 2000  # the slots and the file name, not the photos
    sub = pickle.loads(blob)[np.array([3, 1])]
    assert np.array_equal(sub[0], rows[3]) and len(sub) == 2


@pytest.mark.slow
def test_training_reads_the_disk_cache_and_a_second_run_decodes_nothing(synth_root, tmp_path, monkeypatch):
    from maskcls.training.fit import train
    from conftest import tiny_config

    cfg = tiny_config("train.epochs=1", "train.tensorboard=false", "data.folds=3", "data.cache=disk",
                      f"data.cache_dir={tmp_path / 'cache'}")
    train(cfg, synth_root, tmp_path / "a", progress=False, log=lambda s: None)
    import maskcls.data.diskcache as dc
    monkeypatch.setattr(dc, "read_rgb", lambda p: pytest.fail("a cached photo was decoded again"))
    monkeypatch.setattr(images, "read_rgb", lambda p: pytest.fail("training decoded a photo despite the cache"))
    summary = train(cfg, synth_root, tmp_path / "b", progress=False, log=lambda s: None)
    assert 0 <= summary["macro_f1"] <= 1
