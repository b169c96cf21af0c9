"""Synthetic face photos in the competition layout, with known labels and planted label noise.

The real data may not be redistributed, so every command and test runs on this. The labels are in
the pixels but not trivially:
  mask    a mask over nose and mouth (5 styles), a mask pulled below the nose or onto the chin, none
  gender  hair length (usually long for women, short for men, but not always), jaw width, brow
          weight, beard shadow, lip colour and earrings: each a hint, none decisive alone
  age     forehead lines, crow's feet, folds beside the mouth and greying hair grow with age, with
          person-to-person spread, so the 30 and 60 cut-offs must be learned
among varied skin tone, hair colour, clothing, background, pose, scale and lighting.

Each person's attributes come from one seeded stream and each person is rendered from a seed of its
own, so the output is byte-identical for a given seed whatever the number of worker processes.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from .. import labels
from ..errors import UserError
from ..fileio import atomic_dir, claim_folder
from ..progress import bar as progress_bar

BASE_W, BASE_H = 384, 512  # drawing happens at the competition's size, then is resized
MASK_STYLES = ("surgical", "white", "black", "cloth", "pattern", "kf94")
SHARE_60 = 0.07  # real set: the 60+ group is ~7% of people (all aged exactly 60)
SHARE_FEMALE = 0.6
SHARE_UNDER_30 = 0.47
# Synthetic ids start with a letter so that they can never equal a real competition id (000001-006959,
# sometimes with a -1 suffix): corrections written for the real data, like the shipped ``known`` list,
# then match nobody here instead of silently relabelling synthetic people. No underscore, so the id
# still parses as the first part of a <id>_<gender>_<race>_<age> folder name.
ID_PREFIX = "s"


@dataclass(frozen=True)
class Person:
    index: int
    gender: int
    age: int
    skin: tuple[int, int, int]  # BGR
    hair: tuple[int, int, int]
    long_hair: bool
    beard: float  # 0 = none .. 1 = dark shadow
    face_w: float
    face_h: float
    background: tuple[int, int, int]
    clothes: tuple[int, int, int]
    earrings: bool
    masks: tuple[str, ...]  # styles for mask1..mask5; incorrect_mask reuses one of them
    suffix: str  # real folders mix .jpg, .jpeg and .png


def sample_people(n: int, rng: np.random.Generator, *, first_index: int = 0) -> list[Person]:
    """Draw n people with the real imbalance; when n >= 6 every gender x age group appears."""
    combos = [(g, a) for g in (0, 1) for a in (0, 1, 2)]
    people = []
    for i in range(n):
        if n >= 6 and i < 6:
            gender, group = combos[i]
        else:
            gender = int(rng.random() < SHARE_FEMALE)
            r = rng.random()
            group = 2 if r < SHARE_60 else (0 if r < SHARE_60 + SHARE_UNDER_30 else 1)
        age = 60 if group == 2 else int(rng.integers(18, 30) if group == 0 else rng.integers(30, 60))
        t = rng.beta(2.5, 2.0)  # skin tone, light to dark
        skin = np.array([185, 205, 240]) * (1 - t) + np.array([70, 95, 150]) * t
        base_hair = np.array([[20, 20, 25], [30, 45, 70], [40, 80, 130], [90, 150, 200], [30, 30, 110]])
        hair = base_hair[rng.choice(5, p=[0.45, 0.25, 0.15, 0.08, 0.07])].astype(float)
        grey = float(np.clip((age - 38) / 20 + rng.normal(0, 0.18), 0, 1))
        hair = hair * (1 - grey) + np.array([205, 205, 210]) * grey
        long_hair = bool(rng.random() < (0.85 if gender == 1 else 0.1))
        beard = float(rng.uniform(0.4, 1.0)) if gender == 0 and rng.random() < 0.5 else 0.0
        face_w = float(rng.normal(110 if gender == 0 else 95, 6))
        face_h = float(rng.normal(140 if gender == 0 else 134, 6))
        background = tuple(int(v) for v in rng.integers(60, 240, 3))
        clothes = tuple(int(v) for v in rng.integers(10, 230, 3))
        styles = tuple(str(s) for s in rng.choice(MASK_STYLES, 5))
        suffix = str(rng.choice([".jpg", ".jpeg", ".png"], p=[0.9, 0.07, 0.03]))
        people.append(Person(first_index + i, gender, age, tuple(int(v) for v in skin),
                             tuple(int(v) for v in hair), long_hair, beard, face_w, face_h, background,
                             clothes, bool(gender == 1 and rng.random() < 0.3), styles, suffix))
    return people


def train_people(people: int, seed: int) -> tuple[list[Person], np.random.Generator]:
    """The training people ``make_dataset(people=people, seed=seed)`` draws, with their hidden traits
    (hair, beard, face width: what a benchmark needs to explain what a model got wrong), and the
    generator it goes on to draw the rest of the dataset from."""
    rng = np.random.default_rng(seed)
    return sample_people(people, rng), rng


def person_id(index: int) -> str:
    """The id of the synthetic person with 0-based ``index``: ``s000001`` for index 0."""
    return f"{ID_PREFIX}{index + 1:06d}"


def _mask_colour(style: str, rng: np.random.Generator) -> tuple[int, int, int]:
    if style == "surgical":
        return (225, 200, 150)
    if style in ("white", "kf94"):
        return (240, 240, 238)
    if style == "black":
        return (30, 30, 32)
    return tuple(int(v) for v in rng.integers(40, 220, 3))


def _draw_mask(img: np.ndarray, cx: float, cy: float, fw: float, fh: float, style: str, drop: float,
               rng: np.random.Generator) -> None:
    """Draw a mask whose top edge sits ``drop`` face-heights below the nose bridge."""
    colour = _mask_colour(style, rng)
    top = cy + fh * (0.0 + drop)
    bottom = min(cy + fh * 0.95 + fh * drop * 0.35, cy + fh * 1.15)
    half = fw * 0.97
    pts = [(cx - half, top + 12), (cx - half * 0.4, top), (cx, top - (8 if style == "kf94" else 0)),
           (cx + half * 0.4, top), (cx + half, top + 12), (cx + half * 0.92, bottom - 30),
           (cx + half * 0.45, bottom - 4), (cx, bottom), (cx - half * 0.45, bottom - 4),
           (cx - half * 0.92, bottom - 30)]
    poly = np.round(np.array(pts)).astype(np.int32)
    cv2.fillPoly(img, [poly], colour, lineType=cv2.LINE_AA)
    shade = tuple(int(c * 0.75) for c in colour)
    if style == "surgical":
        for k in (0.3, 0.5, 0.7):
            y = int(top + (bottom - top) * k)
            cv2.line(img, (int(cx - half * 0.9), y), (int(cx + half * 0.9), y), shade, 2, cv2.LINE_AA)
    elif style == "pattern":
        dot = tuple(int(v) for v in rng.integers(0, 255, 3))
        for _ in range(14):
            x = int(rng.uniform(cx - half * 0.8, cx + half * 0.8))
            y = int(rng.uniform(top + 10, bottom - 15))
            cv2.circle(img, (x, y), 5, dot, -1, cv2.LINE_AA)
    elif style == "kf94":
        cv2.line(img, (int(cx), int(top - 8)), (int(cx), int(bottom)), shade, 2, cv2.LINE_AA)
    loop = (200, 200, 200) if style != "black" else (40, 40, 40)
    for side in (-1, 1):
        cv2.line(img, (int(cx + side * half), int(top + 14)), (int(cx + side * fw * 1.02), int(cy - fh * 0.02)),
                 loop, 2, cv2.LINE_AA)
        cv2.line(img, (int(cx + side * half * 0.93), int(bottom - 30)), (int(cx + side * fw * 1.02), int(cy + fh * 0.15)),
                 loop, 2, cv2.LINE_AA)


def _tone(colour: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * f, 0, 255)) for c in colour)


def _draw_body(img: np.ndarray, person: Person, cx: float, cy: float) -> None:
    """Shoulders, neck, long hair behind the shoulders, and ears (earrings too)."""
    fw, fh, skin, hair, aa = person.face_w, person.face_h, person.skin, person.hair, cv2.LINE_AA
    sh_w = 175 if person.gender == 0 else 150
    cv2.ellipse(img, (int(cx), BASE_H + 30), (sh_w, 125), 0, 180, 360, person.clothes, -1, aa)
    cv2.rectangle(img, (int(cx - fw * 0.45), int(cy + fh * 0.5)), (int(cx + fw * 0.45), int(cy + fh * 1.35)),
                  _tone(skin, 0.85), -1)
    if person.long_hair:  # hair falling behind the shoulders
        cv2.ellipse(img, (int(cx), int(cy + fh * 0.1)), (int(fw * 1.25), int(fh * 1.05)), 0, 0, 360, hair, -1, aa)
        cv2.rectangle(img, (int(cx - fw * 1.25), int(cy)), (int(cx + fw * 1.25), int(cy + fh * 1.35)), hair, -1)
    for side in (-1, 1):  # ears
        cv2.ellipse(img, (int(cx + side * fw * 0.98), int(cy + fh * 0.02)), (13, 24), 0, 0, 360, _tone(skin, 0.92), -1, aa)
        if person.earrings:
            cv2.circle(img, (int(cx + side * fw * 0.99), int(cy + fh * 0.2)), 5, (40, 200, 230), -1, aa)


def _draw_head(img: np.ndarray, person: Person, cx: float, cy: float) -> None:
    """The face (male jaws squarer: an ellipse plus a jaw block), the beard, and the hair on top."""
    fw, fh, skin, hair, aa = person.face_w, person.face_h, person.skin, person.hair, cv2.LINE_AA
    cv2.ellipse(img, (int(cx), int(cy)), (int(fw), int(fh)), 0, 0, 360, skin, -1, aa)
    if person.gender == 0:
        cv2.ellipse(img, (int(cx), int(cy + fh * 0.45)), (int(fw * 0.9), int(fh * 0.5)), 0, 0, 180, skin, -1, aa)
    if person.beard > 0:
        overlay = img.copy()
        cv2.ellipse(overlay, (int(cx), int(cy + fh * 0.45)), (int(fw * 0.92), int(fh * 0.52)), 0, 0, 180,
                    _tone(hair, 0.8), -1, aa)
        cv2.ellipse(overlay, (int(cx), int(cy + fh * 0.4)), (int(fw * 0.55), int(fh * 0.33)), 0, 0, 180, skin, -1, aa)
        cv2.addWeighted(overlay, 0.55 * person.beard, img, 1 - 0.55 * person.beard, 0, img)
    # Hair on top of the head; long hair also frames the face.
    cv2.ellipse(img, (int(cx), int(cy - fh * 0.5)), (int(fw * 1.06), int(fh * 0.62)), 0, 180, 360, hair, -1, aa)
    cv2.ellipse(img, (int(cx), int(cy - fh * 0.5)), (int(fw * 1.06), int(fh * 0.08)), 0, 0, 180, hair, -1, aa)
    if person.long_hair:
        for side in (-1, 1):
            cv2.ellipse(img, (int(cx + side * fw * 0.95), int(cy + fh * 0.1)), (int(fw * 0.22), int(fh * 0.75)),
                        0, 0, 360, hair, -1, aa)


def _draw_features(img: np.ndarray, person: Person, cx: float, cy: float, years: float) -> None:
    """Age lines, eyes, brows, nose and mouth; lines and folds come with ``years`` (the apparent age)."""
    fw, fh, skin, hair, aa = person.face_w, person.face_h, person.skin, person.hair, cv2.LINE_AA
    # Age: lines and folds darker than the skin, more and deeper with age.
    line = _tone(skin, 0.55)
    n_lines = int(np.clip((years - 24) / 8, 0, 5))
    for k in range(n_lines):
        y = int(cy - fh * (0.27 + 0.03 * k))
        cv2.ellipse(img, (int(cx), y + 30), (int(fw * 0.5), 30), 0, 230, 310, line, 3, aa)
    if years > 36:  # crow's feet
        for side in (-1, 1):
            ex = cx + side * fw * 0.62
            for dy in (-6, 0, 6):
                cv2.line(img, (int(ex), int(cy - fh * 0.12 + dy)), (int(ex + side * 12), int(cy - fh * 0.12 + dy * 1.8)),
                         line, 2, aa)
    for side in (-1, 1):  # eyes, brows
        ex, ey = int(cx + side * fw * 0.4), int(cy - fh * 0.12)
        cv2.ellipse(img, (ex, ey), (15, 7), 0, 0, 360, (245, 245, 245), -1, aa)
        cv2.circle(img, (ex, ey), 5, (40, 30, 25), -1, aa)
        if years > 44:  # eye bags
            cv2.ellipse(img, (ex, ey + 9), (13, 5), 0, 0, 180, line, 2, aa)
        brow_t = 6 if person.gender == 0 else 2
        cv2.line(img, (ex - 16, ey - 15), (ex + 16, ey - 17), _tone(hair, 0.7), brow_t, aa)
    # Nose and mouth (hidden by a worn mask, drawn anyway; the mask covers them).
    ny = int(cy + fh * 0.2)
    cv2.line(img, (int(cx), int(cy - fh * 0.05)), (int(cx - 8), ny), _tone(skin, 0.75), 2, aa)
    cv2.ellipse(img, (int(cx), ny), (14, 6), 0, 0, 180, _tone(skin, 0.7), 2, aa)
    if years > 34:  # folds beside the mouth
        for side in (-1, 1):
            cv2.ellipse(img, (int(cx + side * 22), int(cy + fh * 0.4)), (14, 26), 0, 270 if side < 0 else 180,
                        360 if side < 0 else 270, line, 2, aa)
    lips = (90, 80, 200) if person.gender == 1 else _tone(skin, 0.7)
    cv2.ellipse(img, (int(cx), int(cy + fh * 0.45)), (24, 8), 0, 0, 360, lips, -1, aa)


def _pose_and_light(img: np.ndarray, cx: float, cy: float, rng: np.random.Generator,
                    size: tuple[int, int]) -> np.ndarray:
    """The camera: one affine warp (pose, scale), exposure with a side light, sensor noise; then ``size``."""
    angle = rng.normal(0, 5)
    scale = rng.uniform(0.85, 1.12)
    tx, ty = rng.normal(0, 14, 2)
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[:, 2] += (tx, ty)
    img = cv2.warpAffine(img, m, (BASE_W, BASE_H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    side = np.linspace(-1, 1, BASE_W)[None, :, None] * rng.uniform(-0.18, 0.18)
    gain = rng.uniform(0.78, 1.18) * (1 + side)
    noise = rng.normal(0, 4, (BASE_H // 8, BASE_W // 8, 3)).astype(np.float32)
    noise = cv2.resize(noise, (BASE_W, BASE_H), interpolation=cv2.INTER_LINEAR)
    out = np.clip(img.astype(np.float32) * gain.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if size != (BASE_W, BASE_H):
        out = cv2.resize(out, size, interpolation=cv2.INTER_AREA)
    return out


def render(person: Person, mask_state: int, style: str, rng: np.random.Generator,
           size: tuple[int, int] = (BASE_W, BASE_H)) -> np.ndarray:
    """One photo (BGR uint8, size = (width, height)) of ``person`` in mask state 0/1/2.

    The steps draw back to front; ``rng`` is drawn from in a fixed order (apparent age, mask, camera),
    so a seed gives the same photo.
    """
    img = np.empty((BASE_H, BASE_W, 3), np.uint8)
    # Plain background with a soft vertical gradient, as in the real studio-like photos.
    grad = np.linspace(1.08, 0.9, BASE_H)[:, None, None]
    img[:] = np.clip(np.array(person.background, float)[None, None, :] * grad, 0, 255).astype(np.uint8)
    cx, cy = BASE_W / 2, BASE_H * 0.45
    _draw_body(img, person, cx, cy)
    _draw_head(img, person, cx, cy)
    years = person.age + rng.normal(0, 3.0)  # per-person spread of how old one looks
    _draw_features(img, person, cx, cy, years)
    if mask_state == 0:
        _draw_mask(img, cx, cy, person.face_w, person.face_h, style, 0.0, rng)
    elif mask_state == 1:
        # Pulled below the nose (most common), or down onto the chin.
        _draw_mask(img, cx, cy, person.face_w, person.face_h, style, 0.3 if rng.random() < 0.7 else 0.52, rng)
    return _pose_and_light(img, cx, cy, rng, size)


def _encode(img: np.ndarray, suffix: str) -> bytes:
    if suffix == ".png":
        ok, buf = cv2.imencode(".png", img)
    else:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok, "OpenCV failed to encode an image"
    return buf.tobytes()


@dataclass(frozen=True)
class _Job:
    person: Person
    seed: int
    kind: int  # 0 train, 1 eval
    swap_mask: bool
    size: tuple[int, int]
    out_dir: str
    names: tuple[str, ...]  # file names for the 7 photos, in PHOTO_STEMS order


def _render_person(job: _Job) -> list[tuple[str, int]]:
    """Render and write one person's 7 photos; returns (file name, true mask state) per photo."""
    cv2.setNumThreads(1)
    rng = np.random.default_rng([job.seed, job.kind, job.person.index])
    rows = []
    for stem, name in zip(labels.PHOTO_STEMS, job.names):
        state = labels.PHOTO_MASK[stem]
        if job.swap_mask and state in (1, 2):  # planted noise: the two files hold each other's photo
            state = 3 - state
        style = job.person.masks[int(stem[-1]) - 1] if stem.startswith("mask") else job.person.masks[0]
        img = render(job.person, state, style, rng, job.size)
        Path(job.out_dir, name).write_bytes(_encode(img, Path(name).suffix or ".jpg"))
        rows.append((name, state))
    return rows


