"""The face model's second opinion as a pure function: out-of-fold, pooled per person, silent where no
face was found; and the blend rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from maskcls.audit.signals import BLENDS, blend, blend_weight, face_opinion, face_view, prob_columns, tempering
from maskcls import labels


def _table(n_people: int = 40, photos: int = 3, seed: int = 0):
    """A table whose descriptors encode each person's TRUE gender; person 0's gender is recorded wrong."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n_people)
    rows, vecs = [], []
    for p in range(n_people):
        centre = rng.normal(size=128) * 0.05
        for k in range(photos):
            v = centre + rng.normal(size=128) * 0.01
            v[:4] += 0.4 if truth[p] else -0.4
            vecs.append(v)
            rows.append({"path": f"p{p}_{k}.jpg", "person": f"p{p:02d}", "image": f"m{k}",
                         "gender": float(1 - truth[p] if p == 0 else truth[p]), "mask": float(k % 3),
                         "age_group": np.nan})
    table = pd.DataFrame(rows)
    folds = (np.arange(len(table)) // photos) % 4  # person-level folds
    return table, np.array(vecs, np.float32), truth, folds


def test_out_of_fold_and_pooled_per_person():
    table, d, truth, folds = _table()
    d[5] = np.nan  # one photo of person 1 without a face: it still gets its person's opinion
    op = face_opinion(table, folds, d)
    g = op[prob_columns(labels.task("gender"))].to_numpy()
    # person 0 is recorded wrong, yet the model fitted without them reads their true gender
    assert g[0:3, truth[0]].min() > 0.75
    # the photos of one person share one opinion
    assert np.allclose(g[3], g[5]) and np.allclose(g[3], g[4])
    # age: no labels at all -> no opinion anywhere
    assert op[prob_columns(labels.task("age"))].isna().all().all()
    # the mask is per photo: a photo without a face has no mask opinion
    m = op[prob_columns(labels.task("mask"))]
    assert m.iloc[5].isna().all() and not m.drop(index=5).isna().any().any()


def test_too_few_faces_give_no_opinion():
    table, d, _, folds = _table(n_people=8)
    op = face_opinion(table, folds, d)  # 6 people to fit per fold: below MIN_FIT
    assert op[prob_columns(labels.task("gender"))].isna().all().all()


def test_blend_is_linear_and_tempered_shrinks_toward_uniform():
    oof = pd.DataFrame({"path": ["a", "b"], "p_gender_0": [0.9, 0.2], "p_gender_1": [0.1, 0.8],
                        "hflip_gender_0": [0.7, 0.4], "hflip_gender_1": [0.3, 0.6]})
    face = pd.DataFrame({"path": ["a"], "p_face_gender_0": [0.1], "p_face_gender_1": [0.9]})
    out = blend(oof, face, {"gender": 0.75})
    assert out["p_gender_0"].tolist() == pytest.approx([0.25 * 0.9 + 0.75 * 0.1, 0.2])  # b has no face
    assert out["hflip_gender_0"].tolist() == pytest.approx([0.25 * 0.7 + 0.75 * 0.1, 0.4])
    t = blend(oof, face, {"gender": 0.5}, {"gender": (0.5, 1.0)})
    # networks shrunk by quality 0.5 on every photo, the face (quality 1) unchanged
    assert t["p_gender_0"].tolist() == pytest.approx([0.5 * (0.5 * 0.9 + 0.25) + 0.5 * 0.1, 0.5 * 0.2 + 0.25])
    assert tempering("tempered", {"gender": 0.5, "mask": 0.7}, {"gender": 1.0}) == {"gender": (0.5, 1.0)}
    assert tempering("tempered", {"gender": float("nan")}, {"gender": 1.0}) == {"gender": (0.0, 1.0)}
    assert tempering("quality", {"gender": 0.5}, {"gender": 1.0}) is None
    assert oof["p_gender_0"].tolist() == [0.9, 0.2]  # the input is not changed


def test_blend_weights():
    assert blend_weight("quality", "gender", 0.2, 0.6) == pytest.approx(0.75)
    assert blend_weight("quality", "gender", -0.1, 0.6) == 1.0  # a source below chance counts 0
    assert blend_weight("mean", "gender", 0.2, 0.6) == 0.5
    assert blend_weight("face", "gender", 0.2, 0.6) == 1.0 and blend_weight("cnn", "gender", 0.2, 0.6) == 0.0
    assert blend_weight("quality", "gender", 0.2, None) == 0.0  # no face opinion, no weight
    with pytest.raises(ValueError, match="unknown blend"):
        blend_weight("max", "gender", 0.2, 0.6)
    assert blend_weight("odds", "gender", 0.5, 0.8) == pytest.approx(4 / (4 + 1))  # odds 4 against 1
    assert set(BLENDS) == {"quality", "odds", "tempered", "mean", "face", "cnn"}


def test_face_view_keeps_only_photos_with_an_opinion():
    oof = pd.DataFrame({"path": ["a", "b"], "person": ["x", "y"], "image": ["m", "n"], "gender": [0, 1],
                        "p_gender_0": [0.9, 0.2], "p_gender_1": [0.1, 0.8], "hflip_gender_0": [0.5, 0.5],
                        "hflip_gender_1": [0.5, 0.5]})
    face = pd.DataFrame({"path": ["a", "b"], "p_face_gender_0": [0.3, np.nan], "p_face_gender_1": [0.7, np.nan]})
    view = face_view(oof, face, "gender")
    assert view["path"].tolist() == ["a"] and view["p_gender_1"].tolist() == [0.7]
    assert not any(c.startswith("hflip_") for c in view.columns)
