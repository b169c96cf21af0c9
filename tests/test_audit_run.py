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


def test_a_one_epoch_audit_proposes_nothing_and_says_why(synth_root, audited, tmp_path):
    out, printed = audited
    assert "precision" in printed and "train with --corrections" not in printed
    # no field passes the gate, so there is nothing to review, and the audit says so instead of pointing there
    assert "nothing to review" in printed and "Review them before any training" not in printed
    # the drawn demo faces are rarely found, so the face model has no opinion, and says so once
    assert "face model: no opinion on any field" in printed
    # the gate: one line per field, balanced accuracy next to chance, and a 1-epoch model passes none
    for field in ("gender", "mask", "age"):
        line = next(x for x in printed.splitlines() if x.startswith(f"{field}: "))
        assert "balanced accuracy" in line and "chance" in line and "not audited: read below the bar" in line
    files = {p.name for p in out.iterdir()}
    assert {"label_issues.csv", "proposed_corrections.csv", "review.html", "summary.json", "precision_recall.png",
            "cv", "field_quality.csv"} <= files
    assert (out / "cv" / "oof_signals.csv").is_file() and (out / "cv" / "fold-0" / "train_margins.csv").is_file()
    quality = pd.read_csv(out / "field_quality.csv")
    assert sorted(quality["field"]) == ["age", "gender", "mask"] and not quality["passed"].any()
    assert len(corrections.read(out / "proposed_corrections.csv")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["proposed"] == 0 and not any(v["audited"] for v in summary["fields"].values())
    assert set(summary["truth"]) >= {"gender", "mask_swap", "all"}
    # The folds trained here are a --fold all run: a second audit reuses them and trains nothing; with
    # the bar at its lowest, the fields the models read at all are audited, and only issues past the
    # score threshold are proposed.
    again = tmp_path / "again"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["--quiet", "audit", str(synth_root), "--out", str(again), "--run", str(out / "cv"),
                     "--min-quality", "0", "--propose-quality", "0"]) == 0
    assert f"maskcls review {again}" in printed.getvalue() and "Review them before any training" in printed.getvalue()
    summary = json.loads((again / "summary.json").read_text())
    assert summary["min_quality"] == 0 and summary["propose_quality"] == 0
    fields = {f for f, v in summary["fields"].items() if v["audited"]}
    assert fields == {f for f, v in summary["fields"].items() if v["quality"] is not None and v["quality"] >= 0}
    issues = pd.read_csv(again / "label_issues.csv", keep_default_na=False)
    assert list(issues.columns) == ["person", "photos", "field", "given", "suggested", "score", "rank", "proposed",
                                    "networks_say", "face_model_says"]
    assert set(issues["field"]) <= fields
    assert issues["rank"].tolist() == sorted(issues["rank"]) and issues["score"].is_monotonic_decreasing
    fixes = corrections.read(again / "proposed_corrections.csv")
    assert len(fixes) == summary["proposed"] == int((issues["proposed"] == "yes").sum())
    strong = issues["score"] >= summary["propose_min_score"]
    assert (issues.loc[~strong, "proposed"] == f"no: score below {summary['propose_min_score']:g}").all()
    # with the field bar at 0 only the layout holds a strong issue back: one photo's mask of the 7
    assert set(issues.loc[strong & (issues["proposed"] != "yes"), "proposed"]) <= {
        "no: one photo of the 7-photo layout (only a swap keeps it)"}
    assert sum(summary["withheld"].values()) == int((strong & (issues["proposed"] != "yes")).sum())
    table, report = data.load_table(synth_root, corrections=again / "proposed_corrections.csv")
    assert not report.unmatched and summary["photos"] == len(table)
    for ref in (again / "review.html").read_text().split('src="')[1:]:
        path = ref.split('"')[0]
        if not path.startswith(("data:", "#")):
            assert (again / path).is_file(), path


