"""The ablation runner: variant parsing, the paired arithmetic on hand-made results, and a tiny real run."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from maskcls.cli import main
from maskcls.errors import UserError
from maskcls.experiments import ablate as ab

QUIET = {"progress": False, "log": lambda s: None}


def test_variants_are_presets_or_settings():
    assert ab.parse_variant("hflip+vflip") == ["data.augment=hflip+vflip"]
    assert ab.parse_variant("hflip+data.age_old=58") == ["data.augment=hflip", "data.age_old=58"]
    assert ab.parse_variant("data.corrections=none") == ["data.corrections=none"]
    with pytest.raises(UserError, match="neither a preset"):
        ab.parse_variant("hflip+sharpen")


def test_paired_delta_arithmetic_on_hand_made_results():
    rows = []
    base = {(0, 0): 0.30, (0, 1): 0.40, (1, 0): 0.35, (1, 1): 0.45}
    gain = {(0, 0): 0.05, (0, 1): 0.07, (1, 0): 0.02, (1, 1): 0.06}
    for (seed, fold), f1 in base.items():
        rows.append({"variant": "a", "seed": seed, "fold": fold, "macro_f1": f1, "status": "ok"})
        rows.append({"variant": "b", "seed": seed, "fold": fold, "macro_f1": f1 + gain[(seed, fold)], "status": "ok"})
    rows.append({"variant": "b", "seed": 2, "fold": 0, "macro_f1": 0.9, "status": "ok"})  # no baseline pair
    rows.append({"variant": "a", "seed": 2, "fold": 1, "macro_f1": np.nan, "status": "failed"})
    table = ab.summarize(pd.DataFrame(rows), ["a", "b"]).set_index("variant")
    d = np.array(list(gain.values()))
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert table.loc["b", "pairs"] == 4 and table.loc["b", "runs"] == 5 and table.loc["a", "failed"] == 1
    assert table.loc["b", "delta"] == pytest.approx(d.mean())
    assert table.loc["b", "delta_low"] == pytest.approx(d.mean() - half)
    assert table.loc["b", "delta_high"] == pytest.approx(d.mean() + half)
    b_mean = np.mean(list(base.values()))
    assert table.loc["b", "ratio"] == pytest.approx((b_mean + d.mean()) / b_mean)  # the ratio of the paired means
    assert table.loc["b", "ratio_low"] < table.loc["b", "ratio"] < table.loc["b", "ratio_high"]
    assert table.loc["a", "delta"] == 0 and table.loc["a", "mean"] == pytest.approx(np.mean(list(base.values())))
    md = ab.to_markdown(table.reset_index(), metric="macro_f1")
    assert "| `a` | 4 (1 failed) |" in md and f"{d.mean():+.3f}" in md


def test_the_ratio_agrees_with_the_delta_and_its_interval_with_fieller():
    """A variant with mean 0.055 against 0.057 (delta -0.002) showed ratio 1.09x [0.00, 3.42]: the mean
    of per-pair ratios, which one small baseline pair drives up."""
    b = np.array([0.010, 0.080, 0.070, 0.068])
    v = np.array([0.030, 0.060, 0.065, 0.065])
    assert (v / b).mean() > 1 and v.mean() < b.mean()  # the case the issue saw
    rows = [{"variant": name, "seed": 0, "fold": i, "macro_f1": x, "status": "ok"}
            for name, xs in (("a", b), ("b", v)) for i, x in enumerate(xs)]
    r = ab.summarize(pd.DataFrame(rows), ["a", "b"]).set_index("variant").loc["b"]
    assert r.delta < 0 and r.ratio < 1 and r.ratio == pytest.approx(v.mean() / b.mean())
    # Fieller: at each bound r, mean(v - r b) sits exactly on its 95% t bound.
    t = stats.t.ppf(0.975, 3)
    for bound in (r.ratio_low, r.ratio_high):
        d = v - bound * b
        assert abs(d.mean()) == pytest.approx(t * d.std(ddof=1) / 2, rel=1e-6)
    assert r.ratio_low < r.ratio < r.ratio_high
    md = ab.to_markdown(ab.summarize(pd.DataFrame(rows), ["a", "b"]), metric="macro_f1")
    assert "ratio of means [95% Fieller]" in md and f"{r.ratio:.2f}x" in md


@pytest.mark.slow
def test_ablate_writes_its_files_and_a_second_call_trains_nothing(synth_root, tmp_path, monkeypatch):
    from conftest import TINY

    sets = tuple(TINY) + ("train.epochs=1", "train.tensorboard=false", "data.folds=3")
    out = tmp_path / "abl"
    lines: list[str] = []
    ab.ablate(synth_root, out, ["none", "hflip+vflip"], seeds=1, folds=1, overrides=sets,
              progress=False, log=lines.append)
    assert lines[-1].startswith(f"wrote {out / 'results.csv'}")
    assert {p.name for p in out.iterdir()} >= {"results.csv", "table.md", "ablation.png", "runs"}
    on_disk = pd.read_csv(out / "results.csv")
    assert on_disk[["variant", "seed", "fold", "status"]].values.tolist() == [["none", 0, 0, "ok"],
                                                                             ["hflip+vflip", 0, 0, "ok"]]
    assert on_disk["macro_f1"].between(0, 1).all() and (on_disk["seconds_per_epoch"] > 0).all()
    import yaml
    saved = yaml.safe_load((out / "runs" / "hflip+vflip" / "seed-0-fold-0" / "config.yaml").read_text())
    assert saved["data"]["augment"] == "hflip+vflip"
    table = (out / "table.md").read_text()
    assert "`none`" in table and "`hflip+vflip`" in table
    monkeypatch.setattr(ab, "train", lambda *a, **k: pytest.fail("a finished run was trained again"))
    written = (out / "results.csv").stat().st_mtime_ns
    lines.clear()
    again = ab.ablate(synth_root, out, ["none", "hflip+vflip"], seeds=1, folds=1, overrides=sets,
                      progress=False, log=lines.append)
    assert len(again) == 2
    # Nothing trained, so results.csv is as it was, and the closing line does not claim to have written it.
    assert (out / "results.csv").stat().st_mtime_ns == written
    assert lines[-1].startswith("nothing left to train") and "results.csv unchanged" in lines[-1]


@pytest.mark.slow
def test_a_failed_run_is_recorded_and_the_rest_go_on(synth_root, tmp_path):
    from conftest import TINY

    sets = tuple(TINY) + ("train.epochs=1", "train.tensorboard=false", "data.folds=3")
    bad = f"model.weights={tmp_path / 'missing.pth'}"  # fails when its run builds the model, not before
    results = ab.ablate(synth_root, tmp_path / "abl", ["none", bad], seeds=1, folds=1,
                        overrides=sets, progress=False, log=lambda s: None)
    status = dict(zip(results["variant"], results["status"]))
    assert status == {"none": "ok", bad: "failed"}
    assert "missing.pth" in results.loc[results["status"] == "failed", "error"].iloc[0]


# --- mistakes a new user made (each one silently gave wrong or lost results before) -------------------

def write_val_probs(run_dir, prepared, fold, hit_rate, *, seed=0):
    """val_probs.csv as a run writes it: the true class (of the prepared labels) gets the top probability
    on a fraction ``hit_rate`` of the held-out photos, a wrong class on the rest."""
    from maskcls import labels
    from maskcls.training.runs import probs_frame

    idx = prepared.split(fold)[1]
    val = prepared.table.iloc[idx].reset_index(drop=True)
    true = val["label"].fillna(0).to_numpy(dtype=int)
    rng = np.random.default_rng(seed)
    pred = np.where(rng.random(len(val)) < hit_rate, true, (true + 1 + rng.integers(0, 16, len(val))) % 18)
    probs = np.full((len(val), labels.NUM_CLASSES), 0.01)
    probs[np.arange(len(val)), pred] = 1 - 0.01 * 17
    probs_frame(val, probs, fold=fold).to_csv(run_dir / "val_probs.csv", index=False)


def _fake_train(scores: dict[str, float] | None = None, fail: str | None = None):
    """Stands in for training: the runner's own bookkeeping (plan, folders, pairing, files) is what is tested."""
    from maskcls.metrics import METRIC_KEYS

    def train(cfg, prepared, run_dir, **kwargs):
        if fail and fail in cfg.data.augment:
            raise RuntimeError("boom")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(f"seed: {cfg.train.seed}\naugment: {cfg.data.augment}\n")
        f1 = (scores or {}).get(cfg.data.augment, 0.5) + 0.01 * cfg.train.seed
        write_val_probs(run_dir, prepared, cfg.data.fold, f1)
        return {**{k: f1 for k in METRIC_KEYS}, "best_epoch": 1, "epochs": 1, "seconds_per_epoch": 0.1}
    return train


