"""maskcls score and the chance level beside every score."""

import json

import numpy as np
import pandas as pd
import pytest

from maskcls import labels
from maskcls.cli import main
from maskcls.metrics import at_or_below_chance, chance_metrics, compute_metrics, with_chance
from maskcls.serve.score import score_answers


def _targets(classes):
    return np.stack([np.asarray(t.of_class)[np.asarray(classes)] for t in labels.TASKS], axis=1)


def test_chance_is_one_over_the_classes_present_and_no_blind_guess_beats_it():
    rng = np.random.default_rng(0)
    true = rng.choice([0, 1, 3, 6, 13], size=4000, p=[0.5, 0.2, 0.1, 0.1, 0.1])
    chance = chance_metrics(_targets(true))
    assert chance["macro_f1"] == pytest.approx(1 / 5) and chance["accuracy"] == pytest.approx((true == 0).mean())
    assert chance["gender_f1"] == pytest.approx(1 / 2) and chance["mask_f1"] == pytest.approx(1 / 3)
    # guessing at the class frequencies, or always the commonest class, scores about chance or less
    for guess in (rng.permutation(true), np.zeros_like(true)):
        scored = compute_metrics(_targets(true), np.eye(labels.NUM_CLASSES)[guess])
        assert scored["macro_f1"] <= chance["macro_f1"] + 0.02
    unknown = chance_metrics(np.full((3, len(labels.TASKS)), -1))
    assert all(v is None for v in unknown.values())


def test_a_score_at_or_below_chance_is_named():
    true = np.array([0, 0, 3, 3])
    scored = with_chance(compute_metrics(_targets(true), np.eye(labels.NUM_CLASSES)[np.zeros(4, int)]), _targets(true))
    assert "macro_f1" in scored["at_or_below_chance"] and scored["chance"]["macro_f1"] == 0.5
    assert at_or_below_chance({"macro_f1": 0.9}, {"macro_f1": 0.5}) == []


def test_score_answers_per_task_and_class():
    result = score_answers(np.array([0, 3, 0, 7]), np.array([0, 3, 0, 0]))
    assert result["accuracy"] == 0.75 and result["gender_f1"] == 1.0
    assert result["per_class_f1"][labels.class_names()[7]] == {"f1": 0.0, "support": 1}
    assert result["chance"]["macro_f1"] == pytest.approx(1 / 3) and result["photos"] == 4


def test_cli_score_against_an_answer_key_and_demo_truth(synth_root, tmp_path, capsys):
    truth = synth_root / "truth" / "eval_truth.csv"
    key = pd.read_csv(truth)
    sub = tmp_path / "sub.csv"
    key.assign(ans=key["label"])[["ImageID", "ans"]].iloc[::-1].to_csv(sub, index=False)  # any row order
    assert main(["score", str(sub), str(truth), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["macro_f1"] == 1.0 and result["photos"] == len(key) and result["at_or_below_chance"] == []
    answer_key = tmp_path / "key.csv"
    key.assign(ans=key["label"])[["ImageID", "ans"]].to_csv(answer_key, index=False)
    blind = tmp_path / "blind.csv"
    key.assign(ans=0)[["ImageID", "ans"]].to_csv(blind, index=False)
    assert main(["score", str(blind), str(answer_key)]) == 0
    out = capsys.readouterr().out
    assert "macro_f1" in out and "chance" in out and "AT OR BELOW CHANCE" in out


def test_cli_score_refuses_a_submission_of_another_eval_set(tmp_path, capsys):
    key, sub = tmp_path / "key.csv", tmp_path / "sub.csv"
    key.write_text("ImageID,ans\na.jpg,0\nb.jpg,1\n")
    sub.write_text("ImageID,ans\na.jpg,0\nc.jpg,1\n")
    assert main(["score", str(sub), str(key)]) == 2
    err = capsys.readouterr().err
    assert "no answer (first: b.jpg)" in err and "Traceback" not in err
    sub.write_text("ImageID,ans\na.jpg,0\nb.jpg,18\n")
    assert main(["score", str(sub), str(key)]) == 2
    assert "line 3" in capsys.readouterr().err


def test_a_one_class_key_is_named_and_a_perfect_score_there_is_not_below_chance(tmp_path, capsys):
    """Seen in a walkthrough: scoring against eval/info.csv (every ans 0) flagged a perfect score as
    AT OR BELOW CHANCE and said nothing of the placeholder key."""
    key, sub = tmp_path / "key.csv", tmp_path / "sub.csv"
    key.write_text("ImageID,ans\na.jpg,0\nb.jpg,0\n")
    sub.write_text("ImageID,ans\na.jpg,0\nb.jpg,0\n")
    assert main(["score", str(sub), str(key)]) == 0
    out = capsys.readouterr().out
    assert "one class only" in out and "AT OR BELOW CHANCE" not in out


def test_score_names_a_folder_as_a_folder(tmp_path, capsys):
    """`score DIR TRUTH` said "file not found" for a folder that is there."""
    key = tmp_path / "key.csv"
    key.write_text("ImageID,ans\na.jpg,0\n")
    (tmp_path / "subdir").mkdir()
    assert main(["score", str(tmp_path / "subdir"), str(key)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{tmp_path / 'subdir'}: a folder, not a CSV file" in err and "\n" not in err
    assert main(["score", str(key), str(tmp_path)]) == 2
    assert f"{tmp_path}: a folder, not a CSV file" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "none.csv"), str(key)]) == 2
    assert "none.csv: file not found" in capsys.readouterr().err
