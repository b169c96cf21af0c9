"""Prepare once, --fold all with out-of-fold probabilities, ensembles, the Python API, resume rules."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import maskcls
from maskcls import labels
from maskcls.cli import main
from maskcls.data import images
from maskcls.data.prepare import prepare
from maskcls.errors import UserError
from maskcls.serve.predictor import Predictor
from maskcls.training.fit import train
from maskcls.training.folds import train_folds
from conftest import tiny_config

# Tests that train (or use the trained cv_run) are marked slow one by one; the preparation and
# refusal checks train nothing and stay in the fast selection.

QUIET = {"progress": False, "log": lambda s: None}
ONE_EPOCH = ("train.epochs=1", "train.tensorboard=false", "data.folds=3")
P = labels.class_prob_columns()


@pytest.fixture(scope="module")
def cv_run(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv") / "cv"
    cfg = tiny_config(*ONE_EPOCH)
    prepared = prepare(cfg, synth_root, log=lambda s: None)
    cv = train_folds(cfg, prepared, out, **QUIET)
    return out, cv, prepared


@pytest.mark.slow
def test_two_trainings_from_one_prepared_dataset_decode_each_photo_once(synth_root, tmp_path, monkeypatch):
    calls = []
    real = images.read_rgb
    monkeypatch.setattr(images, "read_rgb", lambda p: calls.append(p) or real(p))
    cfg = tiny_config(*ONE_EPOCH, "data.cache=true")
    prepared = prepare(cfg, synth_root, log=lambda s: None)
    train(cfg, prepared, tmp_path / "a", **QUIET)
    seed1 = tiny_config(*ONE_EPOCH, "data.cache=true", "train.seed=1", "data.fold=1")
    train(seed1, prepared, tmp_path / "b", **QUIET)
    assert len(calls) == len(prepared.table) == len(set(calls)) and prepared.store.decoded == len(calls)


def test_train_seed_never_moves_people_between_folds(synth_root):
    base = prepare(tiny_config("data.folds=3"), synth_root, log=lambda s: None)
    reseeded = prepare(tiny_config("data.folds=3", "train.seed=7"), synth_root, log=lambda s: None)
    resplit = prepare(tiny_config("data.folds=3", "data.split_seed=7"), synth_root, log=lambda s: None)
    assert np.array_equal(base.folds, reseeded.folds)
    assert not np.array_equal(base.folds, resplit.folds)


def test_prepared_data_must_match_the_config(synth_root, tmp_path):
    prepared = prepare(tiny_config("data.folds=3"), synth_root, log=lambda s: None)
    with pytest.raises(ValueError, match="data.age_old"):
        train(tiny_config("data.folds=3", "data.age_old=58"), prepared, tmp_path / "r", **QUIET)


@pytest.mark.slow
def test_fold_all_gives_every_photo_once_from_a_model_that_never_saw_its_person(cv_run):
    out, cv, prepared = cv_run
    oof = pd.read_csv(out / "oof_probs.csv", keep_default_na=False)
    assert oof["path"].tolist() == prepared.table["path"].tolist()  # every photo once, in table order
    assert np.array_equal(oof["fold"].to_numpy(), prepared.folds)
    assert np.allclose(oof[P].sum(axis=1), 1, atol=1e-4)
    for task in labels.TASKS:
        assert np.allclose(oof[labels.task_prob_columns(task)].sum(axis=1), 1, atol=1e-4)
    for fold in range(3):
        train_idx, _ = prepared.split(fold)
        rows = oof[oof["fold"] == fold]
        trained_people = set(prepared.table.iloc[train_idx]["person"])
        assert not trained_people & set(rows["person"])
        # The rows really are that fold model's predictions.
        sample = rows.head(5)
        again = Predictor(out / f"fold-{fold}").predict_proba(sample["path"].tolist())
        assert np.allclose(again, sample[P].to_numpy(), atol=1e-5)
    summary = json.loads((out / "cv_summary.json").read_text())
    f1s = [s["macro_f1"] for s in summary["per_fold"]]
    assert summary["folds"] == 3 and summary["mean"]["macro_f1"] == pytest.approx(np.mean(f1s))
    assert summary["std"]["macro_f1"] == pytest.approx(np.std(f1s, ddof=1))
    for fold in range(3):
        files = {p.name for p in (out / f"fold-{fold}").iterdir()}
        assert {"best.pt", "val_probs.csv", "curves.png", "per_class_f1.png", "confusion.png"} <= files


@pytest.mark.slow
def test_fold_all_rerun_trains_nothing(cv_run, monkeypatch):
    out, cv, prepared = cv_run
    from maskcls.training import folds

    monkeypatch.setattr(folds, "train", lambda *a, **k: pytest.fail("a finished fold was trained again"))
    again = train_folds(tiny_config(*ONE_EPOCH), prepared, out, **QUIET)
    assert again["mean"] == cv["mean"]
    # A new user reran with more epochs and got the 1-epoch folds back, silently: a finished fold of another
    # budget is another model, refused as every other changed setting is
    import re

    for setting, says in (("train.epochs=2", "train.epochs (1 -> 2)"), ("train.patience=1", "train.patience (0 -> 1)")):
        with pytest.raises(UserError, match="was trained with other settings: .*" + re.escape(says)):
            train_folds(tiny_config(*ONE_EPOCH, setting), prepared, out, **QUIET)


@pytest.mark.slow
def test_ensemble_is_the_mean_of_its_members(cv_run, synth_root, tmp_path):
    out, _, _ = cv_run
    paths = sorted(str(p) for p in (synth_root / "eval" / "images").iterdir())[:9]
    members = [Predictor(out / f"fold-{k}", tta="hflip").predict_proba(paths) for k in range(3)]
    whole = Predictor(out, tta="hflip")  # the k-fold run stands for its three fold models
    assert len(whole.members) == 3
    assert np.allclose(whole.predict_proba(paths), np.mean(members, axis=0), atol=1e-6)
    listed = Predictor([out / "fold-0", out / "fold-2"], tta="hflip").predict_proba(paths)
    assert np.allclose(listed, (members[0] + members[2]) / 2, atol=1e-6)
    # The command line: predict with a k-fold run writes the ensemble's probabilities and classes.
    sub, probs = tmp_path / "sub.csv", tmp_path / "probs.csv"
    assert main(["predict", str(out / "fold-0"), "--add-run", str(out / "fold-2"), str(synth_root / "eval"), "--out", str(sub),
                 "--probs", str(probs), "--tta", "hflip"]) == 0
    written = pd.read_csv(probs).set_index("ImageID")
    ids = [p.split("/")[-1] for p in paths]
    assert np.allclose(written.loc[ids, P].to_numpy(), listed, atol=1e-5)
    assert (pd.read_csv(sub).set_index("ImageID").loc[ids, "ans"].to_numpy() == listed.argmax(1)).all()


@pytest.mark.slow
def test_fold_all_evaluate_on_its_data_gives_the_pooled_out_of_fold_figures(cv_run, synth_root):
    out, cv, _ = cv_run
    from maskcls.serve.predict import evaluate_run

    for split in ("val", "auto"):
        pooled = evaluate_run(out, synth_root, split=split, progress=False)
        assert pooled["split"] == "oof" and pooled["photos"] == len(pd.read_csv(out / "oof_probs.csv"))
        assert pooled["macro_f1"] == pytest.approx(cv["oof"]["macro_f1"])
        assert pooled["chance"]["macro_f1"] == pytest.approx(cv["oof"]["chance"]["macro_f1"]) and "per_class_f1" in pooled
    with pytest.raises(UserError, match="the figures would be inflated"):
        evaluate_run(out, synth_root, split="all", progress=False)


@pytest.mark.slow
def test_api_trains_from_a_dataframe_and_predicts_arrays(synth_root, tmp_path):
    truth = pd.read_csv(synth_root / "truth" / "train_truth.csv")
    frame = pd.DataFrame({"path": [str(synth_root / p) for p in truth["path"]], "person_id": truth["person"],
                          "mask": truth["mask"], "gender": truth["gender"], "age": truth["age"]})
    cfg = maskcls.load_config("demo", ["model.name=test_resnet", "data.size=48x64", "train.batch_size=16",
                                       "train.epochs=1", "data.folds=3", "train.tensorboard=false"])
    summary = maskcls.train(cfg, frame, tmp_path / "api", **QUIET)
    assert summary["train_photos"] + summary["val_photos"] == len(frame)
    predictor = maskcls.Predictor(tmp_path / "api")
    arrays = [images.read_rgb(p) for p in frame["path"][:4]]
    from_arrays = predictor.predict(arrays)
    from_paths = predictor.predict(frame["path"][:4].tolist())
    assert list(from_arrays.columns[:7]) == ["input", "class", "mask", "gender", "age", "confidence", "p0"]
    assert from_arrays["input"].tolist() == [0, 1, 2, 3] and from_paths["input"].tolist() == frame["path"][:4].tolist()
    assert np.allclose(from_arrays[P].to_numpy(), from_paths[P].to_numpy(), atol=1e-6)
    assert (from_arrays["class"] == from_arrays[P].to_numpy().argmax(1)).all()
    m, g, a = labels.decode(from_arrays["class"].to_numpy())
    assert (from_arrays["mask"].to_numpy() == np.array(labels.MASK_NAMES)[m]).all()
    with pytest.raises(UserError, match=r"expected an image of shape"):
        predictor.predict([np.zeros((8, 8, 2), np.float32)])


@pytest.mark.slow
def test_resume_refuses_changed_settings_and_other_data(synth_root, tmp_path):
    cfg = tiny_config("train.epochs=2", "train.tensorboard=false", "data.folds=3")
    run = tmp_path / "r"
    train(cfg, synth_root, run, stop_after_epoch=1, **QUIET)
    with pytest.raises(UserError, match=r"train\.lr \(0\.003 -> 0\.01\)"):
        train(tiny_config("train.epochs=2", "train.tensorboard=false", "data.folds=3", "train.lr=0.01"),
              synth_root, run, resume=True, **QUIET)
    with pytest.raises(UserError, match=r"train\.optimizer \(adamw -> sgd\)"):
        train(tiny_config("train.epochs=2", "train.tensorboard=false", "data.folds=3", "train.optimizer=sgd"),
              synth_root, run, resume=True, **QUIET)
    other = tmp_path / "other.csv"
    # The same photos, seen through another manifest (a copy: a link out of the manifest's folder is refused)
    shutil.copytree(synth_root / "train", tmp_path / "train")
    truth = pd.read_csv(synth_root / "truth" / "train_truth.csv")
    pd.DataFrame({"path": truth["path"], "person_id": truth["person"], "mask": truth["mask"]}).to_csv(other, index=False)
    with pytest.raises(UserError, match="its labels and photos differ from those"):
        train(cfg, other, run, resume=True, **QUIET)
    # More epochs is allowed: the schedule is re-stretched from where the run stopped.
    summary = train(tiny_config("train.epochs=3", "train.tensorboard=false", "data.folds=3"), synth_root, run,
                    resume=True, **QUIET)
    assert summary["epochs"] == 3


def test_nothing_is_written_before_the_first_epoch_ends(synth_root, tmp_path, monkeypatch):
    from maskcls.training import fit

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(fit, "train_one_epoch", boom)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(*ONE_EPOCH), synth_root, tmp_path / "r", **QUIET)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_fold_all_rerun_with_other_settings_is_refused(cv_run):
    out, _, prepared = cv_run
    with pytest.raises(UserError, match=r"train\.lr \(0\.003 -> 0\.5\)"):
        train_folds(tiny_config(*ONE_EPOCH, "train.lr=0.5"), synth_data(prepared), out, **QUIET)


def synth_data(prepared):
    return prepared.source


def test_corrections_and_training_cut_offs_never_move_people_between_folds(synth_root):
    base = prepare(tiny_config("data.folds=3", "data.corrections=none"), synth_root, log=lambda s: None)
    fixed = prepare(tiny_config("data.folds=3", f"data.corrections={synth_root / 'truth' / 'corrections.csv'}"),
                    synth_root, log=lambda s: None)
    moved = prepare(tiny_config("data.folds=3", "data.age_old=50"), synth_root, log=lambda s: None)
    assert (fixed.table["gender"] != base.table["gender"]).any()  # the corrections do change labels...
    assert np.array_equal(base.folds, fixed.folds) and np.array_equal(base.folds, moved.folds)  # ...not folds