def test_the_proposal_bar_holds_back_a_field_read_too_weakly(synth_root, audited, tmp_path):
    """--propose-quality on the audit's own run, its gender evidence replaced: 3 of the 24 people read
    confidently as the other gender, the rest as given. Gender then passes the gate (balanced accuracy
    ~0.87, quality ~0.75) with 3 strong issues, which the default bar (0.8) lists but does not propose,
    and a bar of 0.7 proposes."""
    import shutil

    run = tmp_path / "cv"
    shutil.copytree(audited[0] / "cv", run)
    oof = pd.read_csv(run / "oof_probs.csv")
    people = sorted(oof["person"].unique())
    odd = oof["person"].isin(people[:3])
    p_female = 0.02 + 0.96 * (oof["gender"].astype(int) == 1)
    p_female = p_female.where(~odd, 1 - p_female)
    oof["p_gender_1"], oof["p_gender_0"] = p_female, 1 - p_female
    oof.to_csv(run / "oof_probs.csv", index=False)
    signals = pd.read_csv(run / "oof_signals.csv").set_index("path")
    signals.loc[oof["path"], "hflip_gender_1"] = p_female.to_numpy()
    signals.loc[oof["path"], "hflip_gender_0"] = 1 - p_female.to_numpy()
    signals.reset_index().to_csv(run / "oof_signals.csv", index=False)

    def audit(out, *bar):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(["--quiet", "audit", str(synth_root), "--out", str(out), "--run", str(run), *bar]) == 0
        issues = pd.read_csv(out / "label_issues.csv", keep_default_na=False)
        return json.loads((out / "summary.json").read_text()), issues[issues["field"] == "gender"], printed.getvalue()

    summary, gender, printed = audit(tmp_path / "default")
    assert summary["fields"]["gender"]["audited"] and 0.5 <= summary["fields"]["gender"]["quality"] < 0.8
    assert set(gender.loc[gender["score"] >= 0.75, "person"]) == set(people[:3])
    assert gender["proposed"].str.match(r"no: (gender read at quality 0\.\d\d < 0\.8|score below)").all()
    assert summary["withheld"][next(k for k in summary["withheld"] if k.startswith("gender"))] == 3
    assert "not proposed, listed for review only: 3 issue(s)" in printed
    fixes = corrections.read(tmp_path / "default" / "proposed_corrections.csv")
    assert not {c.person for c in fixes} & set(people[:3])
    _, _, printed = audit(tmp_path / "gate", "--min-quality", "0.6", "--propose-quality", "0.3")
    assert "in fields read at quality >= 0.6 proposed" in printed
    summary, gender, _ = audit(tmp_path / "lower", "--propose-quality", "0.7")
    assert set(gender.loc[gender["proposed"] == "yes", "person"]) == set(people[:3])
    fixes = corrections.read(tmp_path / "lower" / "proposed_corrections.csv")
    assert {c.person for c in fixes if c.field == "gender"} == set(people[:3])


def test_options_that_shape_training_are_refused_with_run_and_bad_data_before_any_announcement(
        synth_root, audited, tmp_path, capsys):
    for extra, says in ((["--repeats", "2"], "--repeats: it shapes"), (["--folds", "3"], "--folds: it shapes"),
                        (["--folds", "3", "--jobs", "2"], "--jobs/--devices/--launcher, --folds: these shape")):
        assert main(["--quiet", "audit", str(synth_root), "--out", str(tmp_path / "a"), "--run",
                     str(audited[0] / "cv"), *extra]) == 2
        err = capsys.readouterr().err
        assert says in err and "with --run nothing is trained" in err, err
    assert not (tmp_path / "a").exists()
    assert main(["--quiet", "audit", str(tmp_path / "nothing"), "--out", str(tmp_path / "a"), *TINY]) == 2
    captured = capsys.readouterr()
    assert "no such file or folder" in captured.err and "audit: training" not in captured.out
    assert not (tmp_path / "a").exists()


