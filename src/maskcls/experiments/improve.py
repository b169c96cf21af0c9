"""`maskcls improve`: what do these label corrections buy? Paired runs without and with them, over
seeds x person-level folds, every run scored on ONE answer key; a thin layer over ablate's runner.

The two arms differ only in ``data.corrections``: ``without`` trains on the labels as the config gives
them (its own data.corrections, ``none`` in the demo config), ``with`` on those plus FILE (the rows of
both, FILE's last, written once to OUT/corrections.csv so that a later edit of FILE cannot slip into
a resumed comparison). The key is the labels with OUT/corrections.csv applied, or ``--key`` (e.g.
demo-data's truth/train_truth.csv, the labels as they truly are).

OUT/table.md      per metric (macro F1, accuracy, mask/gender/age F1): both arms' means and the paired
                  gain with its 95% interval; the key and the scoring rule under it
OUT/results.csv   one row per run (ablate's columns; variant is without | with)
OUT/improve.png   the gains with their intervals
OUT/people.csv    every person and the fold that scores them
OUT/runs/{without,with}/seed-S-fold-K/
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Callable

import pandas as pd

from ..config import Config, load_config, with_option
from ..data import corrections as corr_mod
from ..data import splits
from ..data.table import load_table
from ..errors import UserError
from ..fileio import write_text
from ..metrics import METRIC_KEYS
from ..figures import plot_gain
from ..training.runspec import Launcher
from ..training.trackers import parent_run
from .ablate import _fmt, run_grid, scoring_note, stamp, summarize, wrote_line

IMPROVE_FILES = {"results.csv", "table.md", "improve.png", "runs", "improve.json", "people.csv", "corrections.csv"}
ARMS = ("without", "with")


def merged_corrections(base: str, fixes: Path) -> str:
    """The ``with`` arm's corrections CSV: the base set's rows (if any), then FILE's."""
    frames = []
    for path in (corr_mod.resolve(base), fixes):
        if path is not None:
            frames.append(pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=True))
    merged = pd.concat(frames, ignore_index=True).fillna("")
    buf = io.StringIO()
    merged.to_csv(buf, index=False)
    return buf.getvalue()


