"""Identity checks from face descriptors: the pure functions on made-up descriptors, and the folds,
validate, summary and the EDA page on a face cache filled by hand (no face model needed)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import write_photo
from maskcls.cli import main
from maskcls.config import load_config
from maskcls.data.prepare import prepare
from maskcls.data.splits import assign_folds
from maskcls.faces.cache import FaceCache, FaceRecord, content_key
from maskcls.faces.identity import MATCH_DISTANCE, identity_groups, matching_people, photo_mismatches


def faces_of(n_people: int, per_person: int, rng, spread: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """(persons, descriptors): one random centre per person (0.9 apart on average), photos near it."""
    centres = rng.normal(size=(n_people, 128)) * (0.9 / np.sqrt(2 * 128))
    persons = np.repeat([f"p{i:02d}" for i in range(n_people)], per_person)
    d = np.repeat(centres, per_person, axis=0) + rng.normal(size=(n_people * per_person, 128)) * spread / np.sqrt(128)
    return persons, d.astype(np.float32)


def test_a_photo_of_someone_else_is_found():
    rng = np.random.default_rng(0)
    persons, d = faces_of(6, 7, rng)
    d[3] = d[20]  # p00's 4th photo shows p02's face
    d[10] = np.nan  # a photo with no face is skipped
    found = photo_mismatches(persons, d)
    assert found["row"].tolist() == [3] and found["person"].tolist() == ["p00"] and found["others"].tolist() == [6]
    assert found["distance"].iloc[0] > 0.6


def test_two_faces_that_differ_are_both_listed():
    rng = np.random.default_rng(1)
    persons, d = faces_of(3, 2, rng)
    d[1] = d[3]  # p00's second photo is p01's face: which of p00's two is odd cannot be told
    found = photo_mismatches(persons, d)
    assert sorted(found["row"].tolist()) == [0, 1] and set(found["others"]) == {1}
    d[5] = np.nan  # one face alone is never listed
    assert set(photo_mismatches(persons, d)["person"]) == {"p00"}


def test_one_person_under_two_ids_is_matched_and_grouped():
    rng = np.random.default_rng(2)
    persons, d = faces_of(8, 7, rng)
    d[14:21] = d[0:7] + 0.01  # p02 is p00 again
    d[35:42] = d[0:7] - 0.01  # and p05 too
    pairs = matching_people(persons, d)
    assert set(map(tuple, pairs[["person_a", "person_b"]].to_numpy())) == {("p00", "p02"), ("p00", "p05"), ("p02", "p05")}
    assert (pairs["distance"] < MATCH_DISTANCE).all() and (pairs["pairs"] == 49).all()
    groups = identity_groups(persons, pairs)
    assert set(groups[persons == "p05"]) == {"p00"} and set(groups[persons == "p01"]) == {"p01"}
    # the threshold is used: a stricter one matches nothing
    assert matching_people(persons, d, threshold=0.0001).empty


def test_matching_scales_past_one_block(monkeypatch):
    import maskcls.faces.identity as identity

    monkeypatch.setattr(identity, "_BLOCK", 4)
    rng = np.random.default_rng(3)
    persons, d = faces_of(11, 1, rng)
    d[9] = d[1] + 0.001
    pairs = matching_people(persons, d)
    assert pairs[["person_a", "person_b"]].values.tolist() == [["p01", "p09"]]


def test_folds_keep_grouped_ids_together():
    rng = np.random.default_rng(4)
    table = pd.DataFrame({"person": np.repeat([f"p{i:02d}" for i in range(20)], 2), "label": 0,
                          "mask": 0, "gender": 0, "age_group": 0})
    groups = table["person"].to_numpy().copy()
    groups[table["person"].isin(["p03", "p11", "p17"])] = "p03"
    for seed in range(5):
        folds = assign_folds(table, k=4, seed=seed, groups=groups)
        assert len(set(folds[table["person"].isin(["p03", "p11", "p17"])])) == 1
    # without groups they are split apart for some seed (the test would pass vacuously otherwise)
    apart = [len(set(assign_folds(table, k=4, seed=s)[table["person"].isin(["p03", "p11", "p17"])])) for s in range(5)]
    assert max(apart) > 1
    # persons as groups: the default folds exactly
    np.testing.assert_array_equal(assign_folds(table, k=4, seed=0, groups=table["person"].to_numpy()),
                                  assign_folds(table, k=4, seed=0))


def test_masked_photos_are_left_out_of_the_identity_checks(tmp_path):
    """Masked faces look alike to an identity model: photos recorded as mask worn take no part."""
    from maskcls.faces.checks import face_checks
    from maskcls.faces.compute import Faces

    rng = np.random.default_rng(6)
    persons, d = faces_of(4, 2, rng)
    d[2:4] = d[0:2] + 0.01  # p01 looks like p00 ...
    table = pd.DataFrame({"path": [f"x{i}.jpg" for i in range(8)], "person": persons, "image": "a",
                          "mask": [0, 0, 0, 0, 2, 2, 2, 2]})  # ... but only in masked photos
    import maskcls.faces.checks as checks_mod

    faces = Faces(pd.DataFrame({"path": table["path"], "detector": "hog"}), d, np.zeros((8, 5, 2)), "hog", tmp_path)
    monkey = pytest.MonkeyPatch()
    monkey.setattr(checks_mod, "cached_faces", lambda *a, **k: faces)
    try:
        assert face_checks(table).matches.empty
        table["mask"] = 2
        assert len(face_checks(table).matches) == 1  # the same faces unmasked: matched
    finally:
        monkey.undo()


@pytest.fixture()
def twice(tmp_path):
    """A manifest of 12 people, 3 photos each, whose faces are cached by hand: s09 is s02 again, and
    s05's last photo is s07's face."""
    rng = np.random.default_rng(5)
    persons, d = faces_of(12, 3, rng)
    d[27:30] = d[6:9] + 0.01
    d[17] = d[21]
    root = tmp_path / "data"
    rows = ["path,person_id,mask,gender,age"]
    items = []
    for i, (p, vec) in enumerate(zip(persons, d)):
        path = write_photo(root / f"{p}_{i % 3}.png", colour=(7 * i) % 250 + 1)
        rows.append(f"{path.name},s{p[1:]},{['normal', 'normal', 'incorrect'][i % 3]},{['male', 'female'][i // 3 % 2]},"
                    f"{20 + i}")
        items.append((content_key(path), FaceRecord(24, 32, "hog", 1.0, (2, 2, 20, 20), np.zeros((5, 2)), vec)))
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    cache = tmp_path / "cache"
    with FaceCache(cache) as c:
        c.put(items, "hog+haar")
    return root / "manifest.csv", cache


def test_prepare_groups_ids_with_one_face(twice):
    manifest, cache = twice
    logs = []
    cfg = load_config("demo", ["data.folds=3", f"data.cache_dir={cache}"])
    prepared = prepare(cfg, manifest, log=logs.append)
    person = prepared.table["person"].astype(str)
    assert len(set(prepared.folds[person.isin(["s02", "s09"])])) == 1
    assert prepared.face_grouped == {"ids": 2, "groups": 1}
    assert any("2 person ids whose faces match" in line for line in logs)
    off = prepare(load_config("demo", ["data.folds=3", f"data.cache_dir={cache}", "data.face_groups=false"]),
                  manifest, log=logs.append)
    assert off.face_grouped == {}
    # no cache: the default folds, nothing read
    plain = prepare(load_config("demo", ["data.folds=3", f"data.cache_dir={cache.parent / 'none'}"]), manifest,
                    log=lambda s: None)
    np.testing.assert_array_equal(plain.folds, off.folds)


def test_validate_summary_and_eda_list_the_findings(twice, tmp_path, capsys):
    manifest, cache = twice
    assert main(["validate", str(manifest), "--set", f"data.cache_dir={cache}"]) == 0  # findings never fail it
    out = capsys.readouterr().out
    assert "identity: s02 and s09 have one face" in out
    assert "p05_2.png: the face is not s05's" in out
    assert "2 photo(s) unlike" not in out and "1 photo(s) unlike their person, 1 pair(s) of ids" in out
    assert main(["validate", str(manifest), "--faces", "off", "--set", f"data.cache_dir={cache}"]) == 0
    assert "identity" not in capsys.readouterr().out
    assert main(["summary", str(manifest), "--json", "--set", f"data.cache_dir={cache}"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [(m["person_a"], m["person_b"]) for m in info["identity"]["matching_ids"]] == [("s02", "s09")]
    assert [m["person"] for m in info["identity"]["mismatched_photos"]] == ["s05"]
    report = tmp_path / "eda"
    assert main(["eda", str(manifest), "--out", str(report), "--set", f"data.cache_dir={cache}", "-q"]) == 0
    page = (report / "report.html").read_text()
    assert 'id="identity"' in page and "<b>s02</b> and <b>s09</b>" in page and "(this one)" in page
    summary = json.loads((report / "summary.json").read_text())
    assert summary["identity"]["matching_ids"][0]["person_b"] == "s09"
    # every thumbnail of the identity section exists on disk
    import re

    for src in re.findall(r'src="(thumbs/[^"]+)"', page):
        assert (report / src).is_file()


def test_faces_that_all_look_alike_are_not_matched(tmp_path):
    """Drawn faces (the demo's) all lie close together for the face model: nothing is matched, the
    folds stay as they were, and the checks say why."""
    from maskcls.faces.checks import face_checks
    from maskcls.faces.compute import Faces
    import maskcls.faces.checks as checks_mod

    rng = np.random.default_rng(7)
    persons, d = faces_of(10, 2, rng, spread=0.02)
    d = d * 0.3  # every id within ~0.3 of every other: closer than one person's own photos should be
    table = pd.DataFrame({"path": [f"x{i}.jpg" for i in range(20)], "person": persons, "image": "a", "mask": 2})
    faces = Faces(pd.DataFrame({"path": table["path"], "detector": "haar"}), d, np.zeros((20, 5, 2)), "hog+haar",
                  tmp_path)
    monkey = pytest.MonkeyPatch()
    monkey.setattr(checks_mod, "cached_faces", lambda *a, **k: faces)
    try:
        checks = face_checks(table)
    finally:
        monkey.undo()
    assert checks.matches.empty and checks.mismatches.empty
    assert "cannot tell these people apart" in checks.note and any("cannot tell" in x for x in checks.lines())
    assert len(set(checks.groups)) == 10  # every person its own group: the folds are unchanged