def test_audit_refuses_a_blend_without_the_face_model(synth_root, tmp_path, capsys):
    assert main(["audit", str(synth_root), "--out", str(tmp_path / "a"), "--faces", "off", "--blend", "face"]) == 2
    assert "--faces off leaves the face model out" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_audit_rejects_a_bad_bar(synth_root, tmp_path, capsys):
    assert main(["--quiet", "audit", str(synth_root), "--out", str(tmp_path / "a"), "--min-quality", "1.5"]) == 2
    assert "--min-quality" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert main(["--quiet", "audit", str(synth_root), "--out", str(tmp_path / "a"), "--propose-quality", "-1"]) == 2
    assert "--propose-quality" in capsys.readouterr().err and not (tmp_path / "a").exists()


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
    # and a folder that does not exist is named as one (a new user got "no oof_probs.csv" for a typo)
    assert main(["--quiet", "audit", str(synth_root), "--out", str(out), "--run", str(tmp_path / "NOPE")]) == 2
    assert "NOPE: no such run folder" in capsys.readouterr().err


def test_evidence_of_repeated_runs_is_averaged_with_their_signals(synth_root, tmp_path):
    """--repeats: each run's oof_probs.csv (+ oof_signals.csv) averaged photo by photo."""
    from maskcls.audit.run import load_evidence
    from maskcls.config import load_config
    from maskcls.data.prepare import prepare

    prepared = prepare(load_config("demo", ["data.corrections=none"]), synth_root, log=lambda s: None)
    table = prepared.table
    runs = []
    for r, (p_female, margin) in enumerate(((0.9, 0.5), (0.5, -0.1))):
        run = tmp_path / f"cv-{r}"
        run.mkdir()
        frame = table[["path", "person", "gender", "mask", "age_group"]].copy()
        frame["p_gender_0"], frame["p_gender_1"] = 1 - p_female, p_female
        for t, k in (("mask", 3), ("age", 3)):
            for i in range(k):
                frame[f"p_{t}_{i}"] = 1 / k
        frame.to_csv(run / "oof_probs.csv", index=False)
        pd.DataFrame({"path": table["path"], "margin_gender": margin}).to_csv(run / "oof_signals.csv", index=False)
        runs.append(run)
    oof = load_evidence(runs, prepared, synth_root)
    assert len(oof) == len(table) and set(oof["path"]) == set(table["path"])
    assert oof["p_gender_1"].to_numpy() == pytest.approx(0.7) and oof["margin_gender"].to_numpy() == pytest.approx(0.2)
    assert oof["image"].notna().all()  # stems and ages come from the table
    one = load_evidence(runs[:1], prepared, synth_root)
    assert one["p_gender_1"].to_numpy() == pytest.approx(0.9)


def _cache_faces_that_know_gender(synth_root, cache, *, rng_seed=0):
    """Fill a face cache by hand: every training photo gets a descriptor that encodes its person's TRUE
    gender (as dlib's descriptor does on real faces, and the drawn demo faces cannot show)."""
    import numpy as np

    from maskcls.faces.cache import FaceCache, FaceRecord, content_key

    truth = pd.read_csv(synth_root / "truth" / "train_truth.csv")
    rng = np.random.default_rng(rng_seed)
    centre = {p: rng.normal(size=128) * 0.05 for p in truth["person"].unique()}
    items = []
    for rec in truth.itertuples():
        vec = centre[rec.person] + rng.normal(size=128) * 0.01
        vec[:8] += 0.3 if rec.gender == 1 else -0.3
        items.append((content_key(synth_root / rec.path),
                      FaceRecord(48, 64, "hog", 1.0, (4, 4, 40, 40), np.zeros((5, 2)), vec)))
    with FaceCache(cache) as c:
        c.put(items, "hog+haar")


