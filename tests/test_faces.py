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


def portraits(folder: Path, n: int, astronaut: np.ndarray, *, step: int = 1) -> Path:
    """A manifest of ``n`` distinct copies of the portrait (shifted by ``step`` pixels each), one person each."""
    rows = ["path,person_id,mask,gender,age"]
    for i in range(n):
        save(folder / f"p{i}.jpg", np.roll(astronaut, step * i, axis=1))
        rows.append(f"p{i}.jpg,p{i},normal,female,38")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.csv"


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
    # a photo that is gone is named in failed and counts neither as computed nor as cached
    e = save(data / "e.jpg", astronaut[::-1].copy())
    gone = compute_faces([data / "nowhere.jpg", e], cache_dir=cache_dir, workers=0, progress=False)
    assert (gone.cached, gone.computed) == (0, 1) and list(gone.failed) == [str(data / "nowhere.jpg")]


def test_worker_processes_give_the_same_faces(tmp_path, astronaut):
    paths = [save(tmp_path / "p" / f"{i}.jpg", np.roll(astronaut, 3 * i, axis=1)) for i in range(16)]
    one = compute_faces(paths, cache_dir=tmp_path / "c1", workers=0, progress=False)
    two = compute_faces(paths, cache_dir=tmp_path / "c2", workers=2, progress=False)
    np.testing.assert_allclose(one.descriptors, two.descriptors, atol=1e-5)
    assert one.table["detector"].tolist() == two.table["detector"].tolist()


def test_a_killed_run_resumes_from_what_it_committed(tmp_path, astronaut):
    """kill -9 mid-run: the cache file stays readable, its committed faces are reused, the rest computed."""
    photos = tmp_path / "data"
    manifest = portraits(photos, 80, astronaut)
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "MASKCLS_CACHE": str(cache_dir)}
    cmd = [sys.executable, "-m", "maskcls", "faces", str(manifest), "--workers", "0", "-q"]
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
    # a photo that does not decode: named in one line, exit 2, and every other photo is computed and cached
    (photos / "c.jpg").write_bytes(b"not a photo")
    save(photos / "d.jpg", astronaut[:, ::-1].copy())
    (photos / "m2.csv").write_text("path,person_id,mask,gender,age\na.jpg,a,normal,female,38\nc.jpg,c,,female,\n"
                                   "d.jpg,d,normal,female,38\n")
    assert main(["faces", str(photos / "m2.csv"), "--workers", "0", "-q"]) == 2
    captured = capsys.readouterr()
    assert "c.jpg: photo does not decode" in captured.err and "1 photo(s) could not be read" in captured.err
    assert "2 of 3 photos have a face" in captured.out and "1 from the cache, 1 computed" in captured.out
    assert "no face in 0" in captured.out  # the photo that could not be read is counted apart
    # the cache folder is a file: one line
    (tmp_path / "afile").write_text("x")
    assert main(["faces", str(photos / "m.csv"), "--set", f"data.cache_dir={tmp_path / 'afile'}"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    # a setting faces does not take is refused, naming the ones it does
    assert main(["faces", str(photos / "m.csv"), "--set", "data.age_old=50"]) == 2
    assert "takes only data.face_detectors" in capsys.readouterr().err


def test_a_damaged_cache_is_one_line_and_lookups_go_on_without_it(tmp_path, astronaut, capsys):
    """Garbage written into the middle of the cache file: faces says so in one line (exit 2); validate and
    summary, which only look faces up, say the identity checks were skipped and finish."""
    photos = tmp_path / "data"
    manifest = portraits(photos, 40, astronaut, step=2)
    cache = tmp_path / "cache"
    assert main(["faces", str(manifest), "--workers", "0", "-q", "--set", f"data.cache_dir={cache}"]) == 0
    capsys.readouterr()
    with FaceCache(cache) as c:  # fold the WAL into the main file, so the damage below hits the records
        c._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = cache / CACHE_NAME
    data = bytearray(db.read_bytes())
    assert len(data) > 12000
    data[4096:len(data) - 100] = np.random.default_rng(0).integers(0, 256, len(data) - 4196, dtype=np.uint8).tobytes()
    db.write_bytes(bytes(data))
    assert main(["faces", str(manifest), "--workers", "0", "-q", "--set", f"data.cache_dir={cache}"]) == 2
    err = capsys.readouterr().err
    assert "the face cache is damaged" in err and "move it away" in err and "Traceback" not in err
    assert main(["validate", str(manifest), "--no-decode", "--set", f"data.cache_dir={cache}"]) == 0
    out = capsys.readouterr().out
    assert "identity checks skipped" in out and "damaged" in out
    assert main(["summary", str(manifest), "--set", f"data.cache_dir={cache}"]) == 0
    err = capsys.readouterr().err
    assert "identity checks skipped" in err and "identity: identity" not in err
    # the EDA page says why its identity section is empty (not "no faces cached")
    assert main(["eda", str(manifest), "--out", str(tmp_path / "eda"), "-q", "--set", f"data.cache_dir={cache}"]) == 0
    page = (tmp_path / "eda" / "report.html").read_text()
    assert "identity checks skipped" in page and "damaged" in page and "No faces cached" not in page


def _marked(mark: str) -> list[int]:
    """Live processes whose environment carries ``mark``."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if mark.encode() in (proc / "environ").read_bytes():
                    out.append(int(proc.name))
            except OSError:
                pass
    return out


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux) to find the workers")
def test_workers_leave_when_their_parent_is_killed(tmp_path, astronaut):
    """kill -9 of `maskcls faces` must not leave its worker processes waiting for ever."""
    import uuid

    photos = tmp_path / "data"
    manifest = portraits(photos, 120, astronaut)
    mark = f"MASKCLS_TEST_MARK={uuid.uuid4().hex}"
    env = {**os.environ, "MASKCLS_CACHE": str(tmp_path / "cache"), mark.split("=")[0]: mark.split("=")[1]}
    proc = subprocess.Popen([sys.executable, "-m", "maskcls", "faces", str(manifest), "--workers", "2",
                             "-q"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(_marked(mark)) < 3 and proc.poll() is None:
        time.sleep(0.2)  # the parent and its two workers are up
    time.sleep(2)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and _marked(mark):
        time.sleep(0.2)
    left = _marked(mark)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} worker process(es) outlived their killed parent"