def _run(jobs: list[_Job], workers: int, desc: str) -> list[list[tuple[str, int]]]:
    for job in jobs:
        Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    if workers <= 1:
        return [_render_person(j) for j in progress_bar(jobs, desc=desc, unit="person")]
    ctx = mp.get_context("spawn")  # fork after torch/OpenCV threads have started is unsafe
    with ctx.Pool(workers) as pool:
        return list(progress_bar(pool.imap(_render_person, jobs, chunksize=4), total=len(jobs), desc=desc, unit="person"))


def _true_label(mask_state: int, person: Person) -> int:
    """The class under the competition's cut-offs (30/60); truth files also carry the age itself."""
    return int(labels.encode(mask_state, person.gender, labels.AgeCutoffs().group(person.age)))


CORRECTION_COLUMNS = ["person_id", "field", "image", "from", "to", "agreement", "note"]


def _correction_row(person: str, field: str, image: str, recorded: str, true: str) -> tuple[str, ...]:
    """The corrections-CSV row that undoes one planted error (one injected_noise.csv row).

    A value error (gender, age) names the recorded value in ``from``, so applying the file to data
    that no longer holds it changes nothing. A swap (mask, two photos) carries in ``from`` the value
    the first named photo is recorded as (``incorrect`` for incorrect_mask+normal: the recorded mask
    comes from the file name), which is what a guard on swaps can check.
    """
    if recorded == "swap":
        first = image.split("+")[0]
        return (person, field, image, labels.MASK_NAMES[labels.PHOTO_MASK[first]], "swap", "planted",
                "planted noise: the two photos are swapped")
    return (person, field, image, recorded, true, "planted", f"planted noise: {field} recorded as {recorded}")


