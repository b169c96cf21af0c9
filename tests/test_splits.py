import numpy as np
import pandas as pd
import pytest

from maskcls import labels
from maskcls.data import splits
from maskcls.data import table as data
from maskcls.errors import UserError
from maskcls.data.synth import sample_people


def people_table(n: int, seed: int = 0) -> pd.DataFrame:
    """A label table (no images needed) with the real imbalance: 7 photos per person."""
    rows = []
    for p in sample_people(n, np.random.default_rng(seed)):
        for stem, mask in labels.PHOTO_MASK.items():
            rows.append(("x", f"p{p.index}", f"p{p.index}", stem, mask, p.gender, p.age))
    raw = pd.DataFrame(rows, columns=["path", "person", "person_id", "image", "mask", "gender", "age"])
    return data.add_derived(raw, labels.AgeCutoffs())


def test_no_person_in_two_folds_and_shares_are_kept():
    table = people_table(600)
    folds = splits.assign_folds(table, k=5, seed=1)
    assert set(folds) == {0, 1, 2, 3, 4}
    assert (table.assign(fold=folds).groupby("person")["fold"].nunique() == 1).all()
    overall = table["label"].value_counts(normalize=True)
    for f in range(5):
        share = table[folds == f]["label"].value_counts(normalize=True).reindex(overall.index, fill_value=0)
        assert (share - overall).abs().max() < 0.03, f"fold {f} drifts from the overall class shares"
        assert abs((folds == f).mean() - 0.2) < 0.03


def test_folds_are_deterministic_by_seed():
    table = people_table(120)
    a = splits.assign_folds(table, k=5, seed=7)
    assert np.array_equal(a, splits.assign_folds(table, k=5, seed=7))
    assert not np.array_equal(a, splits.assign_folds(table, k=5, seed=8))


def test_train_val_indices_partition_people():
    table = people_table(60)
    tr, va = splits.train_val_indices(table, fold=2, k=5, seed=0)
    assert len(tr) + len(va) == len(table)
    assert not set(table.person.iloc[tr]) & set(table.person.iloc[va])


def test_partial_labels_split_too():
    table = people_table(40)
    table.loc[table.index % 3 == 0, "age_group"] = pd.NA
    table.loc[table.index % 3 == 0, "label"] = pd.NA
    folds = splits.assign_folds(table, k=4, seed=0)
    assert (folds >= 0).all()


def test_bad_fold_settings():
    table = people_table(3)
    with pytest.raises(UserError, match="cannot split 3 people into 5 folds"):
        splits.assign_folds(table, k=5)
    with pytest.raises(UserError, match="fold must be between 0 and 2"):
        splits.train_val_indices(table, fold=3, k=3)
