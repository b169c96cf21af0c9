"""The audit core on hand-made out-of-fold tables: planted errors found, one issue per person, swaps as one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from maskcls import labels
from maskcls.audit import rank
from maskcls.audit.rank import find_issues, precision_recall_curve, score_against_truth, to_corrections
from maskcls.data import corrections

CUT = labels.AgeCutoffs()
AGES = (22, 35, 47, 60, 27, 52)  # true ages, cycled over people: every age group is present
SWAP = {"incorrect_mask": 2, "normal": 1}  # what the two photos of a swapped person really show
EASY, HARD = (0.95, 0.99), (0.55, 0.75)  # the model's probability for the true class


def _probs(rng, k: int, true: int, band=(0.95, 0.99)) -> np.ndarray:
    """Probabilities for k classes that favour ``true`` with p[true] drawn from ``band``."""
    p = np.empty(k)
    p[true] = rng.uniform(*band)
    p[np.arange(k) != true] = rng.dirichlet(np.ones(k - 1)) * (1 - p[true])
    return p


def _row(person: str, stem: str, mask, gender, age, pm, pg, pa, fold: int = 0) -> dict:
    age_group = "" if age == "" else CUT.group(int(age))
    label = "" if "" in (mask, gender, age) else labels.encode(mask, gender, age_group)
    joint = np.einsum("m,g,a->mga", pm, pg, pa).reshape(-1)  # class = mask*6 + gender*3 + age
    row = {"path": f"{person}/{stem}.jpg", "person": person, "image": stem, "mask": mask, "gender": gender,
           "age_group": age_group, "age": age, "label": label, "fold": fold}
    row.update({f"p{c}": joint[c] for c in range(labels.NUM_CLASSES)})
    row.update({f"p_mask_{i}": v for i, v in enumerate(pm)})
    row.update({f"p_gender_{i}": v for i, v in enumerate(pg)})
    row.update({f"p_age_{i}": v for i, v in enumerate(pa)})
    return row


def make_oof(people: int = 40, *, gender_flips=(), swaps=(), age_errors=None, odd_photo=None, seed: int = 0):
    """A competition-layout OOF table whose probabilities show the truth; planted errors are in the labels.

    Returns (oof, names): names[i] is person i's folder name (recorded gender and age, as on disk).
    odd_photo=(i, stem): that photo of person i looks confidently like the other gender.
    """
    rng = np.random.default_rng(seed)
    age_errors = age_errors or {}
    rows, names = [], []
    for i in range(people):
        # A confident model with some hard people (as real ones have): the hard tail keeps each class's
        # average confidence, cleanlab's threshold for it, below what a clear photo of that class gets.
        band = HARD if i % 8 == 4 else EASY
        gender, age = i % 2, AGES[i % len(AGES)]
        rec_gender = 1 - gender if i in gender_flips else gender
        rec_age = age_errors.get(i, age)
        person = f"{i:06d}_{labels.GENDER_NAMES[rec_gender]}_Asian_{rec_age}"
        names.append(person)
        for stem in labels.PHOTO_STEMS:
            true_mask = SWAP.get(stem, labels.PHOTO_MASK[stem]) if i in swaps else labels.PHOTO_MASK[stem]
            shown_gender = 1 - gender if odd_photo == (i, stem) else gender
            pg = _probs(rng, 2, shown_gender, band=(0.995, 0.999) if odd_photo == (i, stem) else band)
            rows.append(_row(person, stem, labels.PHOTO_MASK[stem], rec_gender, rec_age,
                             _probs(rng, 3, true_mask, band), pg, _probs(rng, 3, CUT.group(age), band), fold=i % 5))
    return pd.DataFrame(rows), names


def _found(issues: pd.DataFrame) -> set[tuple[str, str, str]]:
    return set(zip(issues["person"], issues["field"], issues["photos"]))


PLANTED = dict(gender_flips=(3, 10, 25), swaps=(7, 19), age_errors={30: 45})


@pytest.fixture(scope="module")
def planted():
    oof, names = make_oof(**PLANTED)
    return oof, names, find_issues(oof)


def test_finds_exactly_the_planted_errors_one_issue_each(planted):
    oof, names, issues = planted
    assert list(issues.columns) == rank.ISSUE_COLUMNS
    assert _found(issues) == {
        (names[3], "gender", "*"), (names[10], "gender", "*"), (names[25], "gender", "*"),
        (names[7], "mask", "incorrect_mask+normal"), (names[19], "mask", "incorrect_mask+normal"),
        (names[30], "age", "*"),
    }
    assert len(issues) == 6  # one per person for gender, not seven; one per swap, not two
    assert issues["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert issues["score"].is_monotonic_decreasing
    assert ((issues["score"] > 0.5) & (issues["score"] <= 1)).all()


def test_issue_fields_say_what_to_fix(planted):
    _, names, issues = planted
    by = issues.set_index("person")
    g = by.loc[names[3]]  # recorded male, really female
    assert (g.given, g.suggested, g.fix_image, g.fix_from, g.fix_to) == ("male", "female", "*", "male", "female")
    s = by.loc[names[7]]
    assert (s.given, s.suggested, s.fix_image, s.fix_from, s.fix_to) == (
        "incorrect+normal", "swap", "incorrect_mask+normal", "incorrect", "swap")
    a = by.loc[names[30]]  # recorded 45, really 22: the fix is an age in years inside <30
    assert (a.given, a.suggested, a.fix_image, a.fix_from, a.fix_to) == ("30-59", "<30", "*", "45", "29")


def test_representative_ages_follow_the_cutoffs():
    cut = labels.AgeCutoffs(young=29, old=57)
    assert rank._representative_age(0, 1, 40, cut) == 28
    assert rank._representative_age(2, 1, 40, cut) == 57
    assert rank._representative_age(1, 0, 20, cut) == 29  # nearest middle age to the given one
    assert rank._representative_age(1, 2, 60, cut) == 56
    assert rank._representative_age(1, 2, None, cut) == 56


def test_one_odd_photo_does_not_flag_the_person():
    # Person 5 is female; one of her photos looks confidently male, the other six agree with "female".
    oof, names = make_oof(odd_photo=(5, "normal"), seed=1)
    photo_level = oof[(oof.person == names[5]) & (oof.image == "normal")]
    assert float(photo_level["p_gender_0"].iloc[0]) > 0.99
    issues = find_issues(oof, fields=("gender",))
    assert names[5] not in set(issues["person"])
    assert issues.empty


def test_string_table_as_read_from_csv_gives_the_same_issues(planted, tmp_path):
    oof, _, issues = planted
    oof.to_csv(tmp_path / "oof_probs.csv", index=False)
    again = find_issues(pd.read_csv(tmp_path / "oof_probs.csv", dtype=str, keep_default_na=False))
    pd.testing.assert_frame_equal(again, issues)
    # The in-memory table's nullable integers (<NA> where unknown) work too.
    nullable = oof.astype({c: "Int64" for c in ("mask", "gender", "age_group", "age")})
    pd.testing.assert_frame_equal(find_issues(nullable), issues)


def _manifest(n: int, *, wrong_gender: int | None, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """One photo per person, arbitrary stems, no ages, every third gender unknown; strings as read
    with keep_default_na=False."""
    rng = np.random.default_rng(seed)
    rows, names = [], []
    for i in range(n):
        person, gender, mask = f"p{i:03d}", i % 2, i % 3
        names.append(person)
        rec = "" if i % 3 == 2 else (1 - gender if i == wrong_gender else gender)
        rows.append(_row(person, f"img_{i}", mask, rec, "", _probs(rng, 3, mask), _probs(rng, 2, gender),
                         np.full(3, 1 / 3)))
    return pd.DataFrame(rows).astype(str).replace("nan", ""), names


@pytest.mark.parametrize("people", [30, 6])  # cleanlab, and the small-data fallback
def test_manifest_one_photo_per_person_with_missing_labels(people):
    oof, names = _manifest(people, wrong_gender=4)
    issues = find_issues(oof)  # no ages at all: the age field is skipped without error
    assert _found(issues) == {(names[4], "gender", "*")}
    assert issues.iloc[0]["fix_from"] == "female" and issues.iloc[0]["fix_to"] == "male"


def test_degenerate_inputs_do_not_crash():
    oof, _ = _manifest(5, wrong_gender=None)
    oof["gender"] = ""  # nothing labelled
    assert find_issues(oof, fields=("gender",)).empty
    oof["gender"] = "1"  # one class only
    assert find_issues(oof, fields=("gender",)).empty
    assert list(find_issues(oof.iloc[:0], fields=("gender", "mask")).columns) == rank.ISSUE_COLUMNS
    one, _ = _manifest(2, wrong_gender=0)  # two people, two classes
    assert len(find_issues(one.iloc[:2], fields=("gender",))) <= 1


def test_bad_input_is_named():
    oof, _ = make_oof(people=4)
    with pytest.raises(ValueError, match="missing column.*p_gender_1, age_group"):
        find_issues(oof.drop(columns=["p_gender_1", "age_group"]))
    # Only the requested fields' columns are needed.
    assert find_issues(oof.drop(columns=["age_group", "p_age_0"]), fields=("gender",)).empty
    with pytest.raises(ValueError, match="unknown field"):
        find_issues(oof, fields=("hair",))
    bad = oof.astype({"gender": object})
    bad.loc[0, "gender"] = "male"
    with pytest.raises(ValueError, match="column gender"):
        find_issues(bad)
    bad = oof.copy()
    bad.loc[0, "p_mask_1"] = 1.7
    with pytest.raises(ValueError, match="p_mask_1"):
        find_issues(bad)


def test_to_corrections_round_trips_and_restores_the_truth(planted, tmp_path):
    oof, names, issues = planted
    table = oof[["person", "image", "mask", "gender", "age"]].copy()
    table.insert(1, "person_id", table["person"].str.split("_").str[0])
    fixes = to_corrections(issues)
    assert list(fixes.columns) == rank.CORRECTION_COLUMNS
    assert set(fixes["agreement"]) == {"audit"}
    assert fixes.iloc[0]["note"].startswith("score ") and fixes.iloc[0]["note"].endswith(", rank 1")
    path = tmp_path / "proposed_corrections.csv"
    fixes.to_csv(path, index=False)
    fixed, report = corrections.apply(table, corrections.read(path))
    assert not report.skipped and not report.unmatched
    assert len(report.changes) == 3 * 7 + 2 * 2 + 7
    truth, _ = make_oof()  # same seed, no planted errors
    assert (fixed["gender"].to_numpy() == truth["gender"].to_numpy()).all()
    assert (fixed["mask"].to_numpy() == np.where(
        oof["person"].isin([names[7], names[19]]) & oof["image"].isin(SWAP),
        oof["image"].map(SWAP).fillna(-1), oof["mask"])).all()
    assert (CUT.groups(fixed["age"].to_numpy(int)) == truth["age_group"].to_numpy(int)).all()
    # Issues read back from label_issues.csv (numbers parsed by pandas) give the same corrections.
    issues.to_csv(tmp_path / "label_issues.csv", index=False)
    pd.testing.assert_frame_equal(to_corrections(pd.read_csv(tmp_path / "label_issues.csv")), fixes)


def _issues(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["person", "field", "photos", "fix_to"])
    frame["rank"] = range(1, len(frame) + 1)
    return frame


NOISE = pd.DataFrame([
    ("a", "gender", "*", "female", "male"),
    ("b", "gender", "*", "male", "female"),
    ("c", "mask", "incorrect_mask+normal", "swap", "swap"),
    ("d", "mask", "incorrect_mask+normal", "swap", "swap"),
    ("e", "gender", "*", "male", "female"),
], columns=["person", "field", "image", "recorded", "true"])


def test_score_against_truth_counts():
    issues = _issues([
        ("a", "gender", "*", "male"),                      # hit
        ("c", "mask", "normal+incorrect_mask", "swap"),    # hit (same photos, any order)
        ("x", "gender", "*", "female"),                    # miss
        ("d", "mask", "incorrect_mask", "normal"),         # a single photo of d is not the planted swap
        ("b", "gender", "*", "female"),                    # hit
    ])
    s = score_against_truth(issues, NOISE)
    assert s["gender"] == {"precision": 2 / 3, "recall": 2 / 3, "found": 2, "flagged": 3, "planted": 3}
    assert s["mask_swap"] == {"precision": 1.0, "recall": 0.5, "found": 1, "flagged": 1, "planted": 2}
    assert s["age"] == {"precision": None, "recall": None, "found": 0, "flagged": 0, "planted": 0}
    assert s["mask_photo"]["flagged"] == 1 and s["mask_photo"]["planted"] == 0
    assert s["all"] == {"precision": 3 / 5, "recall": 3 / 5, "found": 3, "flagged": 5, "planted": 5}

    curve = precision_recall_curve(issues, NOISE)
    allc = curve[curve.kind == "all"]
    assert allc["rank"].tolist() == [1, 2, 3, 4, 5]
    assert allc["precision"].tolist() == pytest.approx([1, 1, 2 / 3, 2 / 4, 3 / 5])
    assert allc["recall"].tolist() == pytest.approx([1 / 5, 2 / 5, 2 / 5, 2 / 5, 3 / 5])
    g = curve[curve.kind == "gender"]
    assert g["rank"].tolist() == [1, 3, 5] and g["recall"].tolist() == pytest.approx([1 / 3, 1 / 3, 2 / 3])
    assert curve[curve.kind == "age"].empty


def test_score_against_truth_on_found_issues(planted):
    _, names, issues = planted
    noise = pd.DataFrame([
        (names[3], "gender", "*", "male", "female"), (names[10], "gender", "*", "female", "male"),
        (names[25], "gender", "*", "male", "female"),
        (names[7], "mask", "incorrect_mask+normal", "swap", "swap"),
        (names[19], "mask", "incorrect_mask+normal", "swap", "swap"),
        (names[30], "age", "*", "45", "22"),
    ], columns=["person", "field", "image", "recorded", "true"])
    s = score_against_truth(issues, noise)
    assert {k: (v["precision"], v["recall"]) for k, v in s.items()} == {
        k: (1.0, 1.0) for k in ("gender", "mask_swap", "age", "all")}


# ---------------------------------------------------------------- gate, signals, proposals


def _blur(oof: pd.DataFrame, field: str, seed: int = 0) -> pd.DataFrame:
    """The same table with a chance-level model for ``field``: random probabilities, unrelated to the photo."""
    rng = np.random.default_rng(seed)
    cols = labels.task_prob_columns(labels.by_field(field))
    out = oof.copy()
    out[cols] = rng.dirichlet(np.ones(len(cols)), size=len(oof))
    return out


def test_gate_blocks_a_field_read_at_chance_and_says_why():
    oof, names = make_oof(**PLANTED)
    blind = _blur(oof, "gender")
    quality = rank.field_quality(blind).set_index("field")
    assert not quality.loc["gender", "passed"] and quality.loc["mask", "passed"] and quality.loc["age", "passed"]
    assert quality.loc["gender", "chance"] == 0.5 and abs(quality.loc["gender", "balanced_accuracy"] - 0.5) < 0.2
    assert "not audited" in quality.loc["gender", "reason"] and "chance 0.50" in quality.loc["gender", "reason"]
    assert quality.loc["mask", "balanced_accuracy"] > 0.9 and quality.loc["mask", "chance"] == pytest.approx(1 / 3)
    # the bar moves the verdict: a perfect reading needed -> nothing passes; any reading -> all but blind ones
    assert not rank.field_quality(blind, min_quality=1.0)["passed"].any()
    lax = rank.field_quality(oof, min_quality=0.0)
    assert lax["passed"].all()
    with pytest.raises(ValueError, match="min_quality"):
        rank.field_quality(oof, min_quality=2)


def test_gate_counts_people_for_person_fields_and_photos_for_masks():
    oof, _ = make_oof(people=24)
    quality = rank.field_quality(oof).set_index("field")
    assert quality.loc["gender", "units"] == 24 and quality.loc["mask", "units"] == 24 * 7
    one_class = oof.assign(gender=1)
    q = rank.field_quality(one_class).set_index("field")
    assert not q.loc["gender", "passed"] and "one class" in q.loc["gender", "reason"]


def _ambiguous(people: int = 40, seed: int = 3) -> tuple[pd.DataFrame, list[str]]:
    """Every person's gender read at a middling 0.6-0.75 for the recorded label (a weak model)."""
    oof, names = make_oof(people=people, seed=seed)
    rng = np.random.default_rng(seed)
    p_given = rng.uniform(0.6, 0.75, len(names))
    by_person = dict(zip(names, p_given))
    g = oof["gender"].astype(int).to_numpy()
    p = oof["person"].map(by_person).to_numpy()
    oof["p_gender_0"] = np.where(g == 0, p, 1 - p)
    oof["p_gender_1"] = 1 - oof["p_gender_0"]
    return oof, names


