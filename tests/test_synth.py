import hashlib

import pandas as pd
import pytest

from maskcls import data, labels
from maskcls.errors import UserError
from maskcls.synth import make_dataset


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
    from maskcls.synth import sample_people
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
    with pytest.raises(UserError, match="not empty"):
        make_dataset(tmp_path / "x", people=2, eval_people=0)
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["keep.txt"]
