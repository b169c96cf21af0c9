"""Figures: each writes a real PNG, survives sparse metrics, and encodes what it claims to (colour by count,
support labels, best-epoch marker)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from maskcls import figures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAMES = [f"{m}/{g}/{a}" for m in ("wear", "incorrect", "normal") for g in ("male", "female")
         for a in ("<30", "30-59", ">=60")]


def assert_png(path, min_w: int = 200, min_h: int = 150) -> tuple[int, int]:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        w, h = img.size
        assert img.format == "PNG"
    assert min_w <= w <= 4000 and min_h <= h <= 4000
    # No temporary file left beside the result.
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    return w, h


def history(epochs: int, **overrides) -> pd.DataFrame:
    e = np.arange(1, epochs + 1)
    frame = pd.DataFrame({
        "epoch": e, "train_loss": 2.0 / e, "val_loss": 2.2 / e, "macro_f1": 1 - 0.5 / e,
        "accuracy": 1 - 0.4 / e, "mask_f1": 1 - 0.2 / e, "gender_f1": 1 - 0.3 / e, "age_f1": 1 - 0.6 / e,
        "lr": np.full(epochs, 1e-3)})
    for column, value in overrides.items():
        frame[column] = value
    return frame


def confusion_with_small_class() -> np.ndarray:
    cm = np.zeros((18, 18), dtype=int)
    np.fill_diagonal(cm, 50)
    cm[0, 1] = 3
    cm[5, :] = 0
    cm[5, 5] = 1  # a class with a single photo, all of it right: 100 % of its row
    cm[7, :] = 0  # a class with no photos at all
    return cm


# --------------------------------------------------------------------------- confusion


def test_plot_confusion_writes_png(tmp_path):
    out = tmp_path / "run" / "confusion.png"
    figures.plot_confusion(confusion_with_small_class(), NAMES, out, title="fold 0")
    assert_png(out)


def test_confusion_colour_is_by_count_not_row_share():
    cm = confusion_with_small_class()
    values = figures.confusion_colour_values(cm)
    assert values.shape == cm.shape
    assert 0 <= values.min() and values.max() <= 1
    # The 1-photo class is 100 % correct, yet its cell must be lighter than a 50-photo diagonal cell.
    assert values[5, 5] < values[0, 0]
    assert values[0, 0] == pytest.approx(1.0)
    assert values[7, 7] == 0 and values[5, 4] == 0
    assert 0 < values[0, 1] < values[0, 0]
    # Monotonic in the count.
    counts = np.array([[0, 1, 2], [5, 10, 100]])
    assert np.all(np.diff(figures.confusion_colour_values(counts).ravel()) > 0)
    assert np.all(figures.confusion_colour_values(np.zeros((3, 3), int)) == 0)


def test_confusion_figure_draws_the_count_colours_and_support():
    cm = confusion_with_small_class()
    fig = figures._confusion_figure(cm, NAMES)
    ax = fig.axes[0]
    # The image shown is exactly the count-based helper's output.
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), figures.confusion_colour_values(cm))
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks[0] == f"{NAMES[0]} (n=53)"
    assert ticks[5] == f"{NAMES[5]} (n=1)"
    assert ticks[7] == f"{NAMES[7]} (n=0)"
    cells = {t.get_text(): t for t in ax.texts}
    assert set(cells) == {"50", "3", "1"}  # only non-zero cells are written
    assert cells["50"].get_color() == "white"  # dark cell, light text
    assert cells["1"].get_color() == "black"


def test_confusion_rejects_mismatched_names(tmp_path):
    with pytest.raises(ValueError):
        figures.plot_confusion(np.zeros((18, 18), int), NAMES[:17], tmp_path / "c.png")


# --------------------------------------------------------------------------- curves


def test_plot_curves_writes_png(tmp_path):
    out = tmp_path / "curves.png"
    figures.plot_curves(history(5), out, best_epoch=3, title="resnet, fold 0")
    w, h = assert_png(out)
    assert w > h  # two panels side by side


def test_curves_figure_panels_and_best_epoch():
    fig = figures._curves_figure(history(4), best_epoch=3)
    loss_ax, f1_ax = fig.axes
    assert [l.get_label() for l in loss_ax.get_lines()] == ["train loss", "validation loss", "best epoch 3"]
    assert [l.get_label() for l in f1_ax.get_lines()] == ["macro F1", "mask F1", "gender F1", "age F1",
                                                          "best epoch 3"]
    for ax in (loss_ax, f1_ax):
        best = ax.get_lines()[-1]
        assert best.get_linestyle() == "--"
        assert list(best.get_xdata()) == [3, 3]
        assert "best epoch 3" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_curves_single_epoch(tmp_path):
    out = tmp_path / "curves.png"
    figures.plot_curves(history(1), out, best_epoch=1)
    assert_png(out)
    loss_ax, _ = figures._curves_figure(history(1), best_epoch=1).axes
    train = loss_ax.get_lines()[0]
    assert len(train.get_xdata()) == 1 and train.get_marker() not in (None, "", "None")
    lo, hi = loss_ax.get_xlim()
    visible = [x for x in loss_ax.get_xticks() if lo <= x <= hi]
    assert visible == [1]  # one whole-epoch tick, not 0.95, 0.975, ...


def test_plot_curves_skips_missing_series(tmp_path):
    # As metrics.csv comes back from pandas when no photo is fully labelled: None / NaN columns.
    frame = history(3, macro_f1=[None] * 3, val_loss=np.nan)
    out = tmp_path / "curves.png"
    figures.plot_curves(frame, out, best_epoch=2)
    assert_png(out)
    loss_ax, f1_ax = figures._curves_figure(frame, best_epoch=2).axes
    assert [l.get_label() for l in loss_ax.get_lines()] == ["train loss", "best epoch 2"]
    assert [l.get_label() for l in f1_ax.get_lines()] == ["mask F1", "gender F1", "age F1", "best epoch 2"]


def test_plot_curves_from_csv_round_trip(tmp_path):
    frame = history(2, macro_f1=[None, None])
    frame.to_csv(tmp_path / "metrics.csv", index=False)
    out = tmp_path / "figs" / "curves.png"
    figures.plot_curves(pd.read_csv(tmp_path / "metrics.csv"), out, best_epoch=1)
    assert_png(out)


# --------------------------------------------------------------------------- per-class F1


def per_class_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    f1 = rng.uniform(0, 1, 18)
    support = rng.integers(1, 80, 18)
    support[4] = 0
    f1[4] = 0.0
    support[0] = 12
    return f1, support


def test_support_labels():
    assert figures.support_labels(np.array([12, 0, 3])) == ["n=12", "no photos", "n=3"]


def test_plot_per_class_f1_writes_png(tmp_path):
    f1, support = per_class_data()
    out = tmp_path / "per_class_f1.png"
    figures.plot_per_class_f1(f1, support, NAMES, out, title="macro F1 0.5")
    assert_png(out)


def test_per_class_figure_labels_support_and_marks_empty_classes():
    f1, support = per_class_data()
    fig = figures._per_class_figure(f1, support, NAMES)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == figures.support_labels(support)
    assert texts[0] == "n=12" and texts[4] == "no photos"
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert ax.get_xticklabels()[0].get_rotation() > 0
    bars = ax.patches
    # a class without photos is never drawn as a bar (a full hatched bar read as F1 = 1)
    assert len(bars) == 17 and not any(b.get_x() + b.get_width() / 2 == pytest.approx(4) for b in bars)
    heights = sorted(b.get_height() for b in bars)
    np.testing.assert_allclose(heights, sorted(np.delete(f1, 4)))


def test_per_class_title_gives_the_macro_f1_and_the_classes_it_averaged():
    from maskcls.metrics import class_counts

    f1, support = per_class_data()
    fig = figures._per_class_figure(f1, support, NAMES, title="fold 0", macro_f1=0.5, averaged=17)
    assert fig.axes[0].get_title() == "fold 0: macro F1 0.500 over 17 classes"
    targets = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 1]])  # classes 0 and 1; class 5 only predicted
    assert class_counts(targets, np.eye(18)[[0, 5, 1]])["averaged"] == 3


def test_per_class_rejects_wrong_lengths(tmp_path):
    f1, support = per_class_data()
    with pytest.raises(ValueError):
        figures.plot_per_class_f1(f1[:17], support, NAMES, tmp_path / "p.png")


# --------------------------------------------------------------------------- backend hygiene


def test_import_does_not_touch_pyplot_or_backend():
    code = ("import sys, matplotlib; before = matplotlib.rcParams._get_backend_or_none(); "
            "import maskcls.figures; "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'; "
            "assert matplotlib.rcParams._get_backend_or_none() == before, 'backend changed'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=None, timeout=120)
    assert result.returncode == 0, result.stderr


def test_improve_figure_never_draws_a_loss_green():
    """improve.png drew a negative gain green."""
    import matplotlib.colors as mcolors
    import pandas as pd

    from maskcls.figures import _gain_figure

    table = pd.DataFrame({"metric": ["macro_f1", "accuracy", "mask_f1", "age_f1"], "pairs": [4, 4, 4, 1],
                          "gain": [0.03, -0.02, 0.01, -0.01], "low": [0.01, -0.03, -0.02, np.nan],
                          "high": [0.05, -0.01, 0.04, np.nan]})
    fig = _gain_figure(table)
    drawn = [mcolors.to_hex(line.get_color()) for line in fig.axes[0].lines if line.get_marker() == "o"]
    green, red, grey = (mcolors.to_hex(c) for c in ("tab:green", "tab:red", "tab:grey"))
    assert drawn == [green, red, grey, red]
