"""The face model on a real public-domain portrait (scikit-image's astronaut, Eileen Collins, NASA):
detection, alignment, descriptor, the cache by photo content, resuming after kill -9, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskcls.cli import main
from maskcls.faces.cache import CACHE_NAME, FaceCache
from maskcls.faces.compute import compute_faces
from maskcls.faces.describe import SAME_PERSON_DISTANCE, describe
from maskcls.faces.detect import check_cascade, detect

pytest.importorskip("dlib")
skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """The astronaut's head and shoulders, 384x512 like a competition photo (RGB)."""
    img = skdata.astronaut()  # 512x512, the face near (180..275, 80..175)
    crop = img[20:420, 80:380]
    return cv2.resize(crop, (384, 512), interpolation=cv2.INTER_AREA)


def save(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def covered(rgb: np.ndarray) -> np.ndarray:
    """The whole head blacked out: no detector may find a face."""
    out = rgb.copy()
    out[:, :] = 0
    return out


def test_detect_and_describe_the_astronaut(astronaut):
    face = detect(astronaut, ("hog",))
    assert face is not None and face.detector == "hog" and face.score > 0
    # the face lies in the upper middle of the portrait
    cx, cy = face.x + face.w / 2, face.y + face.h / 2
    assert 100 < cx < 300 and 80 < cy < 320 and 60 < face.w < 300
    points, vector = describe(astronaut, face)
    assert points.shape == (5, 2) and vector.shape == (128,) and np.isfinite(vector).all()
    assert 0.2 < np.linalg.norm(vector) < 3
    # every landmark inside the face box (grown a little)
    assert ((points[:, 0] > face.x - 20) & (points[:, 0] < face.x + face.w + 20)).all()


def test_same_person_mirrored_and_scaled_is_within_the_threshold(astronaut):
    base = describe(astronaut, detect(astronaut))[1]
    flipped = astronaut[:, ::-1].copy()
    small = cv2.resize(astronaut, (288, 384), interpolation=cv2.INTER_AREA)
    for other in (flipped, small):
        d = float(np.linalg.norm(describe(other, detect(other))[1] - base))
        assert d < SAME_PERSON_DISTANCE / 2, d


def test_no_face_in_a_blank_photo(astronaut):
    assert detect(covered(astronaut), ("hog", "haar")) is None


def test_cascade_names_are_checked():
    assert check_cascade("hog+haar") == ("hog", "haar")
    with pytest.raises(ValueError, match="unknown face detector"):
        check_cascade("hog+retina")
    with pytest.raises(ValueError, match="twice"):
        check_cascade("hog+hog")


def test_compute_caches_by_content_and_computes_only_new_photos(tmp_path, astronaut):
    data = tmp_path / "photos"
    a = save(data / "a.jpg", astronaut)
    b = save(data / "b.png", covered(astronaut))
    cache_dir = tmp_path / "cache"
    before = sorted(p.name for p in data.iterdir())
    first = compute_faces([a, b], cache_dir=cache_dir, workers=0, progress=False)
    assert first.computed == 2 and first.cached == 0
    assert first.table["detector"].tolist()[0] in ("hog", "haar") and first.table["detector"].isna().tolist() == [False, True]
    assert np.isfinite(first.descriptors[0]).all() and np.isnan(first.descriptors[1]).all()
    assert (cache_dir / CACHE_NAME).is_file()
    assert sorted(p.name for p in data.iterdir()) == before  # nothing written into the data folder
    # the same content under another name is found in the cache; a new photo alone is computed
    c = data / "copy-of-a.jpg"
    c.write_bytes(a.read_bytes())
    d = save(data / "d.jpg", astronaut[:, ::-1].copy())
    again = compute_faces([a, b, c, d], cache_dir=cache_dir, workers=0, progress=False)
    assert (again.cached, again.computed) == (3, 1)
    np.testing.assert_array_equal(again.descriptors[2], first.descriptors[0])
    # another cascade is another key: "no face" from hog+haar is not reused for hog+haar+cnn
    longer = compute_faces([b], cache_dir=cache_dir, cascade="hog+haar+cnn", workers=0, progress=False)
    assert longer.computed == 1


def test_worker_processes_give_the_same_faces(tmp_path, astronaut):
    paths = [save(tmp_path / "p" / f"{i}.jpg", np.roll(astronaut, 3 * i, axis=1)) for i in range(16)]
    one = compute_faces(paths, cache_dir=tmp_path / "c1", workers=0, progress=False)
    two = compute_faces(paths, cache_dir=tmp_path / "c2", workers=2, progress=False)
    np.testing.assert_allclose(one.descriptors, two.descriptors, atol=1e-5)
    assert one.table["detector"].tolist() == two.table["detector"].tolist()


def test_a_killed_run_resumes_from_what_it_committed(tmp_path, astronaut):
    """kill -9 mid-run: the cache file stays readable, its committed faces are reused, the rest computed."""
    photos = tmp_path / "data"
    rows = ["path,person_id,mask,gender,age"]
    for i in range(80):
        save(photos / f"p{i}.jpg", np.roll(astronaut, i, axis=1))
        rows.append(f"p{i}.jpg,p{i},normal,female,38")
    (photos / "manifest.csv").write_text("\n".join(rows) + "\n")
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "MASKCLS_CACHE": str(cache_dir)}
    cmd = [sys.executable, "-m", "maskcls", "faces", str(photos / "manifest.csv"), "--workers", "0", "-q"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = cache_dir / CACHE_NAME
    deadline = time.time() + 120
    committed = 0
    while time.time() < deadline and proc.poll() is None:
        if db.is_file():
            try:
                with sqlite3.connect(db, timeout=5) as con:
                    committed = con.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
            except sqlite3.OperationalError:
                committed = 0
            if committed >= 16:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; give it more photos"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["cached"] >= committed >= 16 and info["cached"] + info["computed"] == 80
    assert info["found"] == 80
    with FaceCache(cache_dir) as cache:
        assert cache.count() == 80


def test_cli_faces_line_and_errors(tmp_path, astronaut, capsys, monkeypatch):
    photos = tmp_path / "data"
    save(photos / "a.jpg", astronaut)
    save(photos / "b.jpg", covered(astronaut))
    (photos / "m.csv").write_text("path,person_id,mask,gender,age\na.jpg,a,normal,female,38\nb.jpg,b,,female,\n")
    monkeypatch.setenv("MASKCLS_CACHE", str(tmp_path / "cache"))
    assert main(["faces", str(photos / "m.csv"), "--workers", "0", "-q"]) == 0
    line = capsys.readouterr().out
    assert "faces: 1 of 2 photos have a face" in line and "2 computed" in line and str(tmp_path / "cache") in line
    # an unknown detector is one line, exit 2
    assert main(["faces", str(photos / "m.csv"), "--set", "data.face_detectors=hog+retina"]) == 2
    assert "unknown face detector(s) retina" in capsys.readouterr().err
    # a photo that does not decode: one line naming it; the faces before it stay cached
    (photos / "c.jpg").write_bytes(b"not a photo")
    (photos / "m2.csv").write_text("path,person_id,mask,gender,age\na.jpg,a,normal,female,38\nc.jpg,c,,female,\n")
    assert main(["faces", str(photos / "m2.csv"), "--workers", "0", "-q"]) == 2
    assert "c.jpg" in capsys.readouterr().err
