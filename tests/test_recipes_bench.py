"""benchmarks/_recipes.py's scoring (the real-photo recipe table): each column reads its own part and
task, and a paired delta of a table with itself is exactly zero."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
_recipes = pytest.importorskip("_recipes")


def oof(n_fm: int = 12, n_uk: int = 18, *, wrong_mask: int = 0, wrong_age: int = 0) -> pd.DataFrame:
    """A fake out-of-fold table: masked-face rows (mask + gender) and UTKFace rows (gender + age), each
    answered right except ``wrong_mask`` masked rows' mask and ``wrong_age`` UTKFace rows' age."""
    rows = []
    for i in range(n_fm + n_uk):
        fm = i < n_fm
        mask, gender, age = (i % 3, i % 2, None) if fm else (2, i % 2, i % 3)
        p = {f"p_mask_{k}": float(k == mask) for k in range(3)}
        if fm and i < wrong_mask:
            p = {f"p_mask_{k}": float(k == (mask + 1) % 3) for k in range(3)}
        p.update({f"p_gender_{k}": float(k == gender) for k in range(2)})
        answered_age = age if age is not None else 0
        if not fm and i - n_fm < wrong_age:
            answered_age = (age + 1) % 3
        p.update({f"p_age_{k}": float(k == answered_age) for k in range(3)})
        rows.append({"path": f"/d/{'facemask' if fm else 'utkface'}/{i}.jpg", "person": f"p{i}", "mask": mask,
                     "gender": gender, "age_group": age, **p})
    return pd.DataFrame(rows)


def test_each_column_scores_its_own_part_and_task():
    perfect = _recipes.scores(oof())
    assert all(v == pytest.approx(1.0) for v in perfect.values()), perfect
    masks_wrong = _recipes.scores(oof(wrong_mask=6))
    assert masks_wrong["mask F1 (masked)"] < 0.7 and masks_wrong["age F1 (UTKFace)"] == pytest.approx(1.0)
    ages_wrong = _recipes.scores(oof(wrong_age=9))
    assert ages_wrong["age F1 (UTKFace)"] < 0.7 and ages_wrong["mask F1 (masked)"] == pytest.approx(1.0)
    assert ages_wrong["macro F1, 6 classes (UTKFace)"] < 0.7 and ages_wrong["gender F1 (UTKFace)"] == pytest.approx(1.0)


def test_paired_deltas_of_a_table_with_itself_are_zero_and_a_better_one_is_positive():
    base = oof(wrong_age=9)
    same = _recipes.paired_intervals([base], [base], draws=50)
    assert all(v == (0.0, 0.0, 0.0) for v in same.values())
    better = _recipes.paired_intervals([base], [oof()], draws=50)
    point, low, high = better["age F1 (UTKFace)"]
    assert point > 0.3 and low > 0 and high >= point >= low