def _train_jobs(pop: list[Person], gender_noise: set[int], mask_noise: set[int], seed: int,
                size: tuple[int, int], images: Path) -> tuple[list[tuple], list[tuple], list[_Job]]:
    """train.csv's rows, injected_noise.csv's rows and the render jobs of the training people."""
    race = "Asian"
    train_rows, noise_rows, jobs = [], [], []
    for p in pop:
        recorded_gender = 1 - p.gender if p.index in gender_noise else p.gender
        pid = person_id(p.index)
        folder = f"{pid}_{labels.GENDER_NAMES[recorded_gender]}_{race}_{p.age}"
        train_rows.append((pid, labels.GENDER_NAMES[recorded_gender], race, p.age, folder))
        names = tuple(s + p.suffix for s in labels.PHOTO_STEMS)
        jobs.append(_Job(p, seed, 0, p.index in mask_noise, size, str(images / folder), names))
        if p.index in gender_noise:
            noise_rows.append((folder, "gender", "*", labels.GENDER_NAMES[recorded_gender], labels.GENDER_NAMES[p.gender]))
        if p.index in mask_noise:
            noise_rows.append((folder, "mask", "incorrect_mask+normal", "swap", "swap"))
    return train_rows, noise_rows, jobs


def _write_train_tables(tmp: Path, train_rows: list[tuple], noise_rows: list[tuple], jobs: list[_Job],
                        results: list[list[tuple[str, int]]]) -> None:
    """train/train.csv, and truth/ with train_truth.csv, injected_noise.csv and corrections.csv."""
    truth_rows = []
    for job, rows in zip(jobs, results):
        p = job.person
        folder = Path(job.out_dir).name
        for name, state in rows:
            truth_rows.append((folder, Path(name).stem, f"train/images/{folder}/{name}", state, p.gender, p.age,
                               _true_label(state, p)))
    (tmp / "truth").mkdir()
    pd.DataFrame(train_rows, columns=["id", "gender", "race", "age", "path"]).to_csv(tmp / "train" / "train.csv", index=False)
    pd.DataFrame(truth_rows, columns=["person", "image", "path", "mask", "gender", "age", "label"]).to_csv(
        tmp / "truth" / "train_truth.csv", index=False)
    pd.DataFrame(noise_rows, columns=["person", "field", "image", "recorded", "true"]).to_csv(
        tmp / "truth" / "injected_noise.csv", index=False)
    pd.DataFrame([_correction_row(*r) for r in noise_rows], columns=CORRECTION_COLUMNS).to_csv(
        tmp / "truth" / "corrections.csv", index=False)


