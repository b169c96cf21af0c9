"""One meaning per option across commands: the default config rule, --folds, ensembles, --device,
--workers, settings as flags or --set keys. Handlers are stubbed: what each command hands the library
is what is tested."""

import re

import pytest

from maskcls import cli
from maskcls.cli import main
from maskcls.config import DEFAULT_CONFIG_RULE, default_config_name, load_config

COMMANDS = cli.build_parser()._subparsers._group_actions[0].choices


def _help(command: str) -> str:
    return re.sub(r"\s+", " ", COMMANDS[command].format_help())


def test_every_config_option_states_the_one_default_rule():
    with_config = [name for name, p in COMMANDS.items() if any("--config" in a.option_strings for a in p._actions)]
    assert {"train", "audit", "ablate", "bench", "augment-preview", "config"} <= set(with_config)
    for name in with_config:
        assert DEFAULT_CONFIG_RULE in _help(name), name
        action = next(a for a in COMMANDS[name]._actions if "--config" in a.option_strings)
        assert action.default is None, name  # resolved by default_config_name(), never a per-command name


def test_every_command_that_runs_a_model_takes_device_and_one_workers_default():
    for name in ("train", "evaluate", "predict", "classify", "audit", "ablate", "bench", "demo"):
        options = {o for a in COMMANDS[name]._actions for o in a.option_strings}
        assert "--device" in options, name
    for name, p in COMMANDS.items():
        for action in p._actions:
            if "--workers" in action.option_strings:
                assert action.default is None and "at most 8" in action.help, name


def test_ensembles_are_run_and_add_run_everywhere():
    for name in ("evaluate", "predict", "classify"):
        assert "--add-run" in {o for a in COMMANDS[name]._actions for o in a.option_strings}, name


@pytest.fixture
def captured(monkeypatch):
    seen = {}

    def fake_train(cfg, data, out, **kwargs):
        seen["cfg"] = cfg
        return {}

    import maskcls.training.fit as fit
    monkeypatch.setattr(fit, "train", fake_train)
    return seen


def test_train_takes_device_workers_and_the_age_flags_as_its_settings(captured, tmp_path, capsys):
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "r"), "--config", "demo", "--device", "cpu",
                 "--workers", "0", "--age-old", "58", "--allow-outside"]) == 0
    cfg = captured["cfg"]
    assert (cfg.train.device, cfg.data.workers, cfg.data.age_old, cfg.data.allow_outside) == ("cpu", 0, 58, True)
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("config: demo --set") and "--set train.device=cpu" in first and "device cpu" in first


def test_train_without_config_uses_the_machines_default_and_says_so(captured, tmp_path, capsys):
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "r")]) == 0
    assert captured["cfg"].model.name == load_config(default_config_name()).model.name
    assert capsys.readouterr().out.splitlines()[0].startswith(f"config: {default_config_name()} (no --config")


def test_folds_means_k_folds_in_audit_and_ablate(monkeypatch, tmp_path, capsys):
    import maskcls.audit.run as audit_run
    import maskcls.experiments.ablate as ab
    import pandas as pd

    seen = {}
    monkeypatch.setattr(audit_run, "audit", lambda data, out, **kw: seen.update(audit=kw))

    def fake_ablate(data, out, variants, **kw):
        seen["ablate"] = kw
        (tmp_path / "abl").mkdir(exist_ok=True)
        (tmp_path / "abl" / "table.md").write_text("")
        return pd.DataFrame({"status": ["ok"]})

    monkeypatch.setattr(ab, "ablate", fake_ablate)
    assert main(["audit", str(tmp_path), "--out", str(tmp_path / "a"), "--folds", "3", "--config", "demo"]) == 0
    assert seen["audit"]["folds"] == 3
    assert main(["audit", str(tmp_path), "--out", str(tmp_path / "a"), "--config", "demo"]) == 0
    assert seen["audit"]["folds"] == load_config("demo").data.folds
    assert main(["ablate", str(tmp_path), "--out", str(tmp_path / "abl"), "--variants", "hflip", "--folds", "3",
                 "--config", "demo"]) == 0
    assert "data.folds=3" in seen["ablate"]["overrides"] and seen["ablate"]["folds"] is None
    assert main(["ablate", str(tmp_path), "--out", str(tmp_path / "abl"), "--variants", "hflip", "--run-folds", "1",
                 "--config", "demo"]) == 0
    assert seen["ablate"]["folds"] == 1
    assert capsys.readouterr().out.splitlines()[0].startswith("config: demo")


def test_eda_takes_the_age_and_path_settings_as_flags_or_set_keys(monkeypatch, tmp_path, capsys):
    import maskcls.reports.eda as eda

    seen = []
    monkeypatch.setattr(eda, "make_report", lambda data, out, **kw: seen.append(kw) or {})
    assert main(["eda", str(tmp_path), "--out", str(tmp_path / "e"), "--age-old", "58", "--allow-outside"]) == 0
    assert main(["eda", str(tmp_path), "--out", str(tmp_path / "e"), "--set", "data.age_old=58",
                 "--set", "data.allow_outside=true"]) == 0
    assert seen[0]["cutoffs"] == seen[1]["cutoffs"] and seen[0]["cutoffs"].old == 58
    assert seen[0]["allow_outside"] is seen[1]["allow_outside"] is True
    assert main(["eda", str(tmp_path), "--out", str(tmp_path / "e"), "--set", "train.epochs=3"]) == 2
    assert "takes only" in capsys.readouterr().err


def test_summary_honours_the_path_setting_it_accepts(monkeypatch, tmp_path):
    import maskcls.data.table as table_mod

    seen = []

    def fake_load_table(data, **kw):
        seen.append(kw)
        raise table_mod.UserError("stop here")  # what was asked of the reader is what is tested

    monkeypatch.setattr(table_mod, "load_table", fake_load_table)
    assert main(["summary", str(tmp_path), "--set", "data.allow_outside=true", "--set", "data.age_old=58"]) == 2
    assert seen[0]["allow_outside"] is True and seen[0]["cutoffs"].old == 58


def test_inference_commands_share_the_workers_default(monkeypatch, tmp_path):
    import maskcls.serve.predict as predict
    from maskcls.config import default_workers

    seen = {}
    monkeypatch.setattr(predict, "evaluate_run", lambda run, data, **kw: seen.update(run=run, **kw) or {})
    assert main(["evaluate", "r1", str(tmp_path), "--add-run", "r2"]) == 0
    assert seen["workers"] == default_workers() and seen["run"] == ["r1", "r2"]
