"""Figures written into run, audit and study folders: training curves, per-class F1, the confusion matrix,
ablation and gain tables, precision/recall and the learning-rate range test.

On the ground floor (labels and fileio only), so training, the audit and the experiments draw their
figures without importing the report pages above them.

Built with matplotlib's object-oriented API only (``Figure`` + ``savefig``, never pyplot), so importing
this module neither selects nor switches the user's matplotlib backend, and no global figure state leaks
between calls. Every file is written atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import labels
from .fileio import atomic_path

LOSS_SERIES = (("train_loss", "train loss"), ("val_loss", "validation loss"))
F1_SERIES = (("macro_f1", "macro F1"), *((f"{t.name}_f1", f"{t.name} F1") for t in labels.TASKS))

# Cells whose colour value is above this get white text; below it the background is light enough for black.
_DARK_CELL = 0.55
_DPI = 90


def save(fig: Figure, path: str | Path) -> None:
    """Write ``fig`` as a PNG at ``path``, atomically (the pages of reports/ draw their own figures and
    save them here)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)


# --------------------------------------------------------------------------- confusion matrix


def confusion_colour_values(cm: np.ndarray) -> np.ndarray:
    """Colour value in [0, 1] of each confusion cell, from its COUNT (not its share of the row).

    A log scale, log(1 + count) / log(1 + largest count): monotonic in the count, so a class with one photo
    never gets the darkest cell, while a handful of confusions stays visible next to diagonals of hundreds.
    """
    counts = np.asarray(cm, dtype=float)
    top = counts.max(initial=0.0)
    if top <= 0:
        return np.zeros_like(counts)
    return np.log1p(np.clip(counts, 0, None)) / np.log1p(top)


def _count_ticks(top: int) -> list[int]:
    """Counts to mark on the colour bar: 0, powers of ten below the maximum, and the maximum."""
    ticks = [0]
    power = 1
    while power < top:
        ticks.append(power)
        power *= 10
    if top > 0:
        ticks.append(top)
    return ticks


def _confusion_figure(cm: np.ndarray, names: list[str], *, title: str = "") -> Figure:
    cm = np.asarray(cm)
    n = len(names)
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix has shape {cm.shape}, expected ({n}, {n}) for {n} class names")
    values = confusion_colour_values(cm)
    support = cm.sum(axis=1)
    fig = Figure(figsize=(0.55 * n + 4.5, 0.5 * n + 3), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), names, rotation=90, fontsize=8)
    ax.set_yticks(range(n), [f"{name} (n={int(s)})" for name, s in zip(names, support)], fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (n = photos of that class)")
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if values[i, j] > _DARK_CELL else "black")
    top = int(cm.max(initial=0))
    ticks = _count_ticks(top)
    bar = fig.colorbar(im, ax=ax, shrink=0.8,
                       ticks=[np.log1p(t) / np.log1p(top) if top else 0.0 for t in ticks])
    bar.ax.set_yticklabels([str(t) for t in ticks])
    bar.set_label("photos (log scale)")
    if title:
        ax.set_title(title)
    return fig


def plot_confusion(cm: np.ndarray, names: list[str], path: str | Path, *, title: str = "") -> None:
    """Confusion matrix (rows true, columns predicted) with counts in the cells, coloured by count, and
    each true class's support beside its row label."""
    save(_confusion_figure(cm, names, title=title), path)


# --------------------------------------------------------------------------- training curves


def _series(history: pd.DataFrame, column: str) -> pd.Series | None:
    """The column as floats (None in metrics.csv becomes NaN), or None when it is missing or all NaN."""
    if column not in history.columns:
        return None
    values = pd.to_numeric(history[column], errors="coerce").astype(float)
    return None if values.isna().all() else values


