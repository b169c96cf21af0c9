"""The training-margin recorder (Area Under the Margin) on hand-made logits: no training needed."""

import numpy as np
import pytest
import torch

from maskcls import labels
from maskcls.training.margins import MARGIN_COLUMNS, Indexed, MarginTracker, margins


def _outputs(gender_logits, batch: int = 2) -> dict[str, torch.Tensor]:
    return {"mask": torch.zeros(batch, 3), "gender": torch.tensor(gender_logits, dtype=torch.float32),
            "age": torch.zeros(batch, 3)}


def test_margin_is_p_given_minus_best_other_and_nan_when_unknown():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    m = margins(p, torch.tensor([0, 1, -1]))
    assert m[0].item() == pytest.approx(0.5) and m[1].item() == pytest.approx(-0.5) and torch.isnan(m[2])


def test_tracker_averages_over_the_epochs_each_photo_was_seen():
    tracker = MarginTracker(3)
    targets = torch.tensor([[0, 1, 0], [0, 0, -1]])  # photo rows 2 and 0; the second's age unknown
    big = np.log(9.0)  # softmax -> 0.9 / 0.1: margin +-0.8
    tracker.update(_outputs([[0.0, big], [0.0, big]]), targets, torch.tensor([2, 0]))  # epoch 1
    tracker.update(_outputs([[big, 0.0]], batch=1), targets[1:], torch.tensor([0]))  # epoch 2: photo 0 only
    frame = tracker.frame(["a", "b", "c"])
    assert list(frame.columns) == ["path", *MARGIN_COLUMNS, "epochs"]
    g = frame.set_index("path")["margin_gender"]
    assert g["c"] == pytest.approx(0.8)  # labelled female, read female
    assert g["a"] == pytest.approx(0.0)  # -0.8 then +0.8
    assert np.isnan(g["b"]) and frame.set_index("path")["epochs"].tolist() == [2, 0, 1]
    assert np.isnan(frame.set_index("path").loc["a", "margin_age"])  # unknown age never counted
    again = MarginTracker(3)
    again.load_state_dict(tracker.state_dict())  # resume carries the sums
    assert again.frame(["a", "b", "c"]).equals(frame)


def test_single_head_margins_use_the_task_marginals():
    logits = torch.full((1, labels.NUM_CLASSES), -20.0)
    logits[0, labels.encode(2, 1, 0)] = 20.0  # normal / female / young, certain
    tracker = MarginTracker(1)
    tracker.update({"class": logits}, torch.tensor([[2, 1, 0]]), torch.tensor([0]))
    assert tracker.frame(["x"])[MARGIN_COLUMNS].to_numpy() == pytest.approx(np.ones((1, 3)), abs=1e-4)


def test_indexed_dataset_adds_the_row_index():
    class Two(torch.utils.data.Dataset):
        targets = torch.zeros(2, 3)

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.zeros(1), self.targets[i]

    ds = Indexed(Two())
    assert len(ds) == 2 and ds[1][2] == 1 and ds.targets is Two.targets
