"""Progress in a log file is whole lines; trainings among many say which run they belong to."""

import io

import pytest

from maskcls import progress
from maskcls.progress import bar, prefixed


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_off_a_terminal_every_progress_update_is_its_own_line(monkeypatch):
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)  # every update, as 30 s apart in a long job
    log = io.StringIO()
    b = bar(range(5), desc="epoch 1/3", file=log, leave=False)
    for i in b:
        b.set_postfix(loss=f"{1 / (i + 1):.3f}")
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) >= 2 and text.endswith("\n") and all(line.startswith("epoch 1/3") for line in lines)


def test_in_a_terminal_the_bar_redraws_in_place():
    term = Terminal()
    for _ in bar(range(3), desc="x", file=term):
        pass
    assert "\r" in term.getvalue()


def test_prefixed_tags_every_line():
    seen = []
    prefixed(seen.append, "hflip seed 1 fold 0")("epoch 3/12  macro_f1 0.5")
    assert seen == ["[hflip seed 1 fold 0] epoch 3/12  macro_f1 0.5"]


def test_fold_all_trainings_tag_their_lines_with_the_fold(synth_root, tmp_path, monkeypatch):
    from maskcls.training import folds
    from conftest import tiny_config

    def fake_train(cfg, prepared, out, **kwargs):
        kwargs["log"](f"epoch 1/1  macro_f1 0.5")
        raise RuntimeError("stop")  # the tag is what is tested, not training

    monkeypatch.setattr(folds, "train", fake_train)
    lines = []
    with pytest.raises(RuntimeError):
        folds.train_folds(tiny_config("data.folds=3"), synth_root, tmp_path / "cv", progress=False, log=lines.append)
    assert "[fold 0] epoch 1/1  macro_f1 0.5" in lines


def test_in_a_terminal_the_training_bar_shows_the_running_loss_even_in_a_short_epoch(monkeypatch):
    import sys

    import torch

    from maskcls.training.loop import train_one_epoch
    from maskcls.training.losses import MultiTaskLoss
    from maskcls.training.model import build_model
    from maskcls.training.runtime import Runtime

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    model = build_model("test_resnet", "multi", "none")
    images = torch.randint(0, 256, (6, 3, 32, 24), dtype=torch.uint8)
    targets = torch.tensor([[0, 1, 2], [1, 0, 0], [2, 1, 1]] * 2)
    class Slow:  # 3 steps, fewer than log_every, slow enough for the terminal bar to redraw between them
        def __len__(self):
            return 3

        def __iter__(self):
            import time

            for i in range(3):
                time.sleep(0.25)
                yield images[2 * i:2 * i + 2], targets[2 * i:2 * i + 2]

    loader = Slow()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    runtime = Runtime.from_settings(device="cpu", amp="none", channels_last=False)
    train_one_epoch(model, loader, optimizer, scheduler, MultiTaskLoss("multi"), runtime=runtime,
                    scaler=torch.amp.GradScaler("cpu", enabled=False), log_every=20, desc="epoch 1/1")
    assert "loss=" in term.getvalue()
