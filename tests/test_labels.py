import numpy as np
import pytest

from maskcls import labels


def test_all_18_classes_round_trip():
    seen = set()
    for m in range(3):
        for g in range(2):
            for a in range(3):
                c = labels.encode(m, g, a)
                assert labels.decode(c) == (m, g, a)
                seen.add(c)
    assert seen == set(range(labels.NUM_CLASSES))
    arr = np.arange(18)
    assert np.array_equal(labels.encode(*labels.decode(arr)), arr)
    assert labels.CLASS_MASK.tolist() == [0] * 6 + [1] * 6 + [2] * 6


def test_class_names_follow_cutoffs():
    names = labels.class_names(labels.AgeCutoffs(30, 58))
    assert len(set(names)) == 18
    assert names[0] == "wear/male/<30"
    assert names[5] == "wear/female/>=58"
    assert names[16] == "normal/female/30-57"


def test_age_cutoffs():
    c = labels.AgeCutoffs()
    assert [c.group(a) for a in (18, 29, 30, 59, 60)] == [0, 0, 1, 1, 2]
    assert labels.AgeCutoffs(30, 57).groups(np.array([29, 56, 57, 60])).tolist() == [0, 1, 2, 2]
    with pytest.raises(ValueError):
        labels.AgeCutoffs(60, 30)


@pytest.mark.parametrize("value,expected", [("wear", 0), ("Incorrect", 1), ("normal", 2), ("2", 2)])
def test_parse_mask(value, expected):
    assert labels.parse_mask(value) == expected


def test_parse_rejects_bad_values():
    with pytest.raises(ValueError, match="mask must be"):
        labels.parse_mask("worn")
    with pytest.raises(ValueError, match="gender"):
        labels.parse_gender("f")
    with pytest.raises(ValueError, match="whole number"):
        labels.parse_age("45.5")


def test_reordering_the_task_list_cannot_pair_a_task_with_another_tasks_labels(monkeypatch):
    """Targets, heads, losses and metrics all follow labels.TASKS by name: reversed, every figure is unchanged."""
    import pandas as pd
    import torch

    from maskcls.data.table import add_derived, targets
    from maskcls.metrics import compute_metrics
    from maskcls.training.losses import head_targets
    from maskcls.training.model import class_log_probs, head_sizes

    rng = np.random.default_rng(0)
    raw = pd.DataFrame({"path": [f"p{i}" for i in range(60)], "person": [f"s{i // 3}" for i in range(60)],
                        "person_id": "x", "image": "mask1", "mask": rng.integers(0, 3, 60),
                        "gender": rng.integers(0, 2, 60), "age": rng.integers(18, 70, 60)})
    table = add_derived(raw, labels.AgeCutoffs())
    true = table["label"].to_numpy(dtype=int)
    pred = np.where(rng.random(60) < 0.7, true, rng.integers(0, 18, 60))
    probs = np.eye(18)[pred]
    before = compute_metrics(targets(table), probs)
    logits = {"mask": torch.randn(4, 3), "gender": torch.randn(4, 2), "age": torch.randn(4, 3)}
    combined = class_log_probs(logits)

    monkeypatch.setattr(labels, "TASKS", tuple(reversed(labels.TASKS)))
    t = targets(table)
    assert t[:, 0].tolist() == table["age_group"].tolist()  # the columns follow the list...
    assert compute_metrics(t, probs) == before  # ...and so does every figure
    heads = head_targets(torch.as_tensor(t), "multi")
    assert heads["mask"].tolist() == table["mask"].tolist() and heads["age"].tolist() == table["age_group"].tolist()
    assert list(head_sizes("multi")) == ["age", "gender", "mask"]
    assert torch.allclose(class_log_probs(logits), combined)
    single = head_targets(torch.as_tensor(t), "single")["class"]
    assert single.tolist() == true.tolist()


def test_derived_vocabulary_follows_the_task_list():
    assert labels.prob_columns()[:18] == labels.class_prob_columns() == [f"p{c}" for c in range(18)]
    assert labels.task_prob_columns("gender") == ["p_gender_0", "p_gender_1"]
    assert labels.prob_values(np.full((2, 18), 1 / 18)).shape == (2, len(labels.prob_columns()))
    assert labels.decode_answers(17) == {"mask": 2, "gender": 1, "age": 2}
    assert labels.answer_names(np.array([0, 16]), labels.AgeCutoffs(30, 58))["age"].tolist() == ["<30", "30-57"]
    arr = np.arange(18)
    assert labels.encode_targets(np.stack(labels.decode(arr), 1)).tolist() == arr.tolist()
    assert labels.by_field("age").column == "age_group" and labels.by_field("age").value_name(45) == "45"
    assert labels.by_field("gender").value_name(1) == "female"


