"""`maskcls eda` (reports.eda.make_report): exact counts on hand-made data, duplicates across people
(and not within one), manifests with missing labels, undecodable photos, the --out rules, a page
whose every image exists, and the page in headless Chromium (skipped without a browser, except
under CI, where it fails).
"""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import browser_paths, broken_images, headless_chrome
from maskcls import labels
from maskcls.errors import UserError
from maskcls.reports.eda import make_report, near_duplicate_pairs, popcount64

# (id, gender, race, age): classes and age groups below are worked out by hand from these.
PEOPLE = [("000001", "female", "Asian", 25), ("000002", "male", "Asian", 29), ("000003", "female", "White", 45),
          ("000004", "male", "Black", 58), ("000005", "female", "Asian", 60)]


def _folder(pid: str, gender: str, race: str, age: int) -> str:
    return f"{pid}_{gender}_{race}_{age}"


def _noise_photo(path: Path, rng: np.random.Generator, size: tuple[int, int] = (96, 128)) -> None:
    """A distinct random image with a photo-like spectrum (noise at several scales, coarse ones
    strongest), so that its perceptual hash survives a JPEG re-encode like a real photo's does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    img = np.zeros((h, w, 3), np.float32)
    for cells, amp in ((3, 1.0), (6, 0.6), (12, 0.35), (24, 0.2)):
        coarse = rng.normal(0, amp, (cells * h // w, cells, 3)).astype(np.float32)
        img += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    assert cv2.imwrite(str(path), img.astype(np.uint8))


def _competition(root: Path) -> Path:
    rng = np.random.default_rng(7)
    images = root / "train" / "images"
    lines = ["id,gender,race,age,path"]
    for pid, gender, race, age in PEOPLE:
        folder = _folder(pid, gender, race, age)
        lines.append(f"{pid},{gender},{race},{age},{folder}")
        for stem in labels.PHOTO_STEMS:
            _noise_photo(images / folder / f"{stem}.jpg", rng)
    (root / "train" / "train.csv").write_text("\n".join(lines) + "\n")
    f = {pid: images / _folder(pid, g, r, a) for pid, g, r, a in PEOPLE}
    # Near-duplicate across people: person 1's mask1 re-encoded (lossy) as person 3's mask2.
    pixels = cv2.imread(str(f["000001"] / "mask1.jpg"))
    assert cv2.imwrite(str(f["000003"] / "mask2.jpg"), pixels, [cv2.IMWRITE_JPEG_QUALITY, 80])
    # Exact duplicate across people: the same file for persons 2 and 4.
    shutil.copyfile(f["000002"] / "normal.jpg", f["000004"] / "normal.jpg")
    # Same person: normal; never listed.
    shutil.copyfile(f["000005"] / "mask1.jpg", f["000005"] / "mask2.jpg")
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, dict]:
    root = _competition(tmp_path_factory.mktemp("eda") / "data")
    out = root.parent / "report"
    return out, make_report(root, out, progress=False, workers=2, samples_per_class=3)


def test_counts_are_exact(report):
    out, s = report
    assert json.loads((out / "summary.json").read_text()) == s
    assert s["layout"] == "competition"
    assert (s["people"], s["photos"]) == (5, 35)
    assert s["mask"] == {"wear": 25, "incorrect": 5, "normal": 5}
    assert s["gender"] == {"male": 14, "female": 21}
    assert s["age_group"] == {"<30": 14, "30-59": 14, ">=60": 7}
    names = labels.class_names()
    # class = mask*6 + gender*3 + age group; per person 5 wear, 1 incorrect, 1 normal photo.
    expected = {name: 0 for name in names}
    for base, n in ((3, 5), (0, 5), (4, 5), (1, 5), (5, 5)):  # wear classes of persons 1..5
        expected[names[base]] = n
        expected[names[base + 6]] = 1
        expected[names[base + 12]] = 1
    assert s["class"] == expected
    imb = s["imbalance"]
    assert imb["ratio"] == 5.0 and imb["largest"] == {"class": "wear/male/<30", "photos": 5}
    assert imb["smallest"] == {"class": "incorrect/male/<30", "photos": 1}
    assert imb["empty_classes"] == 3
    assert imb["empty"] == ["wear/male/>=60", "incorrect/male/>=60", "normal/male/>=60"]
    assert "macro F1" in imb["note"] and "15/18" in imb["note"]
    ages = s["ages"]
    assert ages["histogram"] == {"25": 1, "29": 1, "45": 1, "58": 1, "60": 1}
    assert [(n["age"], n["ages"], n["below"], n["at_or_above"]) for n in ages["near_cutoffs"]] == [
        (30, [28, 31], 1, 0), (60, [58, 61], 1, 1)]
    assert ages["move_old_cutoff"] == {"to": 58, "people": 1, "photos": 7, "direction": "30-59 -> >=58",
                                       "old_group_people": [1, 2]}
    assert s["race"] == {"Asian": 3, "Black": 1, "White": 1}
    assert s["gender_by_age"]["wear"] == {"male": {"<30": 5, "30-59": 5, ">=60": 0},
                                          "female": {"<30": 5, "30-59": 5, ">=60": 5}}
    assert s["gender_by_age"]["normal"]["female"] == {"<30": 1, "30-59": 1, ">=60": 1}
    im = s["images"]
    assert im["decoded"] == 35 and im["sizes"] == {"96x128": 35} and im["formats"] == {"JPEG": 35}
    assert im["modes"] == {"RGB": 35} and im["channels"] == {"3": 35} and im["undecodable"] == []
    assert s["corrections"] is None


def test_duplicates_across_people_only(report):
    _, s = report
    d = s["duplicates"]
    pairs = {(p["a"]["person"][:6], p["a"]["image"], p["b"]["person"][:6], p["b"]["image"]): p for p in d["pairs"]}
    assert set(pairs) == {("000001", "mask1", "000003", "mask2"), ("000002", "normal", "000004", "normal")}
    assert pairs[("000002", "normal", "000004", "normal")]["exact"] is True
    assert pairs[("000002", "normal", "000004", "normal")]["distance"] == 0
    assert pairs[("000001", "mask1", "000003", "mask2")]["exact"] is False
    assert d["pairs_total"] == 2 and d["exact_pairs"] == 1
    assert sorted(tuple(p["people"]) for p in d["people_pairs"]) == [
        ("000001_female_Asian_25", "000003_female_White_45"), ("000002_male_Asian_29", "000004_male_Black_58")]


def test_page_references_only_existing_files(report):
    out, s = report
    page = (out / "report.html").read_text()
    refs = _refs(page)
    srcs = [v for k, v in refs if k == "src"]
    assert {"class_counts.png", "age_histogram.png", "mean_faces.png"} <= set(srcs)
    assert sum(v.startswith("thumbs/") for v in srcs) >= 18 + 4  # samples + the duplicate pairs
    for kind, ref in refs:
        assert "://" not in ref and not ref.startswith("/"), ref  # nothing external, nothing absolute
        if kind == "src":
            assert (out / ref).is_file(), ref
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["report.html", "summary.json", "thumbs", "class_counts.png", "age_histogram.png", "mean_faces.png"])
    assert len(list((out / "thumbs").iterdir())) == s["files"]["thumbs"]
    assert "<script" not in page
    assert "000003_female_White_45 / mask2" in page  # the near-duplicate is shown


def test_manifest_with_missing_labels_and_a_broken_photo(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("a.jpg", "b.png", "c.jpg"):
        _noise_photo(tmp_path / "faces" / name, rng)
    (tmp_path / "faces" / "broken.jpg").write_bytes(b"not an image at all")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,person_id,mask,gender,age\n"
                        "faces/a.jpg,p1,wear,,\n"
                        "faces/b.png,p2,,female,33\n"
                        "faces/c.jpg,p3,normal,male,61\n"
                        "faces/broken.jpg,p4,incorrect,female,\n")
    out = tmp_path / "out"
    s = make_report(manifest, out, progress=False, workers=2)
    assert s["layout"] == "manifest" and (s["people"], s["photos"]) == (4, 4)
    assert s["mask"] == {"wear": 1, "incorrect": 1, "normal": 1, "unknown": 1}
    assert s["gender"] == {"male": 1, "female": 2, "unknown": 1}
    assert s["age_group"] == {"<30": 0, "30-59": 1, ">=60": 1, "unknown": 2}
    assert s["class"]["normal/male/>=60"] == 1 and s["class"]["unknown"] == 3
    assert sum(s["class"].values()) == 4
    assert s["imbalance"]["empty_classes"] == 17 and s["imbalance"]["unlabelled_photos"] == 3
    assert s["race"] == {"unknown": 4}
    assert s["ages"]["people_with_age"] == 2 and s["ages"]["unknown"] == 2
    assert s["gender_by_age"]["unknown"] == {"male": {"<30": 0, "30-59": 0, ">=60": 0, "unknown": 0},
                                             "female": {"<30": 0, "30-59": 1, ">=60": 0, "unknown": 0},
                                             "unknown": {"<30": 0, "30-59": 0, ">=60": 0, "unknown": 0}}
    assert s["images"]["formats"] == {"JPEG": 2, "PNG": 1, "unreadable": 1}
    [broken] = s["images"]["undecodable"]
    assert broken["path"].endswith("broken.jpg") and broken["person"] == "p4"
    assert "does not decode" in broken["error"]
    assert s["duplicates"]["pairs_total"] == 0
    page = (out / "report.html").read_text()
    assert "broken.jpg" in page and "does not decode" in page and "unknown" in page
    assert all((out / ref).is_file() for kind, ref in _refs(page) if kind == "src")
    # no duplicates: said in words, not "0 pair(s), 0 with identical pixels, between 0 pair(s) of people"
    assert "No duplicates across people" in page and "0 pair(s)" not in page


def test_corrections_before_and_after(tmp_path):
    root = _competition(tmp_path / "data")
    fixes = tmp_path / "fixes.csv"
    fixes.write_text("person_id,field,image,from,to,agreement,note\n000002,gender,*,male,female,,looks female\n")
    s = make_report(root, tmp_path / "out", corrections=fixes, progress=False, workers=2, samples_per_class=1)
    c = s["corrections"]
    assert c["before"]["gender"] == {"male": 14, "female": 21}
    assert c["after"]["gender"] == {"male": 7, "female": 28} == s["gender"]
    assert len(c["changes"]) == 7 and {ch["new"] for ch in c["changes"]} == {"female"}
    page = (tmp_path / "out" / "report.html").read_text()
    assert 'id="corrections"' in page and "looks female" in page


def test_out_must_be_new_or_empty(tmp_path):
    root = _competition(tmp_path / "data")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match=r"holds files \(keep.txt\)"):
        make_report(root, full, progress=False)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    afile = tmp_path / "file.html"
    afile.write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        make_report(root, afile, progress=False)
    with pytest.raises(UserError, match="threshold"):
        make_report(root, tmp_path / "new", dup_threshold=40, progress=False)
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    make_report(root, empty, progress=False, samples_per_class=0)
    assert (empty / "report.html").is_file()


def test_near_duplicate_pairs_match_brute_force():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, 40, dtype=np.int64).astype(np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, (40, 3)).astype(np.uint64)
    near = base ^ flips[:, 0] ^ (flips[:, 1] * (rng.random(40) < 0.5))  # 1-2 bits away
    hashes = np.concatenate([base, near, base[:5]])
    groups = np.concatenate([np.arange(40), np.arange(40) + 100 * (rng.random(40) < 0.5), np.arange(5)])
    expected = sorted(
        (int(bin(int(hashes[i]) ^ int(hashes[j])).count("1")), i, j)
        for i in range(len(hashes)) for j in range(i + 1, len(hashes))
        if groups[i] != groups[j] and bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= 2)
    assert expected  # the test plants some
    for block in (1, 7, 1 << 22):  # blocks of one row, several rows, everything at once
        pairs, total = near_duplicate_pairs(hashes, groups, threshold=2, block_elems=block)
        assert total == len(expected)
        assert [(d, i, j) for i, j, d in pairs.tolist()] == expected
    capped, total = near_duplicate_pairs(hashes, groups, threshold=2, max_pairs=3, block_elems=50)
    assert total == len(expected) and [(d, i, j) for i, j, d in capped.tolist()] == expected[:3]


def test_popcount_without_numpy_bitwise_count(monkeypatch):
    x = np.array([0, 1, 2**64 - 1, 0xF0F0], np.uint64)
    assert popcount64(x).tolist() == [0, 1, 64, 8]
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert popcount64(x.reshape(2, 2)).tolist() == [[0, 1], [64, 8]]


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("src", "href") and value is not None:
                self.refs.append((key, value))


def _refs(page: str) -> list[tuple[str, str]]:
    parser = _Refs()
    parser.feed(page)
    return [(k, v) for k, v in parser.refs if not v.startswith(("#", "data:"))]


# --------------------------------------------------------------------------- in a real browser


def _browser_paths() -> tuple[str, str]:
    return browser_paths("EDA page")


def test_page_renders_in_chromium(report, tmp_path):
    out, _ = report
    driver = headless_chrome("EDA page", tmp_path / "profile")
    try:
        driver.get((out / "report.html").as_uri())
        # Lazy thumbnails below the fold load once scrolled to; then every image must have decoded.
        driver.execute_script("document.querySelectorAll('img').forEach(i => i.loading = 'eager')")
        broken = broken_images(driver)
        assert broken == []
        assert driver.execute_script("return document.images.length") >= 25
        assert driver.execute_script("return document.body.scrollHeight") > 1500
        sections = driver.execute_script("return [...document.querySelectorAll('section')].map(s => s.id)")
        assert sections == ["overview", "classes", "ages", "crosstabs", "images", "duplicates", "identity", "samples"]
        shot = driver.get_screenshot_as_png()
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    assert not errors, errors
    img = cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[0] >= 600 and img.shape[1] >= 800
    assert len(shot) > 20_000 and float(img.std()) > 10  # not a blank page


def test_missing_browser_skips_but_fails_under_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium"):
        _browser_paths()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI"):
        _browser_paths()