def _write_eval_tables(tmp: Path, jobs: list[_Job], results: list[list[tuple[str, int]]],
                       rng: np.random.Generator) -> None:
    """eval/info.csv (unordered, as the real one is) and truth/eval_truth.csv."""
    eval_truth = []
    for job, rows in zip(jobs, results):
        p = job.person
        for name, state in rows:
            eval_truth.append((name, state, p.gender, p.age, _true_label(state, p), person_id(p.index)))
    eval_truth = [eval_truth[i] for i in rng.permutation(len(eval_truth))]
    pd.DataFrame({"ImageID": [r[0] for r in eval_truth], "ans": 0}).to_csv(tmp / "eval" / "info.csv", index=False)
    # person: whose photo it is, so that a study can resample eval people (their 7 photos together)
    pd.DataFrame(eval_truth, columns=["ImageID", "mask", "gender", "age", "label", "person"]).to_csv(
        tmp / "truth" / "eval_truth.csv", index=False)


def make_dataset(out: str | Path, *, people: int = 2700, eval_people: int = 1800, noise: float = 0.01,
                 seed: int = 0, size: tuple[int, int] = (BASE_W, BASE_H), workers: int | None = None) -> dict:
    """Write a synthetic dataset in the competition layout to ``out`` (which must not hold files).

    Returns a summary dict. Writes OUT/train, OUT/eval (if eval_people > 0) and OUT/truth with
    train_truth.csv, eval_truth.csv, injected_noise.csv (the label errors planted at rate ``noise``:
    a fraction ``noise`` of people, half with their gender recorded wrong, half with incorrect_mask
    and normal swapped) and corrections.csv (the fix of every planted error, in the format of
    ``maskcls.data.corrections``, guarded by ``from``). Person ids are ``s000001``, ``s000002``, ...
    (see ``person_id``), so corrections written for the real data never match synthetic people.
    """
    out = Path(out)
    if people < 1 or eval_people < 0:
        raise UserError("--people must be at least 1 and --eval-people at least 0")
    if not 0 <= noise <= 0.5:
        raise UserError(f"--noise is a fraction of people between 0 and 0.5, got {noise}")
    if workers is not None and workers < 0:
        raise UserError(f"--workers must be at least 0 (0: up to 4), got {workers}")
    claim_folder(out, flag="OUT")
    workers = workers or min(4, os.cpu_count() or 1)
    train_pop, rng = train_people(people, seed)
    eval_pop = sample_people(eval_people, rng, first_index=people)
    order = rng.permutation(people)
    n_noisy = int(round(noise * people))
    gender_noise = {int(i) for i in order[: (n_noisy + 1) // 2]}
    mask_noise = {int(i) for i in order[(n_noisy + 1) // 2: n_noisy]}
    with atomic_dir(out) as tmp:
        train_rows, noise_rows, jobs = _train_jobs(train_pop, gender_noise, mask_noise, seed, size,
                                                   tmp / "train" / "images")
        ejobs = [_Job(p, seed, 1, False, size, str(tmp / "eval" / "images"),
                      tuple(hashlib.sha1(f"{seed}/{p.index}/{s}".encode()).hexdigest() + ".jpg" for s in labels.PHOTO_STEMS))
                 for p in eval_pop]
        # One pool for train and eval people: starting worker processes costs about a second each time.
        results = _run(jobs + ejobs, workers, "rendering people")
        _write_train_tables(tmp, train_rows, noise_rows, jobs, results[: len(jobs)])
        if eval_people:
            _write_eval_tables(tmp, ejobs, results[len(jobs):], rng)
    return {"out": str(out), "people": people, "photos": people * 7, "eval_people": eval_people,
            "eval_photos": eval_people * 7, "noisy_people": n_noisy, "size": f"{size[0]}x{size[1]}", "seed": seed}
