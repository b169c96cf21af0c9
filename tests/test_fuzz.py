"""Property test: random broken datasets (competition layout and manifests) never crash a command.

validate, summary and train must end with exit 0 or 2 and, on 2, one message naming the problem:
never an uncaught exception, never a traceback.
"""

import shutil
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskcls.cli import main
from conftest import write_photo

GENDERS = st.sampled_from(["male", "female", "Male", "mail", "", "1", "x"])
AGES = st.one_of(st.integers(-5, 140).map(str), st.sampled_from(["", "abc", "30.5", " 40"]))
STEMS = ["mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal", "mask6", "._mask1", ".DS_Store"]
PHOTO_KIND = st.sampled_from(["jpg", "png", "jpeg", "garbage", "empty", "truncated"])
TEXT = st.text(alphabet=string.ascii_letters + string.digits + "_-. /,\"'é", max_size=12)


def _write(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind in ("jpg", "png", "jpeg"):
        write_photo(path.with_suffix("." + kind))
    elif kind == "garbage":
        path.write_bytes(b"\xff\xd8 definitely not a photo")
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        write_photo(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


person = st.fixed_dictionaries({
    "id": st.sampled_from(["000001", "000002", "001498-1", "", "abc"]), "gender": GENDERS, "age": AGES,
    "folder_ok": st.booleans(), "stems": st.lists(st.sampled_from(STEMS), max_size=8, unique=True),
    "kind": PHOTO_KIND, "blank_line": st.booleans(),
})


@st.composite
def layout(draw):
    people = draw(st.lists(person, min_size=0, max_size=5))
    extra_header = draw(st.sampled_from(["", ",extra"]))
    return people, extra_header, draw(st.booleans())  # booleans: with an eval folder


@st.composite
def manifest(draw):
    rows = draw(st.lists(st.fixed_dictionaries({
        "path": st.one_of(st.sampled_from(["a.jpg", "b.png", "../up.jpg", "/etc/passwd", "missing.jpg", "", "a.jpg"]),
                          TEXT),
        "person": st.one_of(st.sampled_from(["p1", "p2", ""]), TEXT),
        "mask": st.sampled_from(["wear", "incorrect", "normal", "", "2", "9", "masked"]),
        "gender": GENDERS, "age": AGES}), max_size=6))
    columns = draw(st.sampled_from(["path,person_id,mask,gender,age", "path,person_id,mask", "path,person_id",
                                    "person_id,mask", "path,person_id,age,gender"]))
    return rows, columns


def _build_layout(root: Path, spec) -> Path:
    people, extra_header, with_eval = spec
    images = root / "train" / "images"
    images.mkdir(parents=True)
    lines = ["id,gender,race,age,path" + extra_header]
    for i, p in enumerate(people):
        folder = f"{p['id'] or 'x'}_{p['gender'] or 'g'}_Asian_{p['age'].strip() or 'a'}" if p["folder_ok"] else f"bad{i}"
        lines.append(f"{p['id']},{p['gender']},Asian,{p['age']},{folder}" + ("," if extra_header else ""))
        if p["blank_line"]:
            lines.append("")
        for stem in p["stems"]:
            _write(images / folder / f"{stem}.jpg", p["kind"])
    (root / "train" / "train.csv").write_text("\n".join(lines) + "\n")
    if with_eval:
        _write(root / "eval" / "images" / "e1.jpg", "jpg")
        (root / "eval" / "info.csv").write_text("ImageID,ans\ne1.jpg,0\nnothere.jpg,0\n")
    return root


def _build_manifest(root: Path, spec) -> Path:
    rows, columns = spec
    root.mkdir(parents=True)
    write_photo(root / "a.jpg")
    write_photo(root / "b.png")
    write_photo(root.parent / "up.jpg")
    cols = columns.split(",")
    lines = [columns]
    for r in rows:
        values = {"path": r["path"], "person_id": r["person"], "mask": r["mask"], "gender": r["gender"], "age": r["age"]}
        lines.append(",".join('"' + values[c].replace('"', '""') + '"' for c in cols))
    m = root / "m.csv"
    m.write_text("\n".join(lines) + "\n")
    return m


TRAIN = ["--config", "demo", "--set", "model.name=test_resnet", "--set", "data.size=48x64", "--set",
         "train.epochs=1", "--set", "data.folds=2", "--set", "train.batch_size=4", "--set",
         "train.tensorboard=false", "--corrections", "none"]


CODES: list[int] = []


def _check(capsys, code: int) -> None:
    CODES.append(code)
    err = capsys.readouterr().err
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert "error:" in err or "problem(s)" in err


def _run_all(target: Path, tmp: Path, capsys, *, train: bool) -> None:
    for argv in (["validate", str(target)], ["summary", str(target)]):
        _check(capsys, main(["--quiet", *argv]))
    if train:
        _check(capsys, main(["--quiet", "train", str(target), "--out", str(tmp / "run"), *TRAIN]))


FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@FUZZ
@given(spec=layout())
def test_broken_layouts_never_crash(tmp_path_factory, capsys, spec):
    tmp = tmp_path_factory.mktemp("fuzz")
    try:
        _run_all(_build_layout(tmp / "data", spec), tmp, capsys, train=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@FUZZ
@given(spec=manifest())
def test_broken_manifests_never_crash(tmp_path_factory, capsys, spec):
    tmp = tmp_path_factory.mktemp("fuzz")
    try:
        _run_all(_build_manifest(tmp / "data", spec), tmp, capsys, train=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(spec=st.one_of(layout().map(lambda s: ("layout", s)), manifest().map(lambda s: ("manifest", s))))
def test_training_on_broken_data_is_exit_0_or_2(tmp_path_factory, capsys, spec):
    kind, inner = spec
    tmp = tmp_path_factory.mktemp("fuzz")
    try:
        build = _build_layout if kind == "layout" else _build_manifest
        _run_all(build(tmp / "data", inner), tmp, capsys, train=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
