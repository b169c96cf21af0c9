import re

import pandas as pd
import pytest

from conftest import write_competition
from maskcls.data import corrections
from maskcls.data import table as data
from maskcls.errors import UserError


@pytest.fixture
def people(tmp_path):
    return write_competition(tmp_path / "d", [
        ("006359", "female", 18, "006359_female_Asian_18"),
        ("000020", "male", 25, "000020_male_Asian_25"),
        ("001009", "male", 40, "001009_male_Asian_40"),
        ("001009", "male", 41, "001009_male_Asian_41"),  # one id, two folders
    ])


def write_corrections(path, body: str):
    path.write_text("person_id,field,image,from,to,agreement,note\n" + body)
    return path


def test_known_set_ships_with_the_package():
    path = corrections.resolve("known")
    rows = corrections.read(path)
    assert len(rows) == 36
    assert {c.field for c in rows} == {"gender", "mask", "age"}
    assert corrections.resolve("none") is None


def test_apply_reports_every_change(tmp_path, people):
    corr = write_corrections(tmp_path / "c.csv",
                             "006359,gender,*,female,male,widely,\n"
                             "000020,mask,incorrect_mask+normal,,swap,widely,swapped\n"
                             "001009_male_Asian_40,age,*,40,29,several,\n"
                             "999999,gender,*,,flip,,nobody\n")
    table, report = data.load_table(people, corrections=corr)
    changes = report.changes_frame()
    assert len(changes) == 7 + 2 + 7
    assert set(changes[changes.field == "gender"]["old"]) == {"female"}
    swap = changes[changes.field == "mask"].set_index("image")
    assert swap.loc["incorrect_mask", "old"] == "incorrect" and swap.loc["incorrect_mask", "new"] == "normal"
    ages = table[table.person_id == "001009"].groupby("person")["age"].first().to_dict()
    assert ages == {"001009_male_Asian_40": 29, "001009_male_Asian_41": 41}
    assert set(table[table.person == "001009_male_Asian_40"]["age_group"]) == {0}
    assert set(table[table.person == "006359_female_Asian_18"]["gender"]) == {0}
    p20 = table[table.person == "000020_male_Asian_25"].set_index("image")
    assert p20.loc["incorrect_mask", "mask"] == 2 and p20.loc["normal", "mask"] == 1
    assert p20.loc["normal", "label"] == 6
    assert report.unmatched == [f"{corr}:5: person 999999 is not in the data"]
    # The files are untouched: a table built without corrections still holds the recorded labels.
    raw, _ = data.load_table(people)
    assert set(raw[raw.person == "006359_female_Asian_18"]["gender"]) == {1}


def test_expected_value_guards_against_double_application(tmp_path, people):
    corr = write_corrections(tmp_path / "c.csv", "006359,gender,*,male,female,,\n")
    table, report = data.load_table(people, corrections=corr)
    assert not report.changes and len(report.skipped) == 7
    assert "has gender female, not male" in report.skipped[0]


def test_id_matches_every_folder_with_that_id(tmp_path, people):
    corr = write_corrections(tmp_path / "c.csv", "001009,gender,*,,flip,,\n")
    _, report = data.load_table(people, corrections=corr)
    assert {c.person for c in report.changes} == {"001009_male_Asian_40", "001009_male_Asian_41"}


@pytest.mark.parametrize("line,message", [
    ("006359,hair,*,,long,,", "unknown field 'hair'"),
    ("006359,gender,*,,maybe,,", "gender must be"),
    ("006359,mask,normal,,swap,,", "swap needs exactly two photos"),
    ("006359,age,*,,old,,", "whole number"),
])
def test_bad_lines_name_the_line(tmp_path, line, message):
    corr = write_corrections(tmp_path / "c.csv", "006359,gender,*,female,male,,\n" + line + "\n")
    with pytest.raises(UserError, match=f"c.csv:3: .*{message}"):
        corrections.read(corr)


def test_missing_corrections_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        corrections.resolve(tmp_path / "nope.csv")


def test_corrections_on_a_manifest(tmp_path):
    from conftest import write_photo
    write_photo(tmp_path / "a.jpg")
    (tmp_path / "m.csv").write_text("path,person_id,mask,gender,age\na.jpg,p1,wear,,33\n")
    corr = write_corrections(tmp_path / "c.csv", "p1,gender,*,,female,,\np1,mask,a,wear,normal,,\n")
    table, report = data.load_table(tmp_path / "m.csv", corrections=corr)
    # gender unknown -> reported, not invented; the mask of photo a is corrected.
    assert pd.isna(table.loc[0, "gender"]) and table.loc[0, "mask"] == 2
    assert len(report.changes) == 1 and "has no gender" in report.skipped[0]