def test_the_face_model_gives_a_second_opinion_that_the_gate_and_cards_show(synth_root, audited, tmp_path):
    """With faces that read gender (cached by hand), the audit reports each source's quality, the face
    model reads gender better than 1-epoch networks, the blend decides the gate, and each issue says what
    both sources think; --faces off and --blend cnn leave the networks' ranking as it was."""
    out, _ = audited
    cache = tmp_path / "cache"
    _cache_faces_that_know_gender(synth_root, cache)
    runs = {}
    for name, extra in (("blend", []), ("off", ["--faces", "off"]), ("cnn", ["--blend", "cnn"])):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(["--quiet", "audit", str(synth_root), "--out", str(tmp_path / name), "--run", str(out / "cv"),
                         "--min-quality", "0", "--propose-quality", "0", "--set", f"data.cache_dir={cache}",
                         *extra]) == 0
        runs[name] = (printed.getvalue(), json.loads((tmp_path / name / "summary.json").read_text()),
                      pd.read_csv(tmp_path / name / "label_issues.csv", keep_default_na=False),
                      pd.read_csv(tmp_path / name / "field_quality.csv"))
    printed, summary, issues, quality = runs["blend"]
    gender = summary["fields"]["gender"]
    assert summary["face_model"]["used"] and summary["face_model"]["blend"] == "tempered"
    # judged against the given labels, planted flips included: perfect reading scores below 1
    assert gender["quality_face"] > 0.6 and gender["quality_face"] > gender["quality_networks"]
    q_n, q_f = max(gender["quality_networks"], 0), gender["quality_face"]
    assert gender["face_weight"] == pytest.approx(q_f / (q_n + q_f), abs=1e-3) and gender["face_weight"] > 0.5
    assert gender["quality"] > gender["quality_networks"]
    assert "gender by source: networks quality" in printed and "face model quality" in printed
    assert "the gate judged their blend (--blend tempered" in printed
    assert {"quality_networks", "quality_face", "face_weight"} <= set(quality.columns)
    # every gender issue says what the face model thinks, as a probability of the suggestion
    says = issues.loc[issues["field"] == "gender", "face_model_says"]
    assert len(says) and says.str.fullmatch(r"(male|female) \d\.\d\d").all()
    # the planted gender flips are ranked higher with the face model than without
    truth = pd.read_csv(synth_root / "truth" / "injected_noise.csv")
    flipped = set(truth.loc[truth["field"] == "gender", "person"])

    def top_hits(frame):
        g = frame[frame["field"] == "gender"].sort_values("rank").head(len(flipped))
        return len(set(g["person"]) & flipped)

    assert top_hits(issues) == len(flipped) and top_hits(issues) > top_hits(runs["off"][2])
    # off: no face model anywhere; cnn: the face model is shown but the scores are the networks'
    assert not runs["off"][1]["face_model"]["used"] and set(runs["off"][2]["face_model_says"]) <= {"face model off"}
    assert runs["cnn"][1]["fields"]["gender"]["face_weight"] == 0
    pd.testing.assert_series_equal(runs["cnn"][2]["score"], runs["off"][2]["score"])
    assert (runs["cnn"][2]["face_model_says"] != "face model off").all()
    # the review page carries both opinions to the cards
    page = (tmp_path / "blend" / "review.html").read_text()
    assert "face model" in page and "networks trained here" in page


def test_with_run_a_setting_the_run_was_made_with_is_refused_not_ignored(synth_root, tmp_path, capsys):
    """A new user's --set data.corrections=FILE with --run changed nothing and said nothing; and an --out
    that is a file was called a folder holding other files."""
    run = tmp_path / "cv"
    run.mkdir()
    (run / "oof_probs.csv").write_text("")  # the refusal comes before the run is read
    for setting in ("data.corrections=none", "data.age_young=25", "model.name=resnet18"):
        assert main(["--quiet", "audit", str(synth_root), "--out", str(tmp_path / "a"), "--run", str(run),
                     "--set", setting]) == 2
        err = capsys.readouterr().err
        assert f"--set {setting.split('=')[0]}: with --run the audit reads" in err, err
    assert not (tmp_path / "a").exists()
    (tmp_path / "afile").write_text("")
    assert main(["--quiet", "audit", str(synth_root), "--out", str(tmp_path / "afile"), "--run", str(run)]) == 2
    assert "afile exists and is not a folder" in capsys.readouterr().err