SETS = ("data.folds=3", "model.name=test_resnet", "data.size=48x64")


def test_variant_mistakes_are_refused_before_anything_is_written(synth_root, tmp_path):
    out = tmp_path / "abl"
    cases = [
        (["hflip", "train.seed=5"], "train.seed, which the runner chooses"),
        (["hflip", "hflip+data.augment=vflip"], "names presets and sets data.augment"),
        (["hflip", "hflip++vflip"], "empty part"),
        (["hflip+vflip", "vflip+hflip"], "are the same settings"),
        (["hflip", "flips", "hflip+vflip"], "are the same settings"),
        (["hflip", "hflip+hflip"], "twice"),
    ]
    for variants, message in cases:
        with pytest.raises(UserError, match=message):
            ab.ablate(synth_root, out, variants, overrides=SETS, log=lambda s: None)
    # the same settings because the base config holds them: the message says which (a new user could not
    # see why `hflip` and `data.corrections=none` were the same under demo.yaml)
    with pytest.raises(UserError, match=r"the base config already sets data.augment=hflip, data.corrections=none\)"):
        ab.ablate(synth_root, out, ["hflip", "data.corrections=none"], config="demo", overrides=SETS,
                  log=lambda s: None)
    with pytest.raises(UserError, match=r"are the same settings; list each one once$"):  # nothing to explain
        ab.ablate(synth_root, out, ["none", "hflip+vflip", "vflip+hflip"], config="demo", overrides=SETS,
                  log=lambda s: None)
    with pytest.raises(UserError, match="--set data.fold"):
        ab.ablate(synth_root, out, ["hflip"], overrides=(*SETS, "data.fold=2"), log=lambda s: None)
    with pytest.raises(UserError, match="no such"):
        ab.ablate(tmp_path / "nodata", out, ["hflip"], overrides=SETS, log=lambda s: None)
    with pytest.raises(UserError, match="unknown model"):
        ab.ablate(synth_root, out, ["hflip", "model.name=no_such_net_xyz"], overrides=SETS, log=lambda s: None)
    with pytest.raises(UserError, match="fold"):  # the session data holds far fewer than 500 people
        ab.ablate(synth_root, out, ["hflip"], overrides=(*SETS[1:], "data.folds=500"), log=lambda s: None)
    assert not out.exists()


