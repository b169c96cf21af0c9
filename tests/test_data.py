from pathlib import Path

import pandas as pd
import pytest

from conftest import write_competition, write_person, write_photo
from maskcls import labels
from maskcls.data import table as data
from maskcls.errors import UserError


def test_competition_layout_table(tmp_path):
    root = write_competition(tmp_path, [("000001", "female", 45, "000001_female_Asian_45"),
                                        ("001498-1", "male", 60, "001498-1_male_Asian_60")])
    # Extensions differ between people and hidden files are skipped.
    folder = root / "train" / "images" / "000001_female_Asian_45"
    (folder / "normal.jpg").rename(folder / "normal.png")
    (folder / "._mask1.jpg").write_bytes(b"junk")
    (folder / ".DS_Store").write_bytes(b"junk")
    table, report = data.load_table(root)
    assert list(table.columns) == list(data.TABLE_COLUMNS)
    assert len(table) == 14 and not report.changes
    first = table[table.person == "000001_female_Asian_45"].set_index("image")
    assert first.loc["normal", "path"].endswith("normal.png")
    assert first["mask"].to_dict() == labels.PHOTO_MASK
    assert set(first["gender"]) == {1} and set(first["age"]) == {45} and set(first["age_group"]) == {1}
    assert first.loc["incorrect_mask", "label"] == labels.encode(1, 1, 1)
    second = table[table.person_id == "001498-1"]
    assert set(second["age_group"]) == {2} and set(second["label"]) == {2, 8, 14}


def test_age_cutoffs_are_a_setting(tmp_path):
    root = write_competition(tmp_path, [("000002", "male", 58, "000002_male_Asian_58")])
    table, _ = data.load_table(root, cutoffs=labels.AgeCutoffs(30, 57))
    assert set(table["age_group"]) == {2}


def test_manifest_with_missing_labels(tmp_path):
    write_photo(tmp_path / "imgs" / "a.jpg")
    write_photo(tmp_path / "imgs" / "b.png")
    write_photo(tmp_path / "imgs" / "c.jpeg")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,person_id,mask,gender,age\n"
                        "imgs/a.jpg,p1,wear,female,33\n"
                        "imgs/b.png,p2,,male,\n"
                        "imgs/c.jpeg,p3,2,,61\n")
    table, _ = data.load_table(manifest)
    assert table["person"].tolist() == ["p1", "p2", "p3"]
    assert table["mask"].tolist() == [0, pd.NA, 2]
    assert table["gender"].tolist() == [1, 0, pd.NA]
    assert table["age_group"].tolist() == [1, pd.NA, 2]
    assert table["label"].tolist() == [4, pd.NA, pd.NA]
    assert table["path"].iloc[0] == str((tmp_path / "imgs" / "a.jpg").resolve())


def test_manifest_needs_only_some_label_columns(tmp_path):
    write_photo(tmp_path / "x.jpg")
    manifest = tmp_path / "mask_only.csv"
    manifest.write_text("path,person_id,mask\nx.jpg,p1,incorrect\n")
    table, _ = data.load_table(manifest)
    assert table["mask"].tolist() == [1] and table["gender"].isna().all()


def test_manifest_problems_name_the_row(tmp_path):
    write_photo(tmp_path / "a.jpg")
    write_photo(tmp_path / "b.jpg")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,person_id,mask,gender,age\na.jpg,p1,worn,female,30\nmissing.jpg,p2,wear,male,20\n"
                        "b.jpg,p3,wear,male,twenty\n")
    problems = data.scan(manifest).problems
    assert [p.where for p in problems] == [f"{manifest}:2", f"{manifest}:3", f"{manifest}:4"]
    assert "mask must be" in problems[0].message
    assert "missing.jpg not found" in problems[1].message
    assert "whole number" in problems[2].message
    with pytest.raises(UserError, match="3 problem"):
        data.load_table(manifest)


@pytest.mark.parametrize("content,message", [
    ("", "not a readable CSV"),
    ("a,b\n1,2\n", "missing column"),
])
def test_unreadable_csv_is_a_user_error(tmp_path, content, message):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "train.csv").write_text(content)
    (tmp_path / "train" / "images").mkdir()
    with pytest.raises(UserError, match=message):
        data.load_table(tmp_path)


def test_not_a_dataset(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        data.scan(tmp_path / "nope")
    with pytest.raises(UserError, match="not a dataset folder"):
        data.scan(tmp_path)


def test_competition_problems(tmp_path):
    root = write_competition(tmp_path, [("000001", "female", 45, "000001_female_Asian_45"),
                                        ("000002", "male", 20, "badname")])
    images = root / "train" / "images"
    (images / "000001_female_Asian_45" / "mask3.jpg").unlink()
    write_photo(images / "000001_female_Asian_45" / "selfie.jpg")
    write_person(images, "000009_male_Asian_30")  # not in train.csv
    with open(root / "train" / "train.csv", "a") as fh:
        fh.write("000003,male,Asian,abc,000003_male_Asian_33\n000004,male,Asian,40,000004_male_Asian_40\n")
    problems = {(Path(p.where).name, p.message.split(":")[0].split(" (")[0], p.fatal) for p in data.scan(root).problems}
    assert problems == {
        ("000001_female_Asian_45", "missing photo(s)", False),
        ("selfie.jpg", "extra file", False),
        ("badname", "folder name does not parse as <id>_<gender>_<race>_<age>", False),
        ("train.csv:4", "age must be a whole number of years, got 'abc'", True),
        ("train.csv:5", f"person folder {images / '000004_male_Asian_40'} not found", True),
        ("000009_male_Asian_30", "not listed in train.csv", False),
    }


def test_load_eval_keeps_order_and_reports_missing(tmp_path):
    ev = tmp_path / "eval"
    for name in ("b.jpg", "a.jpg"):
        write_photo(ev / "images" / name)
    (ev / "info.csv").write_text("ImageID,ans\nb.jpg,0\na.jpg,0\nzz.jpg,0\n")
    frame, problems = data.load_eval(tmp_path)
    assert frame["ImageID"].tolist() == ["b.jpg", "a.jpg", "zz.jpg"]
    assert [str(p) for p in problems] == [f"{ev / 'info.csv'}:4: image zz.jpg not found in {ev / 'images'}"]
