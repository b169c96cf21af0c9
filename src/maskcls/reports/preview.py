"""`maskcls augment-preview`: what a preset does to real photos, before training on it.

Each row is one person: the original photo (with the crop box drawn when the preset crops) beside
several augmented draws, exactly as training would produce them (same preprocessing, same seeds).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .. import labels
from ..config import Config
from ..data.faces import FaceBoxes
from ..data.images import read_rgb, sample_seed
from ..data.table import load_table, refuse_output_inside
from ..choices import note_legacy, parse_augment, split_legacy
from ..data.transforms import train_transform
from ..errors import UserError
from ..fileio import check_replaceable
from ..figures import save

# The crop box's colour and the word the title uses for it: one table, so the legend names the colours drawn.
BOX_COLOURS = {"face": ("lime", "green: face found"), "fallback": ("red", "red: no face found, centre crop"),
               "center": ("deepskyblue", "blue: centre crop")}


def wrap_name(name: str, width: int) -> str:
    """A folder name on lines of about ``width``, broken only after underscores (an id or an age is never
    cut in two: "s000031_female_Asian_2" / "4" read as age 2); a part longer than a line is cut."""
    lines: list[str] = []
    for part in name.split("_"):
        if len(part) > width:  # no underscore to break at: cut, each piece on a line of its own
            lines += textwrap.wrap(part, width)
        elif lines and len(lines[-1]) + 1 + len(part) <= width:
            lines[-1] += "_" + part
        else:
            if lines:
                lines[-1] += "_"  # the underscore stays, at the end of the line: the name reads back whole
            lines.append(part)
    return "\n".join(lines)


def _check_preview(data, preset: str, out, *, cfg: Config, people: int, draws: int, force: bool) -> tuple[str, str]:
    """Refuse a bad preset, grid size or output before any photo is read; returns (augmentation, crop)."""
    try:
        augment, legacy = split_legacy(preset)
        parse_augment(augment)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if legacy is not None:
        note_legacy(preset, augment, legacy)
    if not (1 <= people <= 50 and 1 <= draws <= 20):
        raise UserError("--people must be 1..50 and --draws 1..20 (a grid larger than that is unreadable)")
    refuse_output_inside(data, out)
    check_replaceable(out, force=force)
    if Path(out).suffix.lower() != ".png":
        raise UserError(f"{out}: the preview is a PNG; name it something.png")
    return augment, legacy or cfg.data.crop


def _pick_photos(table: pd.DataFrame, people: int, seed: int) -> tuple[list[str], list[str], list[int]]:
    """One photo of each of ``people`` people drawn with ``seed``; returns (paths, mask states, table rows)."""
    rng = np.random.default_rng(seed)
    persons = table["person"].unique()
    chosen = rng.choice(persons, size=min(people, len(persons)), replace=False)
    paths, states, indices = [], [], []
    mask_names = labels.by_field("mask").names()
    for r, person in enumerate(chosen):
        rows = table[table["person"] == person]
        # Row r shows mask state r % 3 (worn, incorrect, not worn) where the person has it: a preset
        # is judged on every state the model must tell apart, not on unmasked faces only.
        want = r % len(mask_names)
        pick = rows[rows["mask"] == want] if (rows["mask"] == want).any() else rows
        row = pick.iloc[int(rng.integers(len(pick)))]
        paths.append(row["path"])
        indices.append(int(row.name))  # its place in the table: the photo's own augmentation seed
        states.append(mask_names[int(row["mask"])] if not pd.isna(row["mask"]) else "unknown")
    return paths, states, indices


def _draw_row(axes, path: str, state: str, index: int, transform, *, crop: str, boxes, draws: int,
              seed: int) -> str | None:
    """One row of the grid: the original (with its crop box) then ``draws`` augmented versions; returns
    which kind of box was drawn ("center", "face", "fallback") or None."""
    original = read_rgb(path)
    axes[0].imshow(original)
    # names in full: a long folder name is wrapped, never cut
    folder = wrap_name(Path(path).parent.name, 22) or "."
    axes[0].set_title(f"{folder}\n{Path(path).name} ({state})", fontsize=6)
    kind = None
    if crop != "none":
        x0, y0, x1, y1 = transform.preprocess.box(original, path)
        kind = "center" if crop == "center" else ("face" if (boxes or {}).get(path) is not None else "fallback")
        axes[0].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, linewidth=1.5,
                                    edgecolor=BOX_COLOURS[kind][0]))
    for d in range(draws):
        # each photo its own draw, as in training (sample_seed): not one draw shared down a column
        axes[d + 1].imshow(transform(original, seed=sample_seed(seed * 1000 + d, index), key=path))
        axes[d + 1].set_title(f"draw {d + 1}", fontsize=7)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return kind


def augment_preview(data: str | Path, preset: str, out: str | Path, *, cfg: Config, people: int = 4,
                    draws: int = 5, seed: int = 0, force: bool = False) -> dict:
    """Write a PNG grid: ``people`` rows, the original then ``draws`` augmented versions of one photo each,
    after the config's crop (``data.crop``; a preset that spells a crop the old way, ``facecrop+hflip``,
    sets it)."""
    augment, crop = _check_preview(data, preset, out, cfg=cfg, people=people, draws=draws, force=force)
    table, _ = load_table(data, cutoffs=cfg.cutoffs, corrections="none")
    paths, states, indices = _pick_photos(table, people, seed)
    faces = None
    boxes = None
    if crop == "face":
        faces = FaceBoxes(margin=cfg.data.face_margin, size=cfg.size, cache_dir=cfg.data.cache_dir or None)
        boxes = faces.boxes(paths, progress=False)
    transform = train_transform(augment, cfg.size, crop=crop, boxes=boxes, detector=faces)
    fig = Figure(figsize=(1.6 * (draws + 1), 2.3 * len(paths)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(paths), draws + 1))
    used = {_draw_row(axes[r], path, states[r], indices[r], transform, crop=crop, boxes=boxes, draws=draws, seed=seed)
            for r, path in enumerate(paths)} - {None}
    legend = "; ".join(BOX_COLOURS[k][1] for k in BOX_COLOURS if k in used)
    title = f"augmentation {augment}, crop {crop}, at {cfg.data.size}" + (f" (box {legend})" if legend else "")
    fig.suptitle(title, fontsize=9)
    save(fig, out)
    return {"out": str(out), "people": len(paths), "fallbacks": faces.fallbacks if faces else None,
            "mask_states": states, "titles": [ax.get_title() for ax in axes[:, 0]], "legend": legend,
            "box_colours": sorted(BOX_COLOURS[k][0] for k in used)}