def test_two_variants_never_share_a_run_folder():
    assert ab.slug("hflip+vflip") == "hflip+vflip"
    assert ab.slug("data.corrections=a/b.csv") != ab.slug("data.corrections=a_b.csv")
    long = "none+model.heads=single+train.schedule=constant+train.label_smoothing=0+data.age_old=58+train.lr="
    a, b = ab.slug(long + "0.003"), ab.slug(long + "0.01")
    assert a != b and len(a) <= 120 and "/" not in a


def test_runs_of_other_data_are_not_paired_and_set_order_does_not_matter(synth_root, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(ab, "train", _fake_train())
    out = tmp_path / "abl"
    ab.ablate(synth_root, out, ["hflip"], seeds=1, folds=1, overrides=SETS, progress=False, log=lambda s: None)
    # a byte copy elsewhere is the same data: its runs pair with the old ones
    copy = tmp_path / "copy"
    shutil.copytree(synth_root, copy)
    again = ab.ablate(copy, out, ["hflip", "vflip"], seeds=1, folds=1, overrides=tuple(reversed(SETS)),
                      progress=False, log=lambda s: None)
    assert sorted(again["variant"]) == ["hflip", "vflip"]
    # the same path, refilled with other people's labels: refused, before anything trains
    train_csv = copy / "train" / "train.csv"
    rows = pd.read_csv(train_csv)
    rows.loc[0, "gender"] = "female" if rows.loc[0, "gender"] == "male" else "male"
    old = copy / "train" / "images" / rows.loc[0, "path"]
    rows.loc[0, "path"] = rows.loc[0, "path"].replace("_male_", "_x_").replace("_female_", "_y_")
    old.rename(old.parent / rows.loc[0, "path"])
    rows.to_csv(train_csv, index=False)
    monkeypatch.setattr(ab, "train", lambda *a, **k: pytest.fail("trained on changed data"))
    with pytest.raises(UserError, match="holds runs made on other data"):
        ab.ablate(copy, out, ["hflip", "vflip"], seeds=2, folds=1, overrides=SETS, log=lambda s: None)


def test_the_table_covers_this_calls_grid_and_intervals_stay_possible(synth_root, tmp_path, monkeypatch):
    monkeypatch.setattr(ab, "train", _fake_train({"hflip": 0.3, "vflip": 0.9}))
    out = tmp_path / "abl"
    ab.ablate(synth_root, out, ["hflip", "vflip"], seeds=2, folds=1, overrides=SETS, progress=False,
              log=lambda s: None)
    assert "| `hflip` | 2 |" in (out / "table.md").read_text()
    fewer = ab.ablate(synth_root, out, ["hflip", "vflip"], seeds=1, folds=1, overrides=SETS, progress=False,
                      log=lambda s: None)
    assert len(fewer) == 2 and len(pd.read_csv(out / "results.csv")) == 4
    assert "| `hflip` | 1 |" in (out / "table.md").read_text()
    # two runs far apart: the raw t interval of the mean reaches below 0 and above 1
    rows = [{"variant": "a", "seed": s, "fold": 0, "macro_f1": f, "status": "ok"} for s, f in ((0, 0.02), (1, 0.9))]
    rows += [{"variant": "b", "seed": s, "fold": 0, "macro_f1": f, "status": "ok"} for s, f in ((0, 0.2), (1, 0.95))]
    table = ab.summarize(pd.DataFrame(rows), ["a", "b"]).set_index("variant")
    assert table.loc["a", "low"] == 0.0 and table.loc["a", "high"] == 1.0
    assert table.loc["b", "delta_low"] >= -1.0
    # two pairs this far apart leave the baseline's mean not clearly above 0: Fieller's interval is unbounded
    assert np.isnan(table.loc["b", "ratio_low"]) and "[unbounded]" in ab.to_markdown(table.reset_index(),
                                                                                     metric="macro_f1")


def test_cli_exits_1_when_a_run_failed_and_refuses_an_empty_variant(synth_root, tmp_path, monkeypatch, capsys):
    from maskcls.cli import main

    monkeypatch.setattr(ab, "train", _fake_train(fail="vflip"))
    args = ["ablate", str(synth_root), "--out", str(tmp_path / "abl"), "--seeds", "1", "--run-folds", "1",
            *[x for s in SETS for x in ("--set", s)]]
    assert main([*args, "--variants", "hflip,vflip"]) == 1
    err = capsys.readouterr().err
    assert "1 of 2 runs failed" in err and "boom" in err
    assert main([*args, "--variants", "hflip,,vflip"]) == 2
    assert "empty entry" in capsys.readouterr().err


def test_the_grid_s_steps_can_be_called_alone(synth_root, tmp_path):
    """check_grid refuses before any work and settles the key; plan_grid says what is left; nothing is
    written by either."""
    from conftest import TINY

    sets = tuple(s for s in TINY if not s.startswith("data.folds")) + ("data.folds=2",)
    arms = {"none": ["data.augment=none"], "hflip": ["data.augment=hflip"]}
    grid = ab.check_grid(synth_root, tmp_path / "ab", arms, seeds=2, folds=None, config="demo", overrides=sets,
                         key=None, own_files=ab.ABLATION_FILES, settings_name="ablation.json")
    assert grid.names == ["none", "hflip"] and grid.n_folds == 2 and grid.settings["scoring"] == ab.SCORING
    plan, todo = ab.plan_grid(grid, ab._read_results(tmp_path / "ab" / "results.csv"), seeds=2)
    assert len(plan) == 2 * 2 * 2 and todo == plan
    done = pd.DataFrame([{"variant": "none", "seed": grid.base.train.seed, "fold": 0, "status": "ok"}])
    _, left = ab.plan_grid(grid, done, seeds=2)
    assert len(left) == 7 and ("none", grid.base.train.seed, 0) not in left
    with pytest.raises(UserError, match="are the same settings"):
        ab.check_grid(synth_root, tmp_path / "ab", {"a": ["data.augment=hflip"], "b": ["data.augment=hflip"]},
                      seeds=1, folds=None, config="demo", overrides=sets, key=None, own_files=ab.ABLATION_FILES,
                      settings_name="ablation.json")
    assert not (tmp_path / "ab").exists()


def test_ablate_trainings_tag_their_lines_with_variant_seed_and_fold(synth_root, tmp_path, monkeypatch):
    from maskcls.experiments import ablate as ab
    from maskcls.metrics import METRIC_KEYS

    from test_ablate import write_val_probs

    def fake_train(cfg, prepared, run_dir, **kwargs):
        kwargs["log"]("epoch 1/1  macro_f1 0.5")
        run_dir.mkdir(parents=True, exist_ok=True)
        write_val_probs(run_dir, prepared, cfg.data.fold, 1.0)
        return {**{k: 0.5 for k in METRIC_KEYS}, "best_epoch": 1, "epochs": 1, "seconds_per_epoch": 0.1}

    monkeypatch.setattr(ab, "train", fake_train)
    lines = []
    ab.ablate(synth_root, tmp_path / "abl", ["hflip"], seeds=2, folds=1,
              overrides=("data.folds=3", "model.name=test_resnet", "data.size=48x64"), progress=False, log=lines.append)
    assert "[hflip seed 1 fold 0] epoch 1/1  macro_f1 0.5" in lines
    # the chance level of the scored fold's class mix (on the answer key) reaches results.csv and the table
    from maskcls.training.runs import read_probs

    scored = read_probs(tmp_path / "abl" / "runs" / "hflip" / "seed-0-fold-0" / "val_probs.csv")
    expected = 1.0 / scored["label"].nunique()
    results = ab._read_results(tmp_path / "abl" / "results.csv")
    assert (results["status"] == "ok").all()
    assert np.allclose(results["chance_macro_f1"], expected)
    assert f"| {expected:.3f} |" in (tmp_path / "abl" / "table.md").read_text()


def test_ablation_variants_keep_the_old_crop_names():
    assert ab.parse_variant("centercrop+hflip") == ["data.augment=hflip", "data.crop=center"]
    assert ab.parse_variant("centercrop") == ["data.augment=none", "data.crop=center"]
    assert ab.parse_variant("hflip+data.crop=face") == ["data.augment=hflip", "data.crop=face"]
    with pytest.raises(UserError, match="names a crop preset and sets data.crop"):
        ab.parse_variant("facecrop+data.crop=center")


def test_ablate_table_shows_chance_and_flags_a_variant_at_or_below_it():
    from maskcls.experiments import ablate as ab

    rows = [{"variant": v, "seed": s, "fold": 0, "macro_f1": f1, "chance_macro_f1": 0.1, "status": "ok"}
            for v, f1 in (("a", 0.4), ("b", 0.08)) for s in (0, 1)]
    md = ab.to_markdown(ab.summarize(pd.DataFrame(rows), ["a", "b"]), metric="macro_f1")
    assert "| chance |" in md
    line_a, line_b = (next(line for line in md.splitlines() if f"`{v}`" in line) for v in "ab")
    assert "| 0.100 |" in line_a and "at or below chance" not in line_a and "at or below chance" in line_b


def test_ablate_refuses_foreign_folders_and_other_settings_on_rerun(synth_root, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"x")
    assert main(["ablate", str(synth_root), "--out", str(run), "--variants", "hflip", "--seeds", "1"]) == 2
    assert "not an ablation's" in capsys.readouterr().err
    abl = tmp_path / "abl"
    abl.mkdir()
    (abl / "ablation.json").write_text(json.dumps({"config": "demo", "set": ["train.lr=0.003"]}))
    assert main(["ablate", str(synth_root), "--out", str(abl), "--variants", "hflip", "--seeds", "1",
                 "--set", "train.lr=0.5"]) == 2
    assert "made with --config demo --set train.lr=0.003" in capsys.readouterr().err
    assert main(["ablate", str(synth_root), "--out", str(tmp_path / "b"), "--variants", "hflip,data.fold=2"]) == 2
    assert "sets data.fold" in capsys.readouterr().err


def test_ablate_folds_given_twice(synth_root, tmp_path, capsys):
    """--folds K with --set data.folds=K shows it once on the config line; another value is refused."""
    missing = str(tmp_path / "no-data")  # fails after the config line, before anything trains
    assert main(["ablate", missing, "--out", str(tmp_path / "a"), "--variants", "hflip", "--folds", "3",
                 "--set", "data.folds=3"]) == 2
    config_line = capsys.readouterr().out.splitlines()[0]
    assert config_line.count("data.folds=3") == 1, config_line
    assert main(["ablate", str(synth_root), "--out", str(tmp_path / "b"), "--variants", "hflip", "--folds", "3",
                 "--set", "data.folds=5"]) == 2
    assert "--folds 3 and --set data.folds=5 disagree" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_an_ablation_run_finished_but_not_recorded_is_reused(synth_root, tmp_path, monkeypatch):
    """The parent was killed after a worker finished a run and before results.csv got its row."""
    from maskcls import config as config_mod
    from maskcls.metrics import METRIC_KEYS

    from test_ablate import write_val_probs

    def fake(cfg, prepared, run_dir, **kwargs):
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(config_mod.dump(cfg))
        write_val_probs(run_dir, prepared, cfg.data.fold, 0.5)
        summary = {**{k: 0.25 for k in METRIC_KEYS}, "best_epoch": 1, "epochs": 1, "seconds_per_epoch": 0.5}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        return summary

    sets = ("data.folds=3", "model.name=test_resnet", "data.size=48x64")
    monkeypatch.setattr(ab, "train", fake)
    out = tmp_path / "abl"
    first = ab.ablate(synth_root, out, ["hflip", "vflip"], seeds=1, folds=1, overrides=sets, **QUIET)
    (out / "results.csv").unlink()  # as if the parent died before recording either run
    (out / "runs" / "vflip" / "seed-0-fold-0" / "summary.json").unlink()  # this one never finished
    trained = []
    monkeypatch.setattr(ab, "train", lambda cfg, p, run_dir, **k: trained.append(cfg.data.augment) or fake(cfg, p, run_dir))
    again = ab.ablate(synth_root, out, ["hflip", "vflip"], seeds=1, folds=1, overrides=sets, **QUIET)
    assert trained == ["vflip"]
    assert again.equals(first)


def test_ablate_refuses_variants_on_different_labels_without_a_key(synth_root, tmp_path, monkeypatch):
    monkeypatch.setattr(ab, "train", lambda *a, **k: pytest.fail("trained without a key"))
    fixes = synth_root / "truth" / "corrections.csv"
    with pytest.raises(UserError, match="give --key"):
        ab.ablate(synth_root, tmp_path / "abl", ["data.corrections=none", f"data.corrections={fixes}"],
                  overrides=SETS, log=lambda s: None)
    assert not (tmp_path / "abl").exists()


def test_a_config_with_early_stopping_still_ablates_with_the_full_budget(synth_root, tmp_path, monkeypatch):
    trained = []
    fake = _perfect_train([])
    monkeypatch.setattr(ab, "train", lambda cfg, *a, **k: trained.append(cfg) or fake(cfg, *a, **k))
    results = ab.ablate(synth_root, tmp_path / "abl", ["hflip"], seeds=1, folds=1, config="default",
                        overrides=SETS, progress=False, log=lambda s: None)  # default.yaml has patience: 4
    assert (results["status"] == "ok").all() and len(trained) == 1
    assert trained[0].train.patience == 0 and trained[0].train.select == "last"


def _perfect_train(calls: list, *, stop_at: int | None = None):
    """Stands in for training: each run 'predicts' exactly the labels it trained on (its own arm's)."""
    from maskcls.metrics import METRIC_KEYS

    def train(cfg, prepared, run_dir, **kwargs):
        calls.append((cfg.data.corrections, cfg.train.seed, cfg.data.fold))
        if stop_at is not None and len(calls) == stop_at:
            run_dir.mkdir(parents=True, exist_ok=True)  # half-written, as a kill leaves it
            (run_dir / "last.pt").write_text("partial")
            raise KeyboardInterrupt
        assert cfg.train.select == "last", "an improve run chose its checkpoint on its scored people"
        run_dir.mkdir(parents=True, exist_ok=True)
        write_val_probs(run_dir, prepared, cfg.data.fold, 1.0)
        return {**{k: 0.0 for k in METRIC_KEYS}, "best_epoch": 2, "epochs": 2, "seconds_per_epoch": 0.1}
    return train
