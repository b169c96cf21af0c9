import hashlib

import pandas as pd
import pytest

from maskcls import labels
from maskcls.data import corrections
from maskcls.data import table as data
from maskcls.data.synth import make_dataset, person_id, train_people
from maskcls.errors import UserError


def digest(root):
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_layout_truth_and_noise(synth_root):
    table, _ = data.load_table(synth_root)
    assert len(table) == 24 * 7 and table.person.nunique() == 24
    assert set(table["label"]) == set(range(18)), "all 18 classes must be present"
    info = pd.read_csv(synth_root / "eval" / "info.csv")
    assert len(info) == 28 and (info.ans == 0).all()
    assert info.ImageID.str.fullmatch(r"[0-9a-f]{40}\.jpg").all()
    truth = pd.read_csv(synth_root / "truth" / "train_truth.csv", dtype={"person": str})
    noise = pd.read_csv(synth_root / "truth" / "injected_noise.csv")
    assert len(noise) == round(0.1 * 24) and set(noise.field) == {"gender", "mask"}
    merged = table.merge(truth, on=["person", "image"], suffixes=("", "_true"))
    assert len(merged) == len(table)
    wrong = merged[(merged["gender"] != merged["gender_true"]) | (merged["mask"] != merged["mask_true"])]
    # Exactly the planted errors differ from the truth: 7 photos per gender swap, 2 per mask swap.
    expected = 7 * (noise.field == "gender").sum() + 2 * (noise.field == "mask").sum()
    assert len(wrong) == expected
    assert set(wrong.person) == set(noise.person)
    eval_truth = pd.read_csv(synth_root / "truth" / "eval_truth.csv")
    assert eval_truth.ImageID.tolist() == info.ImageID.tolist()
    groups = (eval_truth.age >= 30).astype(int) + (eval_truth.age >= 60).astype(int)
    assert (eval_truth.label == labels.encode(eval_truth["mask"], eval_truth.gender, groups)).all()


def test_people_have_the_real_imbalance():
    import numpy as np
    from maskcls.data.synth import sample_people
    people = sample_people(3000, np.random.default_rng(0))
    ages = np.array([p.age for p in people])
    assert abs(np.mean([p.gender for p in people]) - 0.6) < 0.03
    assert abs((ages == 60).mean() - 0.07) < 0.015 and ages.min() >= 18 and ages.max() == 60


def test_same_seed_same_bytes(tmp_path):
    make_dataset(tmp_path / "a", people=6, eval_people=1, noise=0.2, seed=5, size=(32, 40), workers=1)
    make_dataset(tmp_path / "b", people=6, eval_people=1, noise=0.2, seed=5, size=(32, 40), workers=2)
    make_dataset(tmp_path / "c", people=6, eval_people=1, noise=0.2, seed=6, size=(32, 40), workers=1)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_default_size_is_the_competition_size(tmp_path):
    import cv2
    make_dataset(tmp_path / "d", people=1, eval_people=0, noise=0, seed=0, workers=1)
    photo = next((tmp_path / "d" / "train" / "images").rglob("mask1.*"))
    assert cv2.imread(str(photo)).shape == (512, 384, 3)


def test_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="holds files"):
        make_dataset(tmp_path / "x", people=2, eval_people=0)
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["keep.txt"]


def test_ids_can_never_be_real_ones(synth_root):
    """Real ids are 000001-006959; synthetic ones carry a letter but still parse from the folder name."""
    train = pd.read_csv(synth_root / "train" / "train.csv", dtype=str)
    assert train.id.str.fullmatch(r"s\d{6}").all() and train.id.is_unique
    assert [data.parse_folder_name(f)[0] for f in train.path] == train.id.tolist()
    table, _ = data.load_table(synth_root)
    assert set(table.person_id) == set(train.id) and set(table.person) == set(train.path)
    truth = pd.read_csv(synth_root / "truth" / "train_truth.csv", dtype=str)
    noise = pd.read_csv(synth_root / "truth" / "injected_noise.csv", dtype=str)
    assert set(truth.person) == set(train.path) and set(noise.person) <= set(train.path)


