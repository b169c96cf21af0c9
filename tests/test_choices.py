"""Choices declared with their setting: check() enforces each declared choice and range, and every
factory builds each declared name and refuses any other (no silent stand-in)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskcls import config as config_mod
from maskcls.config import Config, check, choices_of, load_config
from maskcls.errors import UserError
from maskcls.training import loaders, losses, optim, runtime
from maskcls.training.model import MaskNet

CPU = torch.device("cpu")
TARGETS = np.array([[0, 1, 2], [1, 0, 0], [2, 1, 1], [0, 0, 2]])  # (N, tasks): mask, gender, age


def _declared_choices() -> dict[str, tuple[str, ...]]:
    return {key: choices_of(key) for key, *_ in config_mod.describe_settings(Config()) if choices_of(key)}


def test_choices_are_declared_on_their_fields():
    declared = _declared_choices()
    assert declared["train.optimizer"] == ("adamw", "sgd") and declared["model.heads"] == ("multi", "single")
    assert {"train.loss", "train.schedule", "train.amp", "train.sampler", "train.device", "data.cache"} <= set(declared)
    assert not hasattr(config_mod, "CHOICES")  # one home: the field, not a table beside it
    assert choices_of("train.epochs") == () and choices_of("no.such") == ()


@pytest.mark.parametrize("key", sorted(_declared_choices()))
def test_check_enforces_every_declared_choice(key):
    section, name = key.split(".")
    for good in choices_of(key):
        cfg = Config()
        setattr(getattr(cfg, section), name, good)
        check(cfg)
    cfg = Config()
    setattr(getattr(cfg, section), name, "bogus")  # set in Python, past --set's parsing: check() still sees it
    with pytest.raises(UserError, match=f"config {key}: 'bogus' is not one of {', '.join(choices_of(key))}"):
        check(cfg)
    with pytest.raises(UserError, match=f"config {key}: 'bogus' is not one of"):
        load_config(None, [f"{key}=bogus"])


def test_check_enforces_declared_ranges_once():
    for key, value, message in (("data.face_margin", 5.0, "must be >= 0 and <= 3"),
                                ("train.epochs", 0, "must be >= 1"), ("train.lr", 0.0, "must be > 0"),
                                ("train.batch_size", -2, "must be >= 1")):
        section, name = key.split(".")
        cfg = Config()
        setattr(getattr(cfg, section), name, value)
        with pytest.raises(UserError, match=f"config {key}: .* is out of range; it {message}"):
            check(cfg)


def _cfg(**changes) -> Config:
    """The demo config with settings changed in Python, unchecked: what a factory may be handed."""
    cfg = load_config("demo")
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


def _model(heads: str = "multi") -> MaskNet:
    return MaskNet(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()),
                   4, heads, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_optimizer_and_schedule_factories_build_each_name_and_refuse_others():
    model = _model()
    kinds = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    for name in choices_of("train.optimizer"):
        assert isinstance(optim.build_optimizer(model, _cfg(train__optimizer=name)), kinds[name])
    with pytest.raises(UserError, match="config train.optimizer: 'adam' is not one of adamw, sgd"):
        optim.build_optimizer(model, _cfg(train__optimizer="adam"))
    opt = optim.build_optimizer(model, _cfg())
    factors = {}
    for name in choices_of("train.schedule"):
        sched = optim.build_scheduler(opt, _cfg(train__schedule=name, train__epochs=4), steps_per_epoch=5)
        factors[name] = sched.lr_lambdas[0](19)
    assert factors["constant"] == 1.0 and factors["cosine"] < 0.5
    with pytest.raises(UserError, match="config train.schedule: 'linear' is not one of cosine, constant"):
        optim.build_scheduler(opt, _cfg(train__schedule="linear"), steps_per_epoch=5)


def test_amp_factory_builds_each_name_and_refuses_others():
    for name in choices_of("train.amp"):
        runtime.resolve_amp(name, CPU)
    assert runtime.resolve_amp("bf16", CPU) is torch.bfloat16 and runtime.resolve_amp("fp16", CPU) is torch.float16
    with pytest.raises(UserError, match="config train.amp: 'fp8' is not one of"):
        runtime.resolve_amp("fp8", CPU)
    with pytest.raises(UserError, match="device must be auto, cpu or cuda, got 'gpu'"):
        runtime.resolve_device("gpu")


def test_loss_and_head_factories_build_each_name_and_refuse_others():
    gammas = {name: losses.build_loss(_cfg(train__loss=name, train__focal_gamma=2.0), TARGETS, CPU).gamma
              for name in choices_of("train.loss")}
    assert gammas == {"ce": 0.0, "focal": 2.0}
    with pytest.raises(UserError, match="config train.loss: 'mse' is not one of ce, focal"):
        losses.build_loss(_cfg(train__loss="mse"), TARGETS, CPU)
    for heads in choices_of("model.heads"):
        assert losses.head_targets(torch.as_tensor(TARGETS), heads)
    with pytest.raises(UserError, match="config model.heads: 'triple' is not one of multi, single"):
        losses.head_targets(torch.as_tensor(TARGETS), "triple")


def test_loader_factory_builds_each_sampler_and_refuses_others():
    ds = torch.utils.data.TensorDataset(torch.zeros(4, 3), torch.as_tensor(TARGETS))
    ds.targets = torch.as_tensor(TARGETS)
    for name in choices_of("train.sampler"):
        loaders.make_loader(ds, batch_size=2, workers=0, device=CPU, train=True, sampler=name)
    with pytest.raises(UserError, match="config train.sampler: 'balanced' is not one of none, weighted"):
        loaders.make_loader(ds, batch_size=2, workers=0, device=CPU, train=True, sampler="balanced")


def test_photo_cache_factory_refuses_a_name_it_does_not_know(synth_root, tmp_path):
    from maskcls.data.prepare import prepare

    cfg = load_config("demo", ["data.size=32x40", "data.augment=none", "data.corrections=none",
                               f"data.cache_dir={tmp_path}"])
    prepared = prepare(cfg, synth_root, log=lambda s: None)
    for name in choices_of("data.cache"):
        cfg.data.cache = name
        prepared.datasets(cfg, 0, progress=False)
    cfg.data.cache = "ssd"
    with pytest.raises(UserError, match="config data.cache: 'ssd' is not one of none, ram, disk"):
        prepared.datasets(cfg, 0, progress=False)


def test_each_engine_choice_is_one_table_that_config_and_the_factories_read():
    """choices.py declares each name once with its help; config's choices and help come from it, and each
    factory's table has the same names (a name added in one place only fails here)."""
    from maskcls import choices
    from maskcls.training import optim

    tables = {"model.heads": choices.HEADS, "train.optimizer": choices.OPTIMIZERS, "train.schedule": choices.SCHEDULES,
              "train.loss": choices.LOSSES, "train.sampler": choices.SAMPLERS, "train.amp": choices.AMPS,
              "data.cache": choices.CACHES}
    helps = {key: text for key, _, text, *_ in config_mod.describe_settings(Config())}
    for key, table in tables.items():
        assert choices_of(key) == tuple(table), key
        assert all(f"{name}: {text}" in helps[key] for name, text in table.items()), key
    assert set(optim._OPTIMIZERS) == set(choices.OPTIMIZERS) and set(optim._SCHEDULES) == set(choices.SCHEDULES)
    from maskcls.training.model import head_sizes

    # every declared kind builds its heads from the one home of their sizes (labels.HEAD_SIZES)
    assert {h: sum(head_sizes(h).values()) for h in choices.HEADS} == {"multi": 3 + 2 + 3, "single": 18}
    assert losses.head_size("class") == 18 and losses.head_size("gender") == 2
