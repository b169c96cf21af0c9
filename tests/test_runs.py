"""The run folder's readers, shared by folds, audit and serving: a run's config, the members of a
`--fold all` run and the probability tables with one NA rule."""

import numpy as np
import pandas as pd
import pytest

from maskcls.config import dump, load_config
from maskcls.errors import UserError
from maskcls.fileio import write_csv
from maskcls.training.runs import expand_runs, is_fold_parent, probs_frame, read_probs, read_run_config


def test_probability_tables_read_back_with_one_na_rule(tmp_path):
    table = pd.DataFrame({"path": ["a.jpg", "b.jpg"], "person": ["NA", "007"], "image": ["mask1", "normal"],
                          "mask": pd.array([0, None], dtype="Int64"), "gender": pd.array([1, 0], dtype="Int64"),
                          "age_group": pd.array([None, 2], dtype="Int64"), "age": pd.array([None, 61], dtype="Int64"),
                          "label": pd.array([-1, -1], dtype="Int64")})
    probs = np.full((2, 18), 1 / 18)
    write_csv(tmp_path / "val_probs.csv", probs_frame(table, probs, fold=0))
    back = read_probs(tmp_path / "val_probs.csv")
    assert back["person"].tolist() == ["NA", "007"]  # ids are text: "NA" is a person, leading zeros kept
    assert back["mask"].isna().tolist() == [False, True] and back["age"].tolist()[1] == 61
    assert str(back["mask"].dtype) == "Int64"
    write_csv(tmp_path / "again.csv", back)  # what folds writes from it: the same text
    assert (tmp_path / "again.csv").read_text() == (tmp_path / "val_probs.csv").read_text()
    with pytest.raises(UserError, match="no such probability table"):
        read_probs(tmp_path / "missing.csv")


def test_a_fold_parent_reads_as_its_folds(tmp_path):
    cfg = load_config(None, ["data.folds=3", "data.crop=center"])
    for k in (0, 1, 10):
        (tmp_path / "cv" / f"fold-{k}").mkdir(parents=True)
        (tmp_path / "cv" / f"fold-{k}" / "best.pt").write_bytes(b"")
    (tmp_path / "cv" / "fold-0" / "config.yaml").write_text(dump(cfg))
    assert is_fold_parent(tmp_path / "cv") and not is_fold_parent(tmp_path / "cv" / "fold-0")
    assert [p.name for p in expand_runs(tmp_path / "cv")] == ["fold-0", "fold-1", "fold-10"]
    assert read_run_config(tmp_path / "cv").data.crop == "center"  # a --fold all run: its fold-0's settings
    with pytest.raises(UserError, match="given twice"):
        expand_runs([tmp_path / "cv", tmp_path / "cv" / "fold-1"])
    with pytest.raises(UserError, match="config.yaml: cannot read the run's settings"):
        read_run_config(tmp_path / "cv" / "fold-1")