def _same_labels(data: str | Path, copy: Path, text: str, base) -> bool:
    """Whether two corrections texts give DATA the same labels, photo by photo."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "corrections.csv"
        other.write_text(text)
        a, _ = load_table(data, cutoffs=base.cutoffs, corrections=copy, allow_outside=base.data.allow_outside)
        b, _ = load_table(data, cutoffs=base.cutoffs, corrections=other, allow_outside=base.data.allow_outside)
    columns = ["path", "mask", "gender", "age"]
    return a[columns].reset_index(drop=True).equals(b[columns].reset_index(drop=True))


def improve(data: str | Path, corrections: str | Path, out: str | Path, *, seeds: int = 3, folds: int = 3,
            key: str | Path | None = None, config: str | Path | None = "demo", overrides: tuple[str, ...] = (),
            launcher: Launcher | None = None, progress: bool = True,
            log: Callable[[str], None] = print) -> pd.DataFrame:
    """Train without and with ``corrections`` on every fold of ``folds`` person-level folds x ``seeds``
    seeds; write OUT/table.md, results.csv and improve.png; return the gain table (one row per metric).
    ``launcher`` (experiments.launch: --jobs, Ray) trains the runs at once, as in ``ablate``."""
    out = Path(out)
    if folds < 2:
        raise UserError(f"--folds must be at least 2 (every person is scored once per seed), got {folds}")
    overrides = tuple(with_option(overrides, "data.folds", folds, "--folds"))  # --folds is data.folds
    fixes, base = _check_corrections(data, corrections, config, overrides, folds=folds, log=log)
    copy, fresh = _claim_improve_folder(out, data, fixes, base, log=log)
    arms = {"without": [], "with": [f"data.corrections={copy.resolve()}"]}
    # With train.trackers=mlflow the comparison is one MLflow parent run, each training a child.
    before = stamp(out / "results.csv")
    with parent_run(base, f"improve {out.name}", out, kind="improve"):
        try:
            results, answer = run_grid(data, out, arms, seeds=seeds, folds=folds, config=config,
                                       overrides=overrides, key=key if key is not None else copy.resolve(),
                                       own_files=IMPROVE_FILES, settings_name="improve.json", launcher=launcher,
                                       progress=progress, log=log)
        except UserError:
            if fresh and not (out / "improve.json").exists():  # refused before any run: leave nothing behind
                shutil.rmtree(out, ignore_errors=True)
            raise
        table = gain_table(results)
        write_text(out / "table.md", gain_markdown(table, seeds=seeds, folds=folds) + scoring_note(answer))
        plot_gain(table, out / "improve.png", title=f"gain from {fixes.name}: {seeds} seed(s) x {folds} fold(s), "
                                                     f"scored on {answer.description}")
    log(wrote_line(out, "improve.png", results_written=stamp(out / "results.csv") != before))
    return table



def _check_corrections(data, corrections, config, overrides: tuple[str, ...], *, folds: int,
                       log: Callable[[str], None]) -> tuple[Path, Config]:
    """The corrections file to measure, checked before anything trains: it must read, change some label of
    DATA, and DATA must have people enough for ``folds`` folds. Returns its path and the base config."""
    fixes = corr_mod.resolve(corrections)
    if fixes is None:
        raise UserError("--corrections none: give the corrections to measure (a CSV, e.g. an audit's "
                        "accepted_corrections.csv)")
    corr_mod.read(fixes)  # a bad line is named now, before anything trains
    base = load_config(config, list(overrides))
    # FILE must change something in DATA; corrections naming people not in the data are counted, as
    # `train --corrections` does, but a FILE that changes no label has nothing to measure.
    _, report = load_table(data, cutoffs=base.cutoffs, corrections=fixes, allow_outside=base.data.allow_outside)
    if not report.changes:
        raise UserError(f"{fixes}: changes no label of {data} ({len(report.unmatched)} correction(s) name people "
                        f"not in the data, {len(report.skipped)} left alone); nothing to measure")
    recorded, _ = load_table(data, cutoffs=base.score_cutoffs, corrections="none",
                             allow_outside=base.data.allow_outside)
    people = recorded["person"].nunique()
    if people < 2 * folds:
        raise UserError(f"{data}: {people} people are too few for {folds} person-level folds (each fold must "
                        f"train on some and score others); use fewer --folds or more people")
    splits.assign_folds(recorded, k=folds, seed=base.data.split_seed)  # strata too small: refused here
    log(f"{report.summary()}")  # it counts the corrections naming people not in the data
    return fixes, base


def _claim_improve_folder(out: Path, data, fixes: Path, base: Config, *,
                          log: Callable[[str], None]) -> tuple[Path, bool]:
    """OUT, new or an earlier improve of the same corrections (rows that change no label of DATA aside),
    with the corrections merged into OUT/corrections.csv. Returns (that copy, whether OUT was new)."""
    text = merged_corrections(base.data.corrections, fixes)
    copy = out / "corrections.csv"
    if copy.is_file() and copy.read_text() != text:
        if not _same_labels(data, copy, text, base):
            raise UserError(f"{out} holds runs made with other corrections ({copy}): they set other labels on "
                            f"{data}; the comparison would mix them, so choose a new --out")
        # Rows that change nothing here (people not in the data, say): the runs are the same runs.
        log(f"{fixes.name} differs from {copy} only in rows that change no label of {data}; resuming with {copy}")
        text = copy.read_text()
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    fresh = not out.exists() or not any(out.iterdir())
    if not fresh and not copy.is_file():
        raise UserError(f"{out}: not an improve folder (no corrections.csv); choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    write_text(copy, text)
    return copy, fresh


def gain_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per metric: both arms' means and the paired gain (with - without) with its 95% interval."""
    rows = []
    for metric in METRIC_KEYS:
        t = summarize(results, list(ARMS), metric=metric).set_index("variant")
        rows.append({"metric": metric, "without": t.loc["without", "mean"], "with": t.loc["with", "mean"],
                     "pairs": int(t.loc["with", "pairs"]), "gain": t.loc["with", "delta"],
                     "low": t.loc["with", "delta_low"], "high": t.loc["with", "delta_high"],
                     "failed": int(t["failed"].sum())})
    return pd.DataFrame(rows)


def gain_markdown(table: pd.DataFrame, *, seeds: int, folds: int) -> str:
    """The gain table as Markdown: each metric without and with the corrections, the gain and its interval."""
    lines = [f"| metric | without | with | gain [95% CI] | pairs ({seeds} seed(s) x {folds} fold(s)) |",
             "|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        gain = f"{_fmt(r['gain'], signed=True)} [{_fmt(r['low'], signed=True)}, {_fmt(r['high'], signed=True)}]"
        lines.append(f"| {r['metric']} | {_fmt(r['without'])} | {_fmt(r['with'])} | {gain} | {r['pairs']} |")
    failed = int(table["failed"].max()) if len(table) else 0
    if failed:
        lines.append(f"\n{failed} run(s) failed; see results.csv and rerun the same command to retry them.")
    return "\n".join(lines) + "\n"