def test_training_margins_rank_a_planted_error_first():
    oof, names = _ambiguous()
    # person 11 is really the other gender: the OOF model is no surer of that than of anyone, but
    # training could not fit the recorded label (margin well below the others')
    rng = np.random.default_rng(0)
    oof["margin_gender"] = rng.uniform(0.3, 0.9, len(oof))
    oof.loc[oof["person"] == names[11], "margin_gender"] = -0.6
    without = find_issues(oof, fields=("gender",), signals=())
    with_margins = find_issues(oof, fields=("gender",), signals=("margin",))
    assert with_margins.iloc[0]["person"] == names[11] and with_margins.iloc[0]["rank"] == 1
    assert names[11] not in set(without["person"])  # the probabilities alone do not single them out
    assert (with_margins["person"] == names[11]).sum() == 1  # one issue for the person, not one per photo


def test_margins_must_be_margins():
    oof, _ = make_oof(people=12)
    with pytest.raises(ValueError, match="margin_gender"):
        find_issues(oof.assign(margin_gender=3.0), fields=("gender",), signals=("margin",))


def test_hflip_probabilities_are_averaged_in():
    oof, names = make_oof(people=24)
    flipped = oof.copy()
    for k in range(2):
        flipped[f"hflip_gender_{k}"] = 1.0 - oof[f"p_gender_{k}"]  # the mirror image says the opposite
    plain = rank._evidence_probs(oof, "gender", set())
    mixed = rank._evidence_probs(flipped, "gender", {"hflip"})
    assert np.allclose(mixed, 0.5)  # the mean of a photo's and its opposite's probabilities
    assert np.allclose(rank._evidence_probs(flipped, "gender", set()), plain)  # not asked: not used


