"""Recipe levers: weight averaging (EMA, SWA), mixup/cutmix on the multi-head model, the automatic
augmentation presets and the learning-rate range test."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from maskcls import cli
from maskcls.config import describe_settings, load_config
from maskcls.data.transforms import Transform, eval_transform, parse_augment, train_transform
from maskcls.errors import UserError
from maskcls.training import losses
from maskcls.training.fit import train
from maskcls.training.lr_find import smooth, suggest_lr
from maskcls.training.mixing import Mixer, build_mixer
from maskcls.training.runs import load_checkpoint

from conftest import TINY, tiny_config

NEW = ("train.ema", "train.mixup", "train.cutmix", "train.mix_switch", "train.mix_prob", "train.swa")


# --------------------------------------------------------------------------- settings and bad input


def test_new_settings_have_help():
    helps = {k: h for k, _, h in describe_settings(load_config())}
    assert all(len(helps[k]) > 20 for k in NEW)


@pytest.mark.parametrize("override, words", [
    ("train.ema=1.0", "train.ema"), ("train.ema=-0.1", "train.ema"), ("train.ema=1.5", "train.ema"),
    ("train.swa=13", "after epoch 13"), ("train.mixup=-1", "train.mixup"), ("train.mix_switch=1.5", "mix_switch"),
    ("train.mix_prob=-0.2", "mix_prob"),
])
def test_bad_settings_are_one_line_errors(override, words):
    with pytest.raises(UserError) as err:
        load_config("default", [override])  # default: train.epochs=12
    assert words in str(err.value) and "\n" not in str(err.value)


def test_ema_and_swa_together_are_refused():
    with pytest.raises(UserError, match="choose one"):
        load_config("default", ["train.ema=0.999", "train.swa=10"])


# --------------------------------------------------------------------------- mixup / cutmix


def _batch(n=6):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 8, 8).clone() * 10
    targets = torch.tensor([[0, 0, 0], [1, 1, 1], [2, 0, 2], [0, 1, -1], [1, 0, 0], [2, 1, 1]])[:n]
    return images, targets


def test_mixup_mixes_every_head_with_one_lambda_and_one_partner():
    mixer = build_mixer(tiny_config("train.mixup=1.0"))
    assert mixer is not None and build_mixer(tiny_config()) is None
    mixer.set_epoch_seed(5)
    images, targets = _batch()
    mixed, soft = mixer(images, targets)
    n = len(images)
    lam = float((mixed[0, 0, 0, 0] - 10 * (n - 1)) / (0 - 10 * (n - 1)))  # photo 0 = lam * p0 + (1 - lam) * p5
    assert 0 < lam < 1
    partner = torch.arange(n - 1, -1, -1)  # timm mixes each photo with the batch reversed
    expected_images = lam * images.float() + (1 - lam) * images[partner].float()
    assert torch.allclose(mixed, expected_images, atol=1e-4)
    for j, (name, k) in enumerate((("mask", 3), ("gender", 2), ("age", 3))):
        t = targets[:, j]
        onehot = F.one_hot(t.clamp(min=0), k).float() * (t >= 0).float()[:, None]
        assert torch.allclose(soft[name], lam * onehot + (1 - lam) * onehot[partner], atol=1e-5), name
    # an unknown age (-1) contributes nothing: its row carries only the partner's share
    assert soft["age"][3].sum() == pytest.approx(1 - lam, abs=1e-5)


def test_mixing_is_a_function_of_the_epoch_seed_and_leaves_numpy_alone():
    mixer = build_mixer(tiny_config("train.mixup=0.4", "train.cutmix=1.0"))
    outs = []
    for _ in range(2):
        mixer.set_epoch_seed(7)
        np.random.seed(123)
        outs.append(mixer(*_batch())[0])
        assert np.random.rand() == np.random.RandomState(123).rand()  # the global stream was not consumed
    assert torch.equal(outs[0], outs[1])


def test_cutmix_pastes_a_box_and_mixes_labels_by_its_area():
    mixer = build_mixer(tiny_config("train.cutmix=1.0"))
    for seed in range(20):
        mixer.set_epoch_seed(seed)
        images, targets = _batch()
        mixed, soft = mixer(images, targets)
        from_partner = (mixed[0, 0] == images[5, 0, 0, 0]).float().mean().item()
        assert set(mixed.unique().tolist()) <= set(images.float().unique().tolist())  # pasted, never blended
        assert soft["mask"][0].tolist() == pytest.approx([1 - from_partner, 0, from_partner], abs=1e-5)


@pytest.mark.parametrize("switch, blended", [(0.0, True), (1.0, False)])
def test_switch_probability_picks_mixup_or_cutmix(switch, blended):
    mixer = build_mixer(tiny_config("train.mixup=1.0", "train.cutmix=1.0", f"train.mix_switch={switch}"))
    originals = set(_batch()[0].float().unique().tolist())
    kinds = []
    for seed in range(10):
        mixer.set_epoch_seed(seed)
        mixed, _ = mixer(*_batch())
        kinds.append(not set(mixed.unique().tolist()) <= originals)
    assert all(k == blended for k in kinds)


def test_mix_probability_zero_leaves_batches_alone():
    mixer = build_mixer(tiny_config("train.mixup=1.0", "train.mix_prob=0"))
    images, targets = _batch()
    mixed, soft = mixer(images, targets)
    assert torch.equal(mixed, images.float())
    assert torch.equal(soft["gender"], F.one_hot(targets[:, 1], 2).float())


def test_odd_batch_mixes_all_but_the_last_photo():
    mixer = build_mixer(tiny_config("train.mixup=1.0"))
    images, targets = _batch(5)
    mixed, soft = mixer(images, targets)
    assert torch.equal(mixed[4], images[4].float()) and not torch.equal(mixed[0], images[0].float())


def test_single_head_mixes_the_18_class_label():
    mixer = build_mixer(tiny_config("train.mixup=1.0", "model.heads=single"))
    mixed, soft = mixer(*_batch())
    assert set(soft) == {"class"} and soft["class"].shape == (6, 18)
    assert soft["class"][3].sum() < 1  # photo 3 lacks an age: no 18-class label, only its partner's share


def test_mixer_refuses_a_model_with_other_heads():
    with pytest.raises(UserError, match="heads"):
        Mixer(heads="multi", mixup=1.0).check_heads(["class"])
    with pytest.raises(UserError, match="heads"):
        Mixer(heads="single", cutmix=1.0).check_heads(["mask", "gender", "age"])
    Mixer(heads="multi", mixup=1.0).check_heads(["age", "gender", "mask"])


def test_soft_loss_keeps_class_weights_smoothing_and_focal():
    torch.manual_seed(0)
    logits = torch.randn(6, 3)
    t = torch.tensor([0, 1, 2, 0, -1, 2])
    w = torch.tensor([1.0, 3.0, 0.5])
    onehot = F.one_hot(t.clamp(min=0), 3).float() * (t >= 0).float()[:, None]
    for kw in ({}, {"weight": w}, {"weight": w, "smoothing": 0.1}, {"weight": w, "smoothing": 0.1, "gamma": 2.0}):
        assert losses.soft_cross_entropy(logits, onehot, **kw) == pytest.approx(
            losses.masked_cross_entropy(logits, t, **kw).item(), rel=1e-5)
    # mixed labels: each part weighted by its own class's weight
    lam = 0.7
    a, b = torch.tensor([0]), torch.tensor([1])
    q = lam * F.one_hot(a, 3).float() + (1 - lam) * F.one_hot(b, 3).float()
    ce = [F.cross_entropy(logits[:1], c, label_smoothing=0.1) for c in (a, b)]
    expected = (lam * w[0] * ce[0] + (1 - lam) * w[1] * ce[1]) / (lam * w[0] + (1 - lam) * w[1])
    assert losses.soft_cross_entropy(logits[:1], q, weight=w, smoothing=0.1) == pytest.approx(expected.item(), rel=1e-5)
    weighted = losses.build_loss(tiny_config("train.mixup=1"), np.array([[0, 0, 0]] * 5 + [[1, 1, 1]]), torch.device("cpu"))
    plain = losses.build_loss(tiny_config("train.mixup=1", "train.class_weights=false"), np.array([[0, 0, 0]] * 5 + [[1, 1, 1]]),
                              torch.device("cpu"))
    outputs = {"mask": torch.randn(2, 3), "gender": torch.randn(2, 2), "age": torch.randn(2, 3)}
    soft = {"mask": torch.tensor([[0.6, 0.4, 0.0]] * 2), "gender": torch.tensor([[0.6, 0.4]] * 2),
            "age": torch.tensor([[0.6, 0.4, 0.0]] * 2)}
    assert weighted(outputs, soft).item() != pytest.approx(plain(outputs, soft).item(), rel=1e-3)


# --------------------------------------------------------------------------- automatic augmentation


@pytest.mark.parametrize("preset", ["trivialaugment", "randaugment"])
def test_policy_presets_compose_and_augment_reproducibly(preset):
    photo = np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8)
    assert parse_augment(f"hflip+{preset}+vflip") == ["hflip", preset, "vflip"]
    t = train_transform(f"hflip+{preset}", (48, 64))
    plain = train_transform("hflip", (48, 64))
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    outs = [t(photo, seed=s) for s in range(12)]
    assert torch.rand(1) == before  # the policy ran under its own seed: torch's stream untouched
    assert all(np.array_equal(t(photo, seed=s), o) for s, o in enumerate(outs))
    changed = sum(not np.array_equal(o, plain(photo, seed=s)) for s, o in enumerate(outs))
    assert changed >= 8  # TrivialAugment's identity op and zero strengths leave a few photos as they were
    evaluation = Transform(preset=f"hflip+{preset}", size=(48, 64), train=False)  # what validation builds
    assert np.array_equal(evaluation(photo, seed=3), eval_transform((48, 64))(photo))


# --------------------------------------------------------------------------- learning-rate range test


def test_suggest_lr_is_the_steepest_descent_before_the_minimum():
    lrs = np.logspace(-7, 1, 120)
    x = np.log10(lrs)
    loss = 2 - np.tanh(1.5 * (x + 3)) + np.where(x > -0.5, (x + 0.5) ** 2 * 3, 0)
    suggested = suggest_lr(lrs, smooth(loss, beta=0.0))
    assert 10 ** -3.3 < suggested < 10 ** -2.7
    # A descent too short for a slope: the minimum's rate / 10, but never below the rates tried
    # (a 5-step test once suggested 1e-08 from a range starting at 1e-07).
    assert suggest_lr(lrs[:5], np.array([1.0, 0.9, 5, 6, 7])) == pytest.approx(lrs[0])
    wide = np.logspace(-7, 1, 5)
    assert suggest_lr(wide, np.array([1.0, 0.9, 5, 6, 7])) == pytest.approx(wide[1] / 10)


def test_an_unstable_suggestion_is_named_and_a_clear_one_is_not():
    """lr-find's suggestion moved with --steps (0.027 at 60 steps, 0.0071 at 100): a noisy curve moves
    its steepest descent with the smoothing, and the band across smoothings says so."""
    from maskcls.training.lr_find import UNSTABLE, suggestion_band

    lrs = np.logspace(-6, 0, 100)
    x = np.log10(lrs)
    clean = 2 - np.tanh(1.5 * (x + 3))
    low, high = suggestion_band(lrs, clean)
    assert high / low < UNSTABLE and 1e-4 < low <= high < 1e-2
    lrs = np.logspace(-6, 0, 60)  # a short test: a shallow descent in step-to-step noise, then the blow-up
    x = np.log10(lrs)
    noisy = (2 - 0.5 * np.tanh(1.2 * (x + 2)) + np.random.default_rng(1).normal(0, 0.15, len(x))
             + np.where(x > -0.7, (x + 0.7) ** 2 * 4, 0))
    low, high = suggestion_band(lrs, noisy)
    assert high / low >= UNSTABLE


def test_smooth_is_debiased():
    assert smooth(np.array([2.0, 2.0, 2.0])) == pytest.approx([2.0, 2.0, 2.0])


@pytest.mark.slow
def test_lr_find_command(synth_root, tmp_path, capsys):
    args = ["-q", "lr-find", str(synth_root), "--out", str(tmp_path / "lr"), "--config", "demo", "--steps", "12",
            "--start-lr", "1e-5", "--end-lr", "1"] + [a for kv in TINY for a in ("--set", kv)]
    assert cli.main(args) == 0
    said = capsys.readouterr()
    out = said.out
    suggested = float(next(line for line in out.splitlines() if line.startswith("suggested train.lr=")).split("=")[1])
    files = {p.name for p in (tmp_path / "lr").iterdir()}
    assert files == {"lr_find.png", "lr_find.csv"}  # no checkpoints kept
    assert all(str(tmp_path / "lr" / name) in out for name in files)  # both named where they are said written
    curve = pd.read_csv(tmp_path / "lr" / "lr_find.csv")
    assert curve["lr"].iloc[0] == pytest.approx(1e-5)
    ratios = curve["lr"].values[1:] / curve["lr"].values[:-1]
    assert np.allclose(ratios, 10 ** (5 / 11))  # exponential: the same factor every step, 1e-5 -> 1 in 12 steps
    assert curve["lr"].min() <= suggested <= curve["lr"].max()
    from maskcls.training.lr_find import UNSTABLE, suggestion_band

    low, high = suggestion_band(curve["lr"].to_numpy(), curve["loss"].to_numpy())
    assert ("the suggestion is unstable" in said.err) == (high / low >= UNSTABLE), (low, high, said.err)
    assert cli.main(args) == 2  # the files are there: refused without --force
    assert "--force" in capsys.readouterr().err


def test_lr_find_refuses_an_output_inside_the_data(synth_root, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    args = ["-q", "lr-find", str(data), "--out", str(data / "LR"), "--config", "demo"] + \
        [a for kv in TINY for a in ("--set", kv)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "inside the data" in err and len(err.splitlines()) == 1
    assert not (data / "LR").exists()


def test_lr_find_on_data_smaller_than_a_batch(synth_root, tmp_path, capsys):
    args = ["-q", "lr-find", str(synth_root), "--out", str(tmp_path / "lr"), "--config", "demo",
            "--set", "train.batch_size=4096"] + [a for kv in TINY if "batch_size" not in kv for a in ("--set", kv)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "fewer than one batch" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "lr").exists()


# --------------------------------------------------------------------------- weight averaging (trains)


def _params(state: dict) -> dict:
    return {k: v for k, v in state.items() if "running" not in k and "num_batches" not in k}


@pytest.mark.slow
def test_ema_is_evaluated_saved_and_kept_across_resume(synth_root, tmp_path):
    cfg = tiny_config("train.epochs=2", "train.ema=0.9", "train.trackers=none")
    whole = train(cfg, synth_root, tmp_path / "whole", progress=False, log=lambda s: None)
    last = load_checkpoint(tmp_path / "whole" / "last.pt")
    assert whole["averaged"] == "ema: decay 0.9"
    # "model" (what validation scored and best.pt holds) is the average, not the trained weights
    assert any(not torch.equal(last["model"][k], v) for k, v in _params(last["train_model"]).items())
    train(cfg, synth_root, tmp_path / "split", progress=False, log=lambda s: None, stop_after_epoch=1)
    train(cfg, synth_root, tmp_path / "split", progress=False, log=lambda s: None, resume=True)
    resumed = load_checkpoint(tmp_path / "split" / "last.pt")
    for k, v in last["model"].items():  # the resumed average continues the first one's
        assert torch.allclose(resumed["model"][k].float(), v.float(), atol=1e-6), k


@pytest.mark.slow
def test_swa_averages_the_last_epochs_and_recomputes_batchnorm(synth_root, tmp_path):
    cfg = tiny_config("train.epochs=3", "train.swa=2", "train.trackers=none")
    run = tmp_path / "run"
    train(cfg, synth_root, run, progress=False, log=lambda s: None, stop_after_epoch=2)
    second = load_checkpoint(run / "last.pt")["model"]
    shutil.copy(run / "last.pt", tmp_path / "epoch2.pt")
    said = []
    summary = train(cfg, synth_root, run, progress=False, log=said.append, resume=True)
    resumed = next(line for line in said if line.startswith("resuming"))
    assert "best.pt becomes the SWA average of epochs 2-3 when training ends" in resumed, resumed
    # the last line names what it scored: the average, not "best epoch 3" (epoch 3's own line differs)
    assert said[-1].startswith("the SWA average of epochs 2-3 of 3, on the 6 validation people's recorded labels: macro_f1") and "best epoch" not in said[-1]
    third = load_checkpoint(run / "last.pt")["model"]
    best = load_checkpoint(run / "best.pt")
    assert summary["averaged"] == "swa: epochs 2-3" and best["swa_epochs"] == [2, 3]
    for k in _params(third):
        if third[k].is_floating_point():
            assert torch.allclose(best["model"][k], (second[k] + third[k]) / 2, atol=1e-6), k
    means = [k for k in third if k.endswith("running_mean")]
    assert means and any(not torch.allclose(best["model"][k], (second[k] + third[k]) / 2, atol=1e-4) for k in means)


@pytest.mark.slow
def test_mixup_and_cutmix_run_in_training(synth_root, tmp_path, monkeypatch):
    from timm.data.mixup import Mixup

    calls = []
    real = Mixup.__call__
    monkeypatch.setattr(Mixup, "__call__", lambda self, x, t: calls.append(len(x)) or real(self, x, t))
    summary = train(tiny_config("train.epochs=1", "train.mixup=0.4", "train.cutmix=1.0", "train.trackers=none"),
                    synth_root, tmp_path / "r", progress=False, log=lambda s: None)
    assert calls and summary["epochs"] == 1


def test_a_loss_that_never_fell_is_named(synth_root, tmp_path, capsys, monkeypatch):
    """A new user's `lr-find --steps 20` suggested the start rate (the loss never fell) with no warning."""
    from maskcls.training import lr_find as lf

    steps = 20
    rates = list(np.geomspace(1e-7, 10, steps))
    rising = list(np.linspace(2.9, 3.4, steps))  # never below its first values

    def sweep(cfg, train_ds, *, start_lr, end_lr, steps, diverge, progress):  # a curve whose loss only rose
        return rates, rising, False

    monkeypatch.setattr(lf, "_sweep", sweep)
    args = ["-q", "lr-find", str(synth_root), "--out", str(tmp_path / "lr"), "--config", "demo",
            "--steps", str(steps)] + [a for kv in TINY for a in ("--set", kv)]
    assert cli.main(args) == 0
    said = capsys.readouterr()
    assert "the loss did not fall at any rate tried" in said.err and "suggested train.lr=1e-07" in said.out
    assert lf.fell(lf.smooth(np.array(rising))) is False
    assert lf.fell(lf.smooth(np.array([3.0, 2.9, 2.5, 2.0, 1.5, 1.2, 4.0]))) is True


def test_only_a_blow_up_before_the_last_step_is_an_early_stop(synth_root):
    """The same run printed "stopped early when the loss blew up" over a curve of all its steps: the loss
    blew up at the last one."""
    from maskcls.config import load_config
    from maskcls.data.prepare import prepare
    from maskcls.training.lr_find import _sweep

    cfg = load_config("demo", TINY)
    train_ds, _ = prepare(cfg, synth_root, log=lambda s: None).datasets(cfg, cfg.data.fold, progress=False)
    lrs, _, stopped = _sweep(cfg, train_ds, start_lr=1e-3, end_lr=1e6, steps=40, diverge=1.05, progress=False)
    assert stopped and len(lrs) < 40
    # two steps, the second at a rate that blows the loss up: the blow-up is at the last step
    lrs, losses, stopped = _sweep(cfg, train_ds, start_lr=1e4, end_lr=1e5, steps=2, diverge=1.0, progress=False)
    assert len(lrs) == 2 and not (np.isfinite(losses[1]) and losses[1] <= losses[0]) and stopped is False