def test_lines_collapse_people_not_in_the_data(tmp_path, people):
    corr = write_corrections(tmp_path / "c.csv",
                             "000020,mask,incorrect_mask+normal,,swap,widely,\n"
                             "999998,gender,*,,flip,,\n"
                             "999999,gender,*,,flip,,\n"
                             "006359,gender,*,male,female,,already fixed\n")
    _, report = data.load_table(people, corrections=corr)
    lines = report.lines()
    assert lines[:2] == ["000020_male_Asian_25 incorrect_mask: mask incorrect -> normal",
                         "000020_male_Asian_25 normal: mask normal -> incorrect"]
    unmatched = [line for line in lines if "not in the data" in line]
    assert unmatched == ["not applied: 2 correction(s) name people not in the data (list them with --verbose)"]
    # Rows left alone for another reason keep one line each.
    assert sum("has gender female, not male" in line for line in lines) == 7
    assert len(lines) == 2 + 1 + 7


def test_lines_verbose_lists_each_unmatched_correction(tmp_path, people):
    corr = write_corrections(tmp_path / "c.csv",
                             "999998,gender,*,,flip,,\n"
                             "999999,gender,*,,flip,,\n"
                             "006359,gender,*,male,female,,\n")
    _, report = data.load_table(people, corrections=corr)
    lines = report.lines(verbose=True)
    assert lines[:2] == [f"not applied: {corr}:2: person 999998 is not in the data",
                         f"not applied: {corr}:3: person 999999 is not in the data"]
    assert len(lines) == 2 + 7 and all("has gender female, not male" in line for line in lines[2:])
    assert not any("--verbose" in line for line in lines)


def test_lines_without_unmatched_corrections_has_no_count_line(tmp_path, people):
    corr = write_corrections(tmp_path / "c.csv", "006359,gender,*,female,male,,\n")
    _, report = data.load_table(people, corrections=corr)
    assert report.lines() == report.lines(verbose=True)
    assert len(report.lines()) == 7 and not any("not applied" in line for line in report.lines())


def test_a_single_photo_mask_fix_in_the_7_photo_layout_is_applied_with_a_warning(tmp_path, people, capsys):
    """The README says one photo of the competition's layout cannot be wrong alone; a correction that
    changes one anyway is applied (the user asked) but warned about, in validate and in train's log."""
    from conftest import tiny_config
    from maskcls.cli import main
    from maskcls.data.prepare import prepare

    corr = write_corrections(tmp_path / "c.csv", "000020,mask,mask1,wear,normal,,\n"
                                                 "006359,mask,incorrect_mask+normal,,swap,,\n")
    _, report = data.load_table(people, corrections=corr)
    assert len(report.warnings) == 1 and report.warnings[0].startswith(f"{corr}:2: 000020_male_Asian_25 mask1: ")
    assert "7-photo layout" in report.warnings[0] and "warning(s)" in report.summary()
    assert main(["validate", str(people), "--corrections", str(corr)]) == 0
    assert "warning: " in capsys.readouterr().out
    said: list[str] = []
    prepare(tiny_config(f"data.corrections={corr}", "data.folds=2"), people, log=said.append)
    # train's log lists each change as validate does, and the warning
    assert any("000020_male_Asian_25 mask1: mask wear -> normal" in s for s in said)
    assert any("warning:" in s and "7-photo layout" in s for s in said)
    # a swap keeps the layout: no warning for it
    assert not any("006359" in s and "warning" in s for s in said)


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_is_one_flag_of_every_command_and_train_lists_each_unmatched_correction(tmp_path, people, capsys, where):
    from conftest import TINY
    from maskcls.cli import main

    corr = write_corrections(tmp_path / "c.csv", "006359,gender,*,female,male,,\n999999,gender,*,,flip,,\n")
    flag = ["--verbose"] if where == "before" else []
    tail = ["-v"] if where == "after" else []
    sets = [a for s in [*TINY, "train.epochs=1", "data.folds=2", "train.trackers=none"] for a in ("--set", s)]
    assert main([*flag, "train", str(people), "--out", str(tmp_path / "run"), "--config", "demo", *sets,
                 "--corrections", str(corr), *tail]) == 0
    err = capsys.readouterr()
    said = err.out + err.err
    assert f"not applied: {corr}:3: person 999999 is not in the data" in said
    assert "006359_female_Asian_18 mask1: gender female -> male" in said  # each change, as validate lists them
    assert main([*flag, "validate", str(people), "--corrections", str(corr), *tail]) == 0
    assert f"{corr}:3: person 999999" in capsys.readouterr().out
    # without it: one count line
    assert main(["validate", str(people), "--corrections", str(corr)]) == 0
    out = capsys.readouterr().out
    assert "(list them with --verbose)" in out and "999999" not in out


@pytest.mark.parametrize("body, message", [
    ("006359,mask,mask1,,normal,,,extra\n", ":2: 8 fields where the header has 7"),
    ("006359,mask\n", ":2: 2 field(s); the row ends before 'image'"),
    ("006359,age,*,,200,,\n", "age must be between 1 and 129 years, got '200'"),
    ("006359,gender,*,,flip,,\n006359,gender,*,,flip,,\n", ":3: repeats the flip of line 2"),
])
def test_a_row_of_the_wrong_length_a_wrong_age_or_a_repeat_is_named_for_what_it_is(tmp_path, people, body, message):
    corr = write_corrections(tmp_path / "c.csv", body)
    with pytest.raises(UserError, match=re.escape(message)):
        corrections.read(corr)
