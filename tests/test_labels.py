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