RENAMED_WORLD = r'''
import dataclasses, json, sys
import numpy as np, pandas as pd
from maskcls import labels
# Reorder the tasks and rename one, before any other module reads the list.
labels.TASKS = tuple(dataclasses.replace(t, name="covering") if t.name == "mask" else t
                     for t in reversed(labels.TASKS))
from maskcls.audit import rank
from maskcls.data import corrections, summary
from maskcls.data.table import TABLE_COLUMNS, add_derived, targets
from maskcls.metrics import METRIC_KEYS, compute_metrics
from maskcls.figures import F1_SERIES
from maskcls.serve.predictor import answers_frame
from maskcls.training.runs import probs_frame

rng = np.random.default_rng(0)
n = 42
raw = pd.DataFrame({"path": [f"p{i}" for i in range(n)], "person": [f"s{i // 7}" for i in range(n)],
                    "person_id": "x", "image": [labels.PHOTO_STEMS[i % 7] for i in range(n)],
                    "mask": [labels.PHOTO_MASK[labels.PHOTO_STEMS[i % 7]] for i in range(n)],
                    "gender": np.repeat(rng.integers(0, 2, n // 7), 7), "age": np.repeat(rng.integers(18, 70, n // 7), 7)})
table = add_derived(raw, labels.AgeCutoffs())
probs = rng.dirichlet(np.ones(18), n)
cls = np.arange(18)
out = {
    "table_columns": list(TABLE_COLUMNS),
    "label_ok": bool((table["label"] == table["mask"] * 6 + table["gender"] * 3 + table["age_group"]).all()),
    "targets_first": targets(table)[:, 0].tolist() == table["age_group"].tolist(),
    "prob_columns": labels.prob_columns(),
    "frame_columns": list(probs_frame(table, probs).columns),
    "covering_marginals": np.allclose(probs_frame(table, probs)[labels.task_prob_columns("covering")].to_numpy(),
                                      np.stack([probs[:, cls // 6 == k].sum(1) for k in range(3)], 1), atol=1e-6),
    "answers": answers_frame(np.eye(18)[[0, 7, 17]], labels.AgeCutoffs()).iloc[:, :4].to_dict("list"),
    "metric_keys": list(METRIC_KEYS),
    "metrics_f1": compute_metrics(targets(table), np.eye(18)[table["label"].to_numpy(int)])["covering_f1"],
    "f1_series": [k for k, _ in F1_SERIES],
    "summary_keys": list(summary.summarize(table)),
    "class_names": labels.class_names()[:2],
    "rank_fields": list(rank.FIELDS), "rank_kinds": list(rank.KINDS),
    "correction_fields": list(corrections.FIELDS),
}
try:
    rank.find_issues(table[["person", "image", "mask"]], fields=["mask"])
except ValueError as exc:
    out["rank_needs"] = str(exc).split(";")[0]
oof = probs_frame(table, probs)
issues = rank.find_issues(oof)
out["issue_fields"] = sorted(set(issues["field"]))
json.dump(out, sys.stdout)
'''


def test_reordering_and_renaming_a_task_changes_every_derived_name_and_no_module(tmp_path):
    """labels.TASKS reversed, with "mask" renamed "covering": probability columns, answer frames,
    metric keys, figure series, summaries and the audit's specs all follow, while the data formats
    (table columns, corrections fields) keep their names."""
    import json
    import subprocess
    import sys

    script = tmp_path / "world.py"
    script.write_text(RENAMED_WORLD)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["table_columns"] == ["path", "person", "person_id", "image", "age", "gender", "mask", "age_group", "label"]
    assert out["label_ok"] and out["targets_first"]
    assert out["prob_columns"] == ([f"p{c}" for c in range(18)] + ["p_age_0", "p_age_1", "p_age_2", "p_gender_0",
                                                                  "p_gender_1", "p_covering_0", "p_covering_1", "p_covering_2"])
    assert out["frame_columns"][-len(out["prob_columns"]):] == out["prob_columns"]
    assert out["covering_marginals"]
    assert out["answers"] == {"class": [0, 7, 17], "age": ["<30", "30-59", ">=60"], "gender": ["male", "male", "female"],
                              "covering": ["wear", "incorrect", "normal"]}
    assert out["metric_keys"] == ["macro_f1", "accuracy", "age_f1", "gender_f1", "covering_f1"]
    assert out["metrics_f1"] == 1.0
    assert out["f1_series"] == ["macro_f1", "age_f1", "gender_f1", "covering_f1"]
    assert out["summary_keys"] == ["people", "photos", "age_group", "gender", "mask", "class"]
    assert out["class_names"] == ["<30/male/wear", "30-59/male/wear"]
    assert out["rank_fields"] == out["correction_fields"] == ["age", "gender", "mask"]
    assert out["rank_kinds"] == ["age", "gender", "mask_swap"]
    assert out["rank_needs"] == "out-of-fold table is missing column(s) p_covering_0, p_covering_1, p_covering_2"
    assert set(out["issue_fields"]) <= {"age", "gender", "mask"}