def _curves_figure(history: pd.DataFrame, *, best_epoch: int, title: str = "", validated: bool = True) -> Figure:
    epochs = (pd.to_numeric(history["epoch"], errors="coerce") if "epoch" in history.columns
              else pd.Series(np.arange(1, len(history) + 1)))
    if not validated:  # a final fit: no one held out, so the training loss is all there is to draw
        fig = Figure(figsize=(6, 4.2), layout="constrained")
        loss_ax = fig.subplots(1, 1)
        panels = ((loss_ax, LOSS_SERIES[:1], "loss"),)
    else:
        fig = Figure(figsize=(11, 4.2), layout="constrained")
        loss_ax, f1_ax = fig.subplots(1, 2)
        panels = ((loss_ax, LOSS_SERIES, "loss"), (f1_ax, F1_SERIES, "F1"))
    axes = [ax for ax, *_ in panels]
    for ax, series, ylabel in panels:
        drawn = 0
        for column, label in series:
            values = _series(history, column)
            if values is None:
                continue
            # Markers so a single epoch (or one isolated between NaNs) still shows as a point; dropped for
            # long runs, where they would merge into a thick smear.
            ax.plot(epochs, values, marker="o" if len(history) <= 60 else None, markersize=4, label=label)
            drawn += 1
        if not drawn:
            ax.text(0.5, 0.5, f"no {ylabel} recorded", transform=ax.transAxes, ha="center", va="center",
                    color="grey")
        ax.axvline(best_epoch, color="black", linestyle="--", linewidth=1,
                   label=f"best epoch {best_epoch}" if validated else f"kept: last epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    shown = pd.concat([epochs.dropna(), pd.Series([best_epoch])])
    if shown.max() - shown.min() < 2:
        # Autoscaling around a single epoch gives a hair-thin x range of fractional epochs.
        for ax in axes:
            ax.set_xlim(shown.min() - 0.5, shown.max() + 0.5)
    if validated:
        loss_ax.set_title("loss")
        f1_ax.set_ylim(0, 1.02)
        f1_ax.set_title("validation F1")
    else:
        loss_ax.set_title("training loss (no one held out: nothing validated)")
    if title:
        fig.suptitle(title)
    return fig


def plot_curves(history: pd.DataFrame, path: str | Path, *, best_epoch: int, title: str = "",
                validated: bool = True) -> None:
    """Loss (train, validation) and F1 (macro, per task) per epoch side by side, best epoch marked;
    ``validated=False`` (a run that held no one out): the training loss alone, the kept last epoch marked."""
    save(_curves_figure(history, best_epoch=best_epoch, title=title, validated=validated), path)


# --------------------------------------------------------------------------- per-class F1


NO_PHOTOS = "no photos"


def support_labels(support: np.ndarray) -> list[str]:
    """Text written above each class's bar: ``n=<validation photos of that class>``, or "no photos"."""
    return [f"n={int(s)}" if s else NO_PHOTOS for s in np.asarray(support)]


def _per_class_figure(f1: np.ndarray, support: np.ndarray, names: list[str], *, title: str = "",
                      macro_f1: float | None = None, averaged: int | None = None,
                      with_photos: int | None = None) -> Figure:
    """One bar per class with photos; a class without photos has no bar (its F1 is undefined), only
    its "no photos" label. The title ends with the macro F1 and how many classes it averaged."""
    f1 = np.asarray(f1, dtype=float)
    support = np.asarray(support)
    n = len(names)
    if f1.shape != (n,) or support.shape != (n,):
        raise ValueError(f"f1 {f1.shape} and support {support.shape} must both have one value per class ({n})")
    empty = support == 0
    x = np.arange(n)
    fig = Figure(figsize=(0.5 * n + 3, 5), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(x[~empty], np.nan_to_num(f1[~empty]), color="tab:blue", width=0.8)
    # F1 of a class with no photos is undefined: no bar at all (any bar would read as a score), only
    # its label, written upright from the axis.
    for i, label in enumerate(support_labels(support)):
        if empty[i]:
            ax.text(i, 0.02, label, ha="center", va="bottom", fontsize=7, color="grey", rotation=90)
        else:
            ax.text(i, float(np.nan_to_num(f1[i])) + 0.01, label, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("F1")
    ax.grid(axis="y", alpha=0.3)
    if macro_f1 is not None:
        over = f" over {averaged} classes" if averaged is not None else ""
        if averaged is not None and with_photos is not None:  # metrics.class_counts' two names
            extra = averaged - with_photos
            over = (f" over the {with_photos} classes with photos" if not extra else
                    f" over {averaged} classes ({with_photos} with photos + {extra} predicted without photos, F1 0)")
        title = f"{title}: macro F1 {macro_f1:.3f}{over}" if title else f"macro F1 {macro_f1:.3f}{over}"
    if title:
        ax.set_title(title)
    return fig


def plot_per_class_f1(f1: np.ndarray, support: np.ndarray, names: list[str], path: str | Path, *,
                      title: str = "", macro_f1: float | None = None, averaged: int | None = None,
                      with_photos: int | None = None) -> None:
    """One bar per class (F1, 0..1) with the class's validation support written above it; "no photos"
    where a class has none. ``averaged`` and ``with_photos``: ``metrics.class_counts``."""
    save(_per_class_figure(f1, support, names, title=title, macro_f1=macro_f1, averaged=averaged,
                            with_photos=with_photos), path)


# --------------------------------------------------------------------------- ablation


def _ablation_figure(table: pd.DataFrame, *, metric: str = "macro F1", title: str = "") -> Figure:
    """Left: each variant's mean with its 95% interval. Right: the paired delta to the baseline."""
    n = len(table)
    fig = Figure(figsize=(11, 1.2 + 0.45 * n), layout="constrained")
    ax_mean, ax_delta = fig.subplots(1, 2, sharey=True)
    y = np.arange(n)[::-1]
    for ax, col, low, high, label in ((ax_mean, "mean", "low", "high", metric),
                                      (ax_delta, "delta", "delta_low", "delta_high", f"paired delta to {table['variant'].iloc[0]}")):
        values = table[col].to_numpy(dtype=float)
        lo = table[low].to_numpy(dtype=float)
        hi = table[high].to_numpy(dtype=float)
        err = np.vstack([np.where(np.isfinite(lo), values - lo, 0), np.where(np.isfinite(hi), hi - values, 0)])
        ax.errorbar(values, y, xerr=err, fmt="o", capsize=4, color="tab:blue")
        ax.set_xlabel(label + " (95% interval)")
        ax.grid(axis="x", alpha=0.3)
    ax_delta.axvline(0, color="grey", linestyle="--", linewidth=1)
    ax_mean.set_yticks(y, [f"{v} (n={r})" for v, r in zip(table["variant"], table["runs"])])
    if title:
        fig.suptitle(title)
    return fig


def plot_ablation(table: pd.DataFrame, path: str | Path, *, title: str = "") -> None:
    """``table`` from experiments.ablate.summarize: variant, runs, mean, low, high, delta, delta_low, delta_high."""
    save(_ablation_figure(table, title=title), path)


GAIN_COLOURS = {"up": "tab:green", "down": "tab:red", "unclear": "tab:grey"}


def gain_colours(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> list[str]:
    """Green for a gain whose interval lies above 0, red below 0, grey where it holds 0; without an
    interval (one pair) the sign alone decides. A loss is never drawn as a gain."""
    out = []
    for v, lo, hi in zip(values, low, high):
        lo = lo if np.isfinite(lo) else v
        hi = hi if np.isfinite(hi) else v
        out.append(GAIN_COLOURS["up" if lo > 0 else "down" if hi < 0 else "unclear"])
    return out


def _gain_figure(table: pd.DataFrame, *, title: str = "") -> Figure:
    """One row per metric: the paired gain with its 95% interval, zero marked."""
    n = len(table)
    fig = Figure(figsize=(8, 1.4 + 0.45 * n), layout="constrained")
    ax = fig.subplots()
    y = np.arange(n)[::-1]
    values = table["gain"].to_numpy(dtype=float)
    lo, hi = table["low"].to_numpy(dtype=float), table["high"].to_numpy(dtype=float)
    err = np.vstack([np.where(np.isfinite(lo), values - lo, 0), np.where(np.isfinite(hi), hi - values, 0)])
    for i, colour in enumerate(gain_colours(values, lo, hi)):
        ax.errorbar(values[i:i + 1], y[i:i + 1], xerr=err[:, i:i + 1], fmt="o", capsize=4, color=colour)
    ax.axvline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(y, [f"{m} (n={p})" for m, p in zip(table["metric"], table["pairs"])])
    ax.set_xlabel("paired gain, with - without (95% interval; green: above 0, red: below 0, grey: either)")
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def plot_gain(table: pd.DataFrame, path: str | Path, *, title: str = "") -> None:
    """``table`` from experiments.improve.gain_table: metric, pairs, gain, low, high."""
    save(_gain_figure(table, title=title), path)


# --------------------------------------------------------------------------- audit


def _precision_recall_figure(curve: pd.DataFrame, *, title: str = "") -> Figure:
    """Precision and recall against the number of issues reviewed, one line pair per kind."""
    fig = Figure(figsize=(9, 4), layout="constrained")
    ax_p, ax_r = fig.subplots(1, 2, sharex=True)
    for kind, part in curve.groupby("kind", sort=False):
        ax_p.plot(part["rank"], part["precision"], marker=".", label=str(kind))
        ax_r.plot(part["rank"], part["recall"], marker=".", label=str(kind))
    for ax, name in ((ax_p, "precision"), (ax_r, "recall")):
        ax.set_xlabel("rank (issues reviewed, best first)")
        ax.set_ylabel(name)
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
        if len(curve):
            ax.legend(fontsize=8)
        else:  # an audit that raised nothing (its gate held every field back)
            ax.text(0.5, 0.5, "no issues", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    return fig


def plot_precision_recall(curve: pd.DataFrame, path: str | Path, *, title: str = "") -> None:
    """``curve`` from audit.rank.precision_recall_curve: kind, rank, precision, recall."""
    save(_precision_recall_figure(curve, title=title or "audit against the planted errors"), path)


# --------------------------------------------------------------------------- learning-rate range test


def _lr_find_figure(lrs: np.ndarray, losses: np.ndarray, smoothed: np.ndarray, suggested: float, *,
                    title: str = "", band: tuple[float, float] | None = None, unstable: bool = False) -> Figure:
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    if band is not None:  # where the suggestion lands with other smoothings
        ax.axvspan(band[0], band[1], color="C1" if unstable else "C2", alpha=0.15,
                   label=f"suggestion with other smoothings {band[0]:.2g}-{band[1]:.2g}"
                         + (": UNSTABLE, a guess" if unstable else ""))
    ax.plot(lrs, losses, color="0.75", linewidth=1, label="loss per step")
    ax.plot(lrs, smoothed, color="C0", linewidth=2, label="smoothed")
    ax.axvline(suggested, color="C3", linestyle="--", label=f"suggested train.lr {suggested:.2g}")
    ax.plot([suggested], [np.interp(np.log(suggested), np.log(lrs), smoothed)], "o", color="C3")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (heads; the backbone at model.backbone_lr_mult times it)")
    ax.set_ylabel("training loss")
    # The exploded tail would squash the useful part: show up to a little above the first loss.
    top = max(float(np.nanmax(smoothed[: max(1, len(smoothed) // 10)])), float(np.nanmin(smoothed))) * 1.3
    ax.set_ylim(float(np.nanmin(np.r_[losses, smoothed])) * 0.95, top)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def plot_lr_find(lrs: np.ndarray, losses: np.ndarray, smoothed: np.ndarray, suggested: float, path: str | Path, *,
                 title: str = "", band: tuple[float, float] | None = None, unstable: bool = False) -> None:
    """Loss against learning rate (log scale), raw and smoothed, the suggested rate marked, and the band
    the suggestion moves in across smoothings (orange and named unstable when wide)."""
    save(_lr_find_figure(np.asarray(lrs), np.asarray(losses), np.asarray(smoothed), suggested, title=title,
                          band=band, unstable=unstable), path)
