"""maskcls audit end to end on tiny data: trains 2 folds, writes every file, and the proposed
corrections load back through corrections.py."""

import contextlib
import io
import json

import pandas as pd
import pytest

from maskcls.cli import main
from maskcls.data import corrections
from maskcls.data import table as data
from maskcls.data.synth import make_dataset

pytestmark = pytest.mark.slow

TINY = ["--set", "model.name=test_resnet", "--set", "data.size=48x64", "--set", "train.epochs=1",
        "--set", "train.batch_size=16", "--set", "train.tensorboard=false"]


@pytest.fixture(scope="module")
def audited(synth_root, tmp_path_factory):
    """An audit of the synthetic data that trained its own two folds (in OUT/cv); (OUT, what it printed)."""
    out = tmp_path_factory.mktemp("audit") / "audit"
    truth = synth_root / "truth" / "injected_noise.csv"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["--quiet", "audit", str(synth_root), "--out", str(out), "--folds", "2", "--truth", str(truth),
                     *TINY]) == 0
    return out, printed.getvalue()


def test_audit_with_two_folds_writes_everything(synth_root, audited, tmp_path):
    out, printed = audited
    assert "precision" in printed and "review them in" in printed
    files = {p.name for p in out.iterdir()}
    assert {"label_issues.csv", "proposed_corrections.csv", "review.html", "summary.json", "precision_recall.png",
            "cv"} <= files
    issues = pd.read_csv(out / "label_issues.csv")
    assert list(issues.columns) == ["person", "photos", "field", "given", "suggested", "score", "rank"]
    assert issues["rank"].tolist() == sorted(issues["rank"]) and issues["score"].is_monotonic_decreasing
    fixes = corrections.read(out / "proposed_corrections.csv")
    assert len(fixes) == len(issues)
    table, report = data.load_table(synth_root, corrections=out / "proposed_corrections.csv")
    assert len(report.changes) >= len(issues) and not report.unmatched
    summary = json.loads((out / "summary.json").read_text())
    assert summary["photos"] == len(table) and summary["issues"] == len(issues)
    assert set(summary["truth"]) >= {"gender", "mask_swap", "all"}
    for ref in (out / "review.html").read_text().split('src="')[1:]:
        path = ref.split('"')[0]
        if not path.startswith(("data:", "#")):
            assert (out / path).is_file(), path
    # The folds trained here are a --fold all run: a second audit reuses them and trains nothing.
    again = tmp_path / "again"
    assert main(["--quiet", "audit", str(synth_root), "--out", str(again), "--run", str(out / "cv")]) == 0
    assert pd.read_csv(again / "label_issues.csv").equals(issues)


def test_audit_refuses_a_run_of_other_data(synth_root, audited, tmp_path, capsys):
    other = tmp_path / "other"
    make_dataset(other, people=6, eval_people=0, noise=0.0, seed=11, size=(48, 64), workers=1)
    run = audited[0] / "cv"  # a real --fold all run, trained on synth_root
    out = tmp_path / "a"
    assert main(["--quiet", "audit", str(other), "--out", str(out), "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert "does not cover exactly the photos" in err and "(0 of 42 in common)" in err, err
    assert not out.exists()  # nothing half-written
    # A folder that is no --fold all run at all is refused too.
    assert main(["--quiet", "audit", str(synth_root), "--out", str(out), "--run", str(tmp_path)]) == 2
    assert "no oof_probs.csv" in capsys.readouterr().err