def test_proposals_keep_only_issues_past_the_score_threshold(planted):
    _, _, issues = planted
    low = issues.assign(score=np.linspace(0.9, 0.55, len(issues)))
    kept = rank.proposals(low)
    assert (kept["score"] >= rank.PROPOSE_MIN_SCORE).all() and 0 < len(kept) < len(low)
    assert len(rank.proposals(low, min_score=0.0)) == len(low)
    assert rank.proposals(low, min_score=0.95).empty


def test_default_signals_use_margins_for_masks_only_and_names_are_checked():
    oof, names = make_oof(people=24, swaps=(7,))
    assert rank._signals(None, ("mask", "gender")) == {"mask": {"hflip", "margin"}, "gender": {"hflip"}}
    with pytest.raises(ValueError, match="unknown signal"):
        find_issues(oof, signals=("aum",))


def _quality(**q: float) -> pd.DataFrame:
    return pd.DataFrame({"field": list(q), "quality": list(q.values())})


def test_a_single_photo_mask_change_is_listed_but_not_proposed_in_the_seven_photo_layout():
    oof, names = make_oof(people=24, swaps=(7,))
    odd = (oof["person"] == names[5]) & (oof["image"] == "mask2")  # one photo looks confidently unmasked
    oof.loc[odd, ["p_mask_0", "p_mask_1", "p_mask_2"]] = [0.01, 0.01, 0.98]
    issues = find_issues(oof, fields=("mask",))
    one = issues[(issues["person"] == names[5]) & (issues["photos"] == "mask2")]
    swap = issues[(issues["person"] == names[7]) & (issues["fix_to"] == "swap")]
    assert len(one) == 1 and len(swap) == 1 and one["score"].iloc[0] >= rank.PROPOSE_MIN_SCORE
    layout = rank.layout_people(oof)
    assert layout == set(names)  # every person here has the seven photos, the swapped one included
    kept = rank.proposals(issues, layout=layout)
    assert names[5] not in set(kept["person"]) and names[7] in set(kept["person"])
    verdict = rank.proposal_verdicts(issues, layout=layout)[one.index[0]]
    assert "7-photo layout" in verdict
    # Without the layout (a manifest of other photos) the same issue is proposed.
    assert names[5] in set(rank.proposals(issues)["person"])
    # A person missing a photo, or with photos of other names, is not in the layout.
    assert names[5] not in rank.layout_people(oof[~odd])
    renamed = oof.assign(image=oof["image"].where(oof["person"] != names[5], "shot"))
    assert names[5] not in rank.layout_people(renamed) and names[6] in rank.layout_people(renamed)
    assert names[5] in set(rank.proposals(find_issues(renamed, fields=("mask",)),
                                          layout=rank.layout_people(renamed))["person"])


def test_proposals_need_a_field_read_far_better_than_the_gate(planted):
    _, names, issues = planted
    strong = issues[issues["score"] >= rank.PROPOSE_MIN_SCORE]
    assert {"gender", "mask"} <= set(strong["field"])
    weak_gender = _quality(gender=0.6, mask=0.9, age=0.9)
    kept = rank.proposals(issues, quality=weak_gender)
    assert "gender" not in set(kept["field"]) and "mask" in set(kept["field"])
    verdicts = rank.proposal_verdicts(issues, quality=weak_gender)
    assert set(verdicts[(issues["field"] == "gender") & (issues["score"] >= 0.75)]) == {
        "gender read at quality 0.60 < 0.8"}
    # the bar is the caller's: at 0.5 the same gender issues are proposed
    assert set(strong.loc[strong["field"] == "gender", "person"]) <= set(
        rank.proposals(issues, quality=weak_gender, min_quality=0.5)["person"])
    # a field the table does not name is not proposed (its quality is unknown)
    assert "age" not in set(rank.proposals(issues, quality=_quality(gender=0.9, mask=0.9))["field"])
    with pytest.raises(ValueError, match="min_quality"):
        rank.proposal_verdicts(issues, min_quality=1.5)
