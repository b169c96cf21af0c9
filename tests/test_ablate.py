"""The ablation runner: variant parsing, the paired arithmetic on hand-made results, and a tiny real run."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from maskcls.errors import UserError
from maskcls.experiments import ablate as ab


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
    ratios = np.array([(base[k] + gain[k]) / base[k] for k in base])
    assert table.loc["b", "ratio"] == pytest.approx(ratios.mean())
    assert table.loc["a", "delta"] == 0 and table.loc["a", "mean"] == pytest.approx(np.mean(list(base.values())))
    md = ab.to_markdown(table.reset_index(), metric="macro_f1")
    assert "| `a` | 4 (1 failed) |" in md and f"{d.mean():+.3f}" in md


@pytest.mark.slow
def test_ablate_writes_its_files_and_a_second_call_trains_nothing(synth_root, tmp_path, monkeypatch):
    from test_train import TINY

    sets = tuple(TINY) + ("train.epochs=1", "train.tensorboard=false", "data.folds=3")
    out = tmp_path / "abl"
    ab.ablate(synth_root, out, ["none", "hflip+vflip"], seeds=1, folds=1, overrides=sets,
                        progress=False, log=lambda s: None)
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
    again = ab.ablate(synth_root, out, ["none", "hflip+vflip"], seeds=1, folds=1, overrides=sets,
                      progress=False, log=lambda s: None)
    assert len(again) == 2


@pytest.mark.slow
def test_a_failed_run_is_recorded_and_the_rest_go_on(synth_root, tmp_path):
    from test_train import TINY

    sets = tuple(TINY) + ("train.epochs=1", "train.tensorboard=false", "data.folds=3")
    results = ab.ablate(synth_root, tmp_path / "abl", ["none", "model.name=no_such_net_xyz"], seeds=1, folds=1,
                        overrides=sets, progress=False, log=lambda s: None)
    status = dict(zip(results["variant"], results["status"]))
    assert status == {"none": "ok", "model.name=no_such_net_xyz": "failed"}
    assert results.loc[results["status"] == "failed", "error"].iloc[0]
