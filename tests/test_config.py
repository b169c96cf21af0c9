import pytest

from maskcls.config import Config, dump, from_dict, load_config
from maskcls.errors import UserError


def test_defaults_are_the_gpu_recipe():
    cfg = load_config()
    assert (cfg.model.name, cfg.model.heads, cfg.model.weights) == ("resnet50", "multi", "imagenet")
    assert load_config("default").to_dict() == cfg.to_dict() | {"train": cfg.to_dict()["train"] | {"patience": 4}}


def test_yaml_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  name: resnet18\ntrain:\n  epochs: 3\n  lr: 1e-3\n")
    cfg = load_config(f, ["train.epochs=5", "data.mean=[0.5, 0.5, 0.5]", "train.lr=2e-4", "data.size=64x80"])
    assert cfg.model.name == "resnet18" and cfg.train.epochs == 5
    assert cfg.train.lr == pytest.approx(2e-4) and cfg.data.mean == [0.5, 0.5, 0.5]
    assert cfg.size == (64, 80)


@pytest.mark.parametrize("override,message", [
    ("train.epoch=3", "unknown config key 'train.epoch'"),
    ("epochs=3", "unknown config key 'epochs'"),
    ("train.epochs=three", "config train.epochs: expected int"),
    ("train.epochs=2.5", "config train.epochs: expected int"),
    ("train.lr=fast", "config train.lr: expected float"),
    ("model.heads=double", "not one of multi, single"),
    ("data.size=96", "WIDTHxHEIGHT"),
    ("data.mean=[1, 2]", "expected 3 numbers"),
    ("train.epochs", "expected key=value"),
    ("data.age_young=70", "young < old"),
])
def test_bad_settings_name_the_key(override, message):
    with pytest.raises(UserError, match=message):
        load_config("demo", [override])


def test_bad_yaml_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(f)
    f.write_text("model:\n  colour: red\n")
    with pytest.raises(UserError, match="unknown config key 'model.colour'"):
        load_config(f)
    with pytest.raises(UserError, match="no such file"):
        load_config(tmp_path / "missing.yaml")


def test_round_trip_through_dict_and_yaml(tmp_path):
    import yaml
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  name: resnet18\n  drop_rate: 0\n"
                 "data:\n  size: 64x80\n  pin_memory: false\n"
                 "train:\n  epochs: 3\n  lr: 1e-3\n  class_weights: true\n")
    cfg = load_config(f, ["train.epochs=4", "train.weight_decay=0", "train.loss=focal"])
    # The file's values, the --set ones over them, the rest the defaults; each coerced to its declared type.
    assert (cfg.model.name, cfg.data.size, cfg.data.pin_memory, cfg.train.class_weights) == ("resnet18", "64x80", False, True)
    assert cfg.train.epochs == 4 and type(cfg.train.epochs) is int  # --set beats the file's 3
    assert cfg.train.lr == 0.001 and type(cfg.train.lr) is float  # YAML reads 1e-3 as the string '1e-3'
    assert cfg.model.drop_rate == 0.0 and type(cfg.model.drop_rate) is float  # int 0 -> float
    assert cfg.train.weight_decay == 0.0 and type(cfg.train.weight_decay) is float
    assert cfg.train.loss == "focal" and cfg.train.batch_size == 64 and cfg.model.heads == "multi"
    assert cfg != Config()  # so the equalities below compare real settings, not two sets of defaults

    as_dict = cfg.to_dict()
    assert (as_dict["train"]["epochs"], as_dict["train"]["lr"], as_dict["model"]["name"]) == (4, 0.001, "resnet18")
    back = from_dict(as_dict)
    assert back == cfg and back is not cfg
    back.train.epochs = 9  # a rebuilt config is a copy: training fills in resolved values on its own
    assert cfg.train.epochs == 4
    from_yaml = from_dict(yaml.safe_load(dump(cfg)))
    assert from_yaml == cfg
    assert type(from_yaml.train.lr) is float and type(from_yaml.train.epochs) is int
    assert from_yaml.to_dict() == as_dict


def test_train_config_resumes_with_the_runs_own_settings(tmp_path):
    from maskcls.config import train_config

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(dump(load_config("demo", ["train.epochs=7", "data.fold=2"])))
    resumed = train_config(run, resume=True, overrides=["train.epochs=9"])
    assert resumed.train.epochs == 9 and resumed.data.fold == 2 and resumed.model.name == load_config("demo").model.name
    fresh = train_config(run, overrides=["train.epochs=9"])  # not resuming: the built-in default
    # not resuming, no --config: the one default rule (default with a GPU, demo without)
    from maskcls.config import default_config_name

    assert fresh.model.name == load_config(default_config_name()).model.name and fresh.data.fold == 0
    told = train_config(run, config="default", resume=True)  # --config given: it wins over the run's
    assert told.train.epochs == load_config("default").train.epochs
    given = train_config(run, config="demo", overrides=["data.corrections=known", "data.fold=3"],
                         corrections="none", fold=1)
    assert given.data.corrections == "none" and given.data.fold == 1  # the options win over --set
    assert train_config(run, config="demo", fold="all").data.fold == 0
    with pytest.raises(UserError, match="--fold all resumes by itself"):
        train_config(run, fold="all", resume=True)


def test_format_settings_lines_up_every_setting():
    from maskcls.config import describe_settings, format_settings

    lines = format_settings(load_config("demo", ["train.epochs=3"]))
    assert len(lines) == len(describe_settings(load_config("demo")))
    assert any(line.startswith("train.epochs = 3 ") for line in lines)
    assert len({line.index("  # ") for line in lines}) == 1


def test_the_help_column_does_not_move_between_configs():
    from maskcls.config import builtin_names, format_settings

    configs = [load_config(name) for name in builtin_names()]
    configs += [load_config("demo", ["data.mean=[0.485, 0.456, 0.406]", "data.cache_dir=/data/cache/maskcls-faces"])]
    columns = {line.index("  # ") for cfg in configs for line in format_settings(cfg)}
    assert len(columns) == 1


def test_config_a_b_and_diff_show_only_what_differs(capsys):
    from maskcls.cli import main
    from maskcls.config import diff_settings

    differ = diff_settings(load_config("default"), load_config("demo"))
    assert differ and all(va != vb for _, va, vb, _ in differ)
    assert main(["config", "default", "demo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["setting", "default", "demo"] and len(lines) == 1 + len(differ)
    assert any(line.split()[:3] == ["data.size", "384x512", "96x128"] for line in lines)
    assert len({line.index("# ") for line in lines}) == 1
    assert main(["config", "--config", "demo", "--diff"]) == 0
    assert capsys.readouterr().out.splitlines() == lines
    assert main(["config", "demo", "demo"]) == 0
    assert "the same settings" in capsys.readouterr().out