def test_known_corrections_change_nothing_on_synthetic_data(synth_root):
    """The shipped list names real ids: on synthetic data every correction must find nobody."""
    known = corrections.read(corrections.resolve("known"))
    scanned = data.scan(synth_root).table
    fixed, report = corrections.apply(scanned, known)
    assert not report.changes and not report.skipped
    assert len(report.unmatched) == len(known)
    pd.testing.assert_frame_equal(fixed, scanned)
    table, report = data.load_table(synth_root, corrections="known")
    raw, _ = data.load_table(synth_root)
    assert not report.changes and len(report.unmatched) == len(known)
    pd.testing.assert_frame_equal(table, raw)


def test_truth_corrections_restore_the_true_labels(tmp_path):
    out = tmp_path / "noisy"
    make_dataset(out, people=30, eval_people=0, noise=0.2, seed=1, size=(48, 64), workers=1)
    noise = pd.read_csv(out / "truth" / "injected_noise.csv", dtype=str)
    fixes = pd.read_csv(out / "truth" / "corrections.csv", dtype=str, keep_default_na=False)
    assert list(fixes.columns) == ["person_id", "field", "image", "from", "to", "agreement", "note"]
    assert len(fixes) == len(noise) == 6 and set(noise.field) == {"gender", "mask"}
    assert fixes.person_id.tolist() == noise.person.tolist()  # folder names
    gender = fixes[fixes.field == "gender"]
    assert (gender.image == "*").all() and (gender["from"] != gender["to"]).all()
    assert set(gender["from"]) | set(gender["to"]) <= {"male", "female"}
    for folder, recorded in zip(gender.person_id, gender["from"]):  # from = what the folder name records
        assert data.parse_folder_name(folder)[1] == labels.parse_gender(recorded)
    mask = fixes[fixes.field == "mask"]
    assert (mask.image == "incorrect_mask+normal").all() and (mask["to"] == "swap").all()
    assert (mask["from"] == "incorrect").all()
    assert len(corrections.read(out / "truth" / "corrections.csv")) == len(fixes)

    table, report = data.load_table(out, corrections=out / "truth" / "corrections.csv")
    assert not report.unmatched and not report.skipped
    per_row = {"gender": 7, "age": 7, "mask": 2}  # a person's 7 photos, or the two swapped ones
    assert len(report.changes) == sum(per_row[f] for f in noise.field)
    truth = pd.read_csv(out / "truth" / "train_truth.csv", dtype={"person": str})
    merged = table.merge(truth, on=["person", "image"], suffixes=("", "_true"))
    assert len(merged) == len(table) == 30 * 7
    for col in ("mask", "gender", "age"):
        assert (merged[col].astype(int) == merged[f"{col}_true"]).all(), col
    assert (merged["label"].astype(int) == merged["label_true"]).all()

    # Value corrections are guarded by from: applied again to the fixed table they change nothing.
    again = [c for c in corrections.read(out / "truth" / "corrections.csv") if c.to != "swap"]
    _, report = corrections.apply(table, again)
    assert not report.changes and len(report.skipped) == 7 * len(again)


def test_train_people_are_the_people_make_dataset_draws(synth_root):
    """The benchmark explains its misses from these hidden traits: they must be the dataset's own people."""
    people, _ = train_people(24, seed=3)  # synth_root's people and seed
    truth = pd.read_csv(synth_root / "truth" / "train_truth.csv", dtype={"person": str})
    true_gender = truth.groupby(truth["person"].str.split("_").str[0])["gender"].first()
    true_age = truth.groupby(truth["person"].str.split("_").str[0])["age"].first()
    assert [true_gender[person_id(p.index)] for p in people] == [p.gender for p in people]
    assert [true_age[person_id(p.index)] for p in people] == [p.age for p in people]

