"""`maskcls improve`: both arms scored on one answer key, held-out scoring, resume, and bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from maskcls.errors import UserError
from maskcls.experiments import ablate as ab
from maskcls.experiments import improve as im
from test_ablate import SETS, _perfect_train


def test_both_arms_are_scored_on_one_key(synth_root, tmp_path, monkeypatch):
    calls, keys = [], []
    monkeypatch.setattr(ab, "train", _perfect_train(calls))
    real_score = ab.score_run

    def spy(run_dir, key):
        keys.append((run_dir.parent.name, key.targets.copy()))
        return real_score(run_dir, key)
    monkeypatch.setattr(ab, "score_run", spy)
    fixes = synth_root / "truth" / "corrections.csv"
    out = tmp_path / "imp"
    # --set data.folds=3 agrees with --folds 3: accepted (as ablate accepts it), and said once
    table = im.improve(synth_root, fixes, out, seeds=1, folds=3, key=synth_root / "truth" / "train_truth.csv",
                       overrides=(*SETS[1:], "data.folds=3"), progress=False, log=lambda s: None).set_index("metric")
    assert json.loads((out / "improve.json").read_text())["set"].count("data.folds=3") == 1
    assert {p.name for p in out.iterdir()} >= {"table.md", "results.csv", "improve.png", "people.csv", "corrections.csv"}
    # the arms trained on different labels ...
    assert {c[0] for c in calls} == {"none", str((out / "corrections.csv").resolve())}
    # ... and every run was scored on the very same labels
    assert {k[0] for k in keys} == {"without", "with"} and len(keys) == 6
    assert all(np.array_equal(keys[0][1], k[1]) for k in keys)
    # a run that predicts its own training labels perfectly: the corrected arm matches the truth, the
    # uncorrected one misses the planted errors (it would score 1.0 too on its own labels)
    results = pd.read_csv(out / "results.csv")
    assert (results.loc[results["variant"] == "with", "accuracy"] == 1.0).all()
    assert (results.loc[results["variant"] == "without", "accuracy"] < 1.0).any()
    assert table.loc["accuracy", "gain"] > 0 and table.loc["accuracy", "pairs"] == 3
    md = (out / "table.md").read_text()
    assert "answer key train_truth.csv" in md and "| macro_f1 |" in md and "| gender_f1 |" in md


def test_default_key_is_the_labels_with_the_corrections_applied(synth_root, tmp_path, monkeypatch):
    monkeypatch.setattr(ab, "train", _perfect_train([]))
    out = tmp_path / "imp"
    im.improve(synth_root, synth_root / "truth" / "corrections.csv", out, seeds=1, folds=3, overrides=SETS[1:],
               progress=False, log=lambda s: None)
    results = pd.read_csv(out / "results.csv")
    assert (results.loc[results["variant"] == "with", "accuracy"] == 1.0).all()
    assert "labels with corrections corrections.csv" in (out / "table.md").read_text()


def test_scored_people_are_the_held_out_fold(synth_root, tmp_path, monkeypatch):
    monkeypatch.setattr(ab, "train", _perfect_train([]))
    out = tmp_path / "imp"
    im.improve(synth_root, synth_root / "truth" / "corrections.csv", out, seeds=1, folds=3, overrides=SETS[1:],
               progress=False, log=lambda s: None)
    people = pd.read_csv(out / "people.csv", dtype={"person": str})
    for r in pd.read_csv(out / "results.csv").itertuples():
        scored = set(pd.read_csv(out / "runs" / r.variant / f"seed-{r.seed}-fold-{r.fold}" / "val_probs.csv",
                                 dtype={"person": str})["person"])
        trained = set(people.loc[people["fold"] != r.scored_fold, "person"])
        assert r.scored_fold == r.fold and len(scored) == r.scored_people
        assert scored == set(people.loc[people["fold"] == r.scored_fold, "person"]) and not scored & trained
        assert r.checkpoint.startswith("last epoch")


def test_a_killed_improve_resumes_with_its_finished_runs(synth_root, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ab, "train", _perfect_train(calls, stop_at=3))
    out = tmp_path / "imp"
    fixes = synth_root / "truth" / "corrections.csv"
    with pytest.raises(KeyboardInterrupt):
        im.improve(synth_root, fixes, out, seeds=1, folds=3, overrides=SETS[1:], progress=False, log=lambda s: None)
    assert len(pd.read_csv(out / "results.csv")) == 2
    again = []
    monkeypatch.setattr(ab, "train", _perfect_train(again))
    im.improve(synth_root, fixes, out, seeds=1, folds=3, overrides=SETS[1:], progress=False, log=lambda s: None)
    assert len(again) == 4 and set(again).isdisjoint(calls[:2])  # the two finished runs were reused
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 6 and (results["status"] == "ok").all()
    # the corrections changed since: refused, rather than mixing two sets of fixes in one table
    edited = tmp_path / "edited.csv"
    edited.write_text("\n".join(fixes.read_text().splitlines()[:2]) + "\n")
    with pytest.raises(UserError, match="other corrections"):
        im.improve(synth_root, edited, out, seeds=1, folds=3, overrides=SETS[1:], log=lambda s: None)
    # the same corrections plus a row naming someone not in the data set the same labels: resumed, nothing
    # retrained, the measured file kept as it was
    measured = (out / "corrections.csv").read_text()
    extra = tmp_path / "extra.csv"
    extra.write_text(fixes.read_text().rstrip("\n") + "\nnobody_here,gender,*,,flip,,\n")
    monkeypatch.setattr(ab, "train", lambda *a, **k: pytest.fail("retrained the same runs"))
    said = []
    im.improve(synth_root, extra, out, seeds=1, folds=3, overrides=SETS[1:], progress=False, log=said.append)
    assert any("only in rows that change no label" in line for line in said), said
    assert (out / "corrections.csv").read_text() == measured and len(pd.read_csv(out / "results.csv")) == 6
    # other settings: refused, naming what a rerun with the same ones could add (improve has no variants)
    with pytest.raises(UserError, match=r"rerun with those settings to add seeds, or choose a new --out"):
        im.improve(synth_root, fixes, out, seeds=1, folds=3, overrides=(*SETS[1:], "train.lr=0.5"),
                   log=lambda s: None)


def test_bad_input_is_refused_before_anything_is_written(synth_root, tmp_path, monkeypatch):
    monkeypatch.setattr(ab, "train", lambda *a, **k: pytest.fail("trained on bad input"))
    out = tmp_path / "imp"
    fixes = synth_root / "truth" / "corrections.csv"
    strangers = tmp_path / "strangers.csv"
    strangers.write_text("person_id,field,image,from,to\nnobody_here,gender,*,,flip\n")
    with pytest.raises(UserError, match="changes no label"):
        im.improve(synth_root, strangers, out, overrides=SETS[1:], log=lambda s: None)
    with pytest.raises(UserError, match="too few for 13 person-level folds"):
        im.improve(synth_root, fixes, out, folds=13, overrides=SETS[1:], log=lambda s: None)
    truth = pd.read_csv(synth_root / "truth" / "train_truth.csv", dtype=str)
    short = tmp_path / "short_truth.csv"
    truth.iloc[1:].to_csv(short, index=False)
    with pytest.raises(UserError, match="does not fit the data: 1 of its"):
        im.improve(synth_root, fixes, out, folds=3, key=short, overrides=SETS[1:], log=lambda s: None)
    # the data's own train.csv given as the key by mistake: both key formats are named, not only one
    with pytest.raises(UserError, match=r"train.csv: neither an answer key \(columns person,image,mask,gender,age;"
                                        r".* nor corrections \(columns person_id,field,image,from,to\); found id, "):
        im.improve(synth_root, fixes, out, folds=3, key=synth_root / "train" / "train.csv", overrides=SETS[1:],
                   log=lambda s: None)
    with pytest.raises(UserError, match="--set train.patience"):  # early stopping would watch the scored fold
        im.improve(synth_root, fixes, out, overrides=(*SETS[1:], "train.patience=2"), log=lambda s: None)
    with pytest.raises(UserError, match="--set data.folds"):
        im.improve(synth_root, fixes, out, overrides=(*SETS[1:], "data.folds=4"), log=lambda s: None)
    assert not out.exists()


def test_last_epoch_and_early_stopping_do_not_mix():
    from maskcls.config import load_config

    with pytest.raises(UserError, match="train.patience"):
        load_config("demo", ["train.select=last", "train.patience=2"])


def test_cli_improve_prints_the_table(synth_root, tmp_path, monkeypatch, capsys):
    from maskcls.cli import main

    monkeypatch.setattr(ab, "train", _perfect_train([]))
    args = ["improve", str(synth_root), "--corrections", str(synth_root / "truth" / "corrections.csv"),
            "--out", str(tmp_path / "imp"), "--seeds", "1", "--folds", "3",
            *[x for s in SETS[1:] for x in ("--set", s)]]
    assert main(args) == 0
    assert "| macro_f1 |" in capsys.readouterr().out
    assert main([*args[:-2], "--key", str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_real_runs_keep_the_last_epoch_even_when_an_earlier_one_scored_better(synth_root, tmp_path, monkeypatch):
    """Fails if the kept checkpoint were the one the scored people liked best."""
    from conftest import TINY

    import maskcls.training.fit as fit

    monkeypatch.setattr(fit, "selection_score", lambda row: -row["epoch"])  # epoch 1 'looks' best on the fold
    sets = tuple(t for t in TINY if not t.startswith(("data.folds", "train.epochs"))) + \
        ("train.epochs=2", "train.tensorboard=false")
    out = tmp_path / "imp"
    said: list[str] = []
    im.improve(synth_root, synth_root / "truth" / "corrections.csv", out, seeds=1, folds=3, overrides=sets,
               progress=False, log=said.append)
    # the log speaks of the kept epoch as the last one, never as a "best" the scored fold chose
    assert sum("last epoch 2 of 2, on the" in line and "recorded labels:" in line for line in said) == 6, said
    assert sum("against the answer key" in line for line in said) == 6, said
    assert not any("*best" in line or "best epoch" in line for line in said), said
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 6 and (results["status"] == "ok").all()
    assert (results["best_epoch"] == 2).all() and (results["epochs"] == 2).all()
    import json
    summary = json.loads((out / "runs" / "with" / "seed-0-fold-1" / "summary.json").read_text())
    assert summary["selected_by"] == "last_epoch" and summary["best_epoch"] == 2
    assert {p.name for p in out.iterdir()} >= {"table.md", "results.csv", "improve.png"}
