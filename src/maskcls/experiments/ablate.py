"""`maskcls ablate`: train every variant on the same person-level folds and the same seeds, from one
prepared dataset, and report what each variant changes, with the noise shown.

A variant is ``+``-joined parts, each a preset name (``hflip+vflip``: the variant's augmentation) or a
``key=value`` setting (``data.corrections=none``, ``model.name=resnet18``, ``data.age_old=58``).
The first variant is the baseline: every other one is compared with it pair by pair (same seed, same
fold), so the seed-to-seed and fold-to-fold spread cancels out of the delta.

Every run trains a fixed budget, keeps its last epoch and is scored on its held-out fold against ONE
answer key (see run_grid and experiments.key): variants that train on other labels are still scored
on the same labels.

OUT/results.csv   one row per run (variant, seed, fold, metrics on the key, best_epoch, seconds_per_epoch,
                  checkpoint, scored_fold, scored_people, status)
OUT/people.csv    every person and the fold that scores them
OUT/table.md      per variant: mean +- std, paired delta (t) and ratio of means (Fieller) to the baseline, 95%
OUT/ablation.png  means with their 95% intervals
OUT/runs/<variant>/seed-S-fold-K/   the run folders
Re-running skips finished runs and only adds new ones; a failed run is recorded and the rest go on. A run
whose folder holds a finished training of its settings is reused even when results.csv missed it (the
parent was killed while runs went on in other processes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from ..config import Config, flat, from_dict, load_config
from ..data.fingerprint import data_identity, identity_change, photo_digests
from ..data.prepare import Prepared, prepare, prepare_key
from ..choices import LEGACY_PRESETS, canonical_augment, split_legacy
from ..data.table import LABEL_COLUMNS, raise_on_fatal, scan
from ..data.transforms import PRESETS
from ..errors import UserError
from ..fileio import claim_folder, read_json, write_csv, write_text
from ..metrics import METRIC_KEYS
from ..progress import prefixed
from ..figures import plot_ablation
from ..training.fit import train
from ..training.model import build_model
from ..training.runspec import Launcher, RunSpec, spec_data
from ..training.trackers import parent_run
from .key import AnswerKey, resolve_key, score_run

ABLATION_FILES = {"results.csv", "table.md", "ablation.png", "runs", "ablation.json", "people.csv"}
# Settings the runner sets itself on every run; a variant or --set that also set them would be ignored.
RUNNER_KEYS = {"data.fold": "--run-folds runs folds 0 to N-1",
               "train.seed": "--seeds; --set train.seed=N moves the first seed",
               "train.select": "every compared run keeps its last epoch, so that its held-out fold chooses nothing",
               "train.patience": "every compared run trains its full train.epochs: early stopping would watch the "
                                 "held-out fold"}
HELD_OUT = ("train.select=last", "train.patience=0")  # what every compared run is trained with
SCORING = "last epoch, held-out fold"  # ablation.json: runs scored otherwise are never paired with these
# The chance level of each metric on the answer key's class mix of the scored fold (results written
# before it lack them).
CHANCE_COLUMNS = [f"chance_{k}" for k in METRIC_KEYS]
RESULT_COLUMNS = ["variant", "seed", "fold", *METRIC_KEYS, "best_epoch", "epochs", "seconds_per_epoch", "checkpoint",
                  "scored_fold", "scored_people", "status", "error", *CHANCE_COLUMNS]


def parse_variant(text: str) -> list[str]:
    """'hflip+vflip+data.age_old=58' -> ['data.augment=hflip+vflip', 'data.age_old=58']. A crop named the
    way variants always named it ('centercrop+hflip') sets data.crop: ['data.augment=hflip', 'data.crop=center']."""
    parts = [p.strip() for p in text.split("+")]
    if not any(parts):
        raise UserError(f"variant {text!r} is empty")
    if not all(parts):
        raise UserError(f"variant {text!r} has an empty part between its + signs")
    presets = [p for p in parts if "=" not in p]
    unknown = [p for p in presets if p not in PRESETS and p not in LEGACY_PRESETS]
    if unknown:
        raise UserError(f"variant {text!r}: {unknown[0]!r} is neither a preset ({', '.join([*PRESETS, *LEGACY_PRESETS])}) "
                        "nor a key=value setting")
    settings = [p for p in parts if "=" in p]
    keys = [p.partition("=")[0].strip() for p in settings]
    if presets and "data.augment" in keys:  # which one would win is not what anyone meant
        raise UserError(f"variant {text!r} names presets and sets data.augment; write the presets alone, "
                        "e.g. hflip+vflip")
    try:
        augment, crop = split_legacy("+".join(presets)) if presets else ("", None)
    except ValueError as exc:
        raise UserError(f"variant {text!r}: {exc}") from None
    if crop is not None and "data.crop" in keys:
        raise UserError(f"variant {text!r} names a crop preset and sets data.crop; write data.crop=... alone")
    for key in RUNNER_KEYS:
        if key in keys:
            raise UserError(f"variant {text!r} sets {key}, which the runner chooses "
                            f"({RUNNER_KEYS[key]})")
    return ([f"data.augment={augment}"] if presets else []) + ([f"data.crop={crop}"] if crop else []) + settings


def _resolved_now(saved: dict) -> dict:
    """An ablation.json's resolved settings as today's config reads them (a crop spelled inside
    data.augment then is data.crop now), so an ablation folder stays reusable across such changes."""
    nested: dict[str, dict] = {}
    for key, value in saved.items():
        section, _, name = key.partition(".")
        nested.setdefault(section, {})[name] = value
    try:
        return json.loads(json.dumps(flat(from_dict(nested))))
    except UserError:
        return saved  # settings this version no longer knows: they differ from today's anyway


def _scanned(data: str | Path, allow_outside: bool) -> pd.DataFrame:
    scanned = scan(data, allow_outside=allow_outside)
    raise_on_fatal(scanned.problems, data)
    return scanned.table


def parse_variants(text: str) -> list[str]:
    """'hflip,vflip' -> ['hflip', 'vflip'] (the --variants list, the baseline first); an empty entry
    between commas is most likely a variant that went missing."""
    variants = [v.strip() for v in text.split(",")]
    if not all(variants) and any(variants):
        raise UserError(f"--variants {text!r} has an empty entry between its commas")
    return [v for v in variants if v]


def data_digest(data: str | Path, *, allow_outside: bool = False) -> str:
    """What a set of runs was scored on, wherever it lies: the people, photo names, labels as given and
    file sizes. A copy of the data has the same digest; other data, or the same path refilled, does not."""
    table = _scanned(data, allow_outside)
    digest = hashlib.sha1(pd.util.hash_pandas_object(table[["person", "image", *LABEL_COLUMNS]].astype(str),
                                                     index=False).to_numpy().tobytes())
    digest.update(np.array([os.path.getsize(p) for p in table["path"]], dtype=np.int64).tobytes())
    return digest.hexdigest()


def _identity(data: str | Path, allow_outside: bool) -> dict[str, str]:
    table = _scanned(data, allow_outside)
    return data_identity(table, photo_digests(table["path"]))


def slug(variant: str) -> str:
    """The variant's run folder name. A variant that is not already a safe, short name gets a hash of
    its full text, so that two variants never share a folder (a/b.csv vs a_b.csv, or a long common prefix)."""
    safe = re.sub(r"[^A-Za-z0-9.=+_-]+", "_", variant)
    if safe == variant and 0 < len(variant) <= 120:
        return variant
    return f"{safe[:100]}-{hashlib.sha1(variant.encode()).hexdigest()[:10]}"


def ablate(data: str | Path, out: str | Path, variants: list[str], *, seeds: int = 1, folds: int | None = None,
           config: str | Path | None = "demo", overrides: tuple[str, ...] = (), key: str | Path | None = None,
           launcher: Launcher | None = None, progress: bool = True, log: Callable[[str], None] = print) -> pd.DataFrame:
    """Train variants x seeds x folds, write results.csv, table.md and ablation.png; return the results.

    Every run keeps its last epoch and is scored on its held-out fold against one answer key (``key``;
    by default the labels the variants share; variants that differ in their labels need one).
    ``launcher`` (experiments.launch: --jobs, Ray) trains the runs at once, each in its own process; the
    files are the same as a sequential call's."""
    # With train.trackers=mlflow the whole ablation is one MLflow parent run, each training a child.
    with parent_run(load_config(config, list(overrides)), f"ablation {Path(out).name}", out, kind="ablation"):
        return _ablate(data, out, variants, seeds=seeds, folds=folds, config=config, overrides=overrides,
                       key=key, launcher=launcher, progress=progress, log=log)


def _ablate(data: str | Path, out: str | Path, variants: list[str], *, seeds: int, folds: int | None,
            config: str | Path | None, overrides: tuple[str, ...], key: str | Path | None,
            launcher: Launcher | None, progress: bool,
            log: Callable[[str], None]) -> pd.DataFrame:
    if not variants:
        raise UserError("give at least one variant, e.g. --variants hflip,hflip+vflip")
    if len(set(variants)) != len(variants):
        raise UserError(f"a variant is listed twice: {', '.join(variants)}")
    arms = {v: parse_variant(v) for v in variants}
    before = stamp(Path(out) / "results.csv")
    results, scored_on = run_grid(data, out, arms, seeds=seeds, folds=folds, config=config, overrides=overrides,
                                  key=key, own_files=ABLATION_FILES, settings_name="ablation.json",
                                  launcher=launcher, progress=progress, log=log)
    out = Path(out)
    table = summarize(results, variants)
    n_folds = load_config(config, list(overrides)).data.folds if folds is None else folds
    write_text(out / "table.md", to_markdown(table, metric="macro_f1") + scoring_note(scored_on))
    plot_ablation(table, out / "ablation.png", title=f"{seeds} seed(s) x {n_folds} fold(s)")
    log(wrote_line(out, "ablation.png", results_written=stamp(out / "results.csv") != before))
    return results


def stamp(path: Path) -> int | None:
    """A file's modification time (ns), or None: whether a call rewrote it."""
    return path.stat().st_mtime_ns if path.is_file() else None


def wrote_line(out: Path, plot: str, *, results_written: bool) -> str:
    """The closing line: which files this call wrote. A rerun with every run finished trains nothing
    and leaves results.csv as it was; only the table and the plot are drawn again from it."""
    if results_written:
        return f"wrote {out / 'results.csv'}, {out / 'table.md'} and {out / plot}"
    return (f"nothing left to train: {out / 'results.csv'} unchanged; {out / 'table.md'} and {out / plot} "
            "drawn again from it")


def scoring_note(key: AnswerKey) -> str:
    """The line under every comparison table: what the runs were scored on, and with which checkpoint."""
    return (f"\nEvery run is scored on one key, the same for all: {key.description}. Each run keeps its last "
            "epoch (a fixed budget: no checkpoint is chosen on anyone) and is scored on the people of its "
            "held-out fold, whom it never trained on (results.csv: scored_fold; people.csv: who is in each fold).\n")


@dataclass
class Grid:
    """What ``check_grid`` settled: the arms' configs, the folds to run and the one answer key."""

    out: Path
    names: list[str]
    configs: dict[str, Config]
    base: Config
    n_folds: int
    answer: AnswerKey
    settings: dict  # what OUT/<settings_name> records, so that a rerun pairs only like with like


def run_grid(data: str | Path, out: str | Path, arms: dict[str, list[str]], *, seeds: int, folds: int | None,
             config: str | Path | None, overrides: tuple[str, ...], key: str | Path | None,
             own_files: set[str], settings_name: str, launcher: Launcher | None = None, progress: bool = True,
             log: Callable[[str], None] = print) -> tuple[pd.DataFrame, AnswerKey]:
    """The paired-run machinery shared by ``ablate`` and ``improve``: train every arm (a name and its
    settings) x seed x fold from one prepared dataset into OUT/runs, reusing finished runs, and score
    each on one answer key. Writes OUT/results.csv, OUT/people.csv and OUT/<settings_name>; returns
    this call's rows and the key. Its steps: ``check_grid`` (every refusal, before any work),
    ``settle_with_previous`` (the runs already in OUT must pair with these), ``plan_grid`` (what is
    left to train), ``train_grid`` (here or launched, each run scored as it finishes).

    Held-out scoring: every run trains a fixed budget and keeps its last epoch (``train.select=last``),
    so nobody chooses its checkpoint, and it is scored on its held-out fold. Choosing the best epoch on
    the fold it is then scored on (what ``train`` does for a single run) reports the luckiest epoch of
    each run, most for the noisiest variants; an inner validation split would cost every run a third of
    its training people and another prediction pass per epoch, which a CPU-sized comparison cannot spare.
    """
    grid = check_grid(data, out, arms, seeds=seeds, folds=folds, config=config, overrides=overrides, key=key,
                      own_files=own_files, settings_name=settings_name)
    grid.settings = settle_with_previous(grid, settings_name)
    results = _read_results(grid.out / "results.csv")
    plan, todo = plan_grid(grid, results, seeds)
    prepared = _prepare_first(grid, data, arms, config, overrides, todo or plan, log=log)
    grid.out.mkdir(parents=True, exist_ok=True)
    write_text(grid.out / settings_name, json.dumps(grid.settings, indent=2) + "\n")
    folds_of = next(iter(prepared.values()))
    write_csv(grid.out / "people.csv", folds_of.table[["person"]].assign(fold=folds_of.folds).drop_duplicates("person"))
    log(f"{len(grid.names)} variant(s) x {seeds} seed(s) x {grid.n_folds} fold(s) = {len(plan)} runs; "
        f"{len(plan) - len(todo)} already finished, {len(todo)} to train; scored on {grid.answer.description}")
    train_grid(grid, data, arms, config, overrides, todo, results, prepared, launcher=launcher, progress=progress,
               log=log)
    out = grid.out
    results = _read_results(out / "results.csv") if (out / "results.csv").is_file() else results
    # The table and the plot speak of this call's grid; results.csv keeps every run ever made in OUT.
    planned = set(plan)
    in_plan = pd.Series([(r.variant, r.seed, r.fold) in planned for r in results.itertuples()],
                        index=results.index, dtype=bool)
    return results[in_plan], grid.answer


def check_grid(data: str | Path, out: str | Path, arms: dict[str, list[str]], *, seeds: int, folds: int | None,
               config: str | Path | None, overrides: tuple[str, ...], key: str | Path | None,
               own_files: set[str], settings_name: str) -> Grid:
    """Every refusal of a grid, before any work: the output folder, settings the runner chooses, two arms
    with the same settings, arms that would not be compared on the same people or the same key, the fold
    count. Returns the grid with its answer key and the settings a rerun must match."""
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    out = Path(out)
    claim_folder(out, data=data, ours=lambda name: name in own_files,
                 owner="an ablation's" if settings_name == "ablation.json" else "improve's")
    for k in ("data.fold", "train.select", "train.patience"):
        if k in [o.partition("=")[0].strip() for o in overrides]:
            raise UserError(f"--set {k}: the runner chooses it ({RUNNER_KEYS[k]})")
    base = load_config(config, [*overrides, *HELD_OUT])
    configs = {a: load_config(config, [*overrides, *sets, *HELD_OUT]) for a, sets in arms.items()}
    resolved = {a: _resolved(c) for a, c in configs.items()}
    names = list(arms)
    for i, a in enumerate(names):
        twin = next((w for w in names[:i] if resolved[w] == resolved[a]), None)
        if twin is not None:
            held = [s for s in dict.fromkeys(arms[twin] + arms[a])
                    if _resolved(load_config(config, [*overrides, s, *HELD_OUT])) == _resolved(base)]
            raise UserError(f"variants {twin!r} and {a!r} are the same settings; list each one once"
                            + (f" (the base config already sets {', '.join(held)})" if held else ""))
    if len({(c.data.folds, c.data.split_seed) for c in configs.values()}) > 1:
        raise UserError("variants must share data.folds and data.split_seed: they are compared on the same people")
    if len({c.score_cutoffs for c in configs.values()}) > 1:
        raise UserError("variants must share data.score_age_young/old: they are scored on one answer key")
    n_folds = base.data.folds if folds is None else folds
    if not 1 <= n_folds <= base.data.folds:
        raise UserError(f"--folds must be between 1 and data.folds ({base.data.folds}), got {n_folds}")
    labelled = {str(c.data.corrections) for c in configs.values()}
    if key is None and len(labelled) > 1:
        raise UserError(f"the variants train on different labels (data.corrections {', '.join(sorted(labelled))}); "
                        "give --key (known, none, a corrections CSV or an answer-key CSV) so that every run "
                        "is scored on one answer key")
    answer = resolve_key(key if key is not None else labelled.pop(), data, cutoffs=base.score_cutoffs,
                         allow_outside=base.data.allow_outside)
    # The runs already in OUT are paired with the new ones, so they must be of the same data (by
    # content: a copy is the same data, the same path refilled is not), the same base settings
    # (compared resolved, so the order of --set does not matter) and scored the same way.
    settings = {"config": str(config), "set": list(overrides), "data": str(Path(data).resolve()),
                "data_digest": data_digest(data, allow_outside=base.data.allow_outside),
                # and by photo content: an edited photo of the same size is other data too
                "data_identity": _identity(data, base.data.allow_outside),
                "resolved": json.loads(json.dumps(flat(base))), "scoring": SCORING,
                "key": {"description": answer.description, "digest": answer.digest}}
    return Grid(out, names, configs, base, n_folds, answer, settings)


def settle_with_previous(grid: Grid, settings_name: str) -> dict:
    """The settings to record: this grid's, after checking that the runs already in OUT were made on the
    same data, with the same settings, scored the same way on the same key (else one line saying so)."""
    out, settings, answer = grid.out, grid.settings, grid.answer
    if not (out / settings_name).is_file():
        return settings
    before = read_json(out / settings_name)
    same_data = before["data_digest"] == settings["data_digest"] if "data_digest" in before else \
        before.get("data", settings["data"]) == settings["data"]
    same_data = same_data and identity_change(before.get("data_identity"), settings["data_identity"]) is None
    if not same_data:
        raise UserError(f"{out} holds runs made on other data ({before.get('data')}, as it was then: other "
                        "people, labels or photos); pairs must be scored on the same people, so choose a new "
                        "--out for this data")
    same = _resolved_now(before["resolved"]) == settings["resolved"] if "resolved" in before else \
        (before.get("config"), before.get("set")) == (settings["config"], settings["set"])
    if not same:
        raise UserError(f"{out} holds runs made with --config {before.get('config')} --set "
                        f"{' '.join(before.get('set', [])) or '(none)'}; rerun with those settings to add "
                        f"{'variants or seeds' if settings_name == 'ablation.json' else 'seeds'}, or choose a "
                        "new --out")
    if before.get("scoring") != SCORING:
        raise UserError(f"{out} holds runs scored on the checkpoint their own validation fold chose (before "
                        "held-out scoring); they cannot be paired with held-out runs, so choose a new --out")
    if before.get("key", {}).get("digest") != answer.digest:
        raise UserError(f"{out} holds runs scored on another answer key ({before.get('key', {}).get('description')}); "
                        "give the same --key, or choose a new --out")
    return {**before, "data": settings["data"], "data_digest": settings["data_digest"],
            "data_identity": settings["data_identity"], "resolved": settings["resolved"]}


def plan_grid(grid: Grid, results: pd.DataFrame, seeds: int) -> tuple[list[tuple], list[tuple]]:
    """(every (arm, seed, fold) of the grid, those not finished in results.csv), in plan order."""
    done = {(r.variant, r.seed, r.fold) for r in results.itertuples() if r.status == "ok"}
    plan = [(a, grid.base.train.seed + s, f) for s in range(seeds) for f in range(grid.n_folds) for a in grid.names]
    return plan, [p for p in plan if p not in done]


def _prepare_first(grid: Grid, data, arms: dict[str, list[str]], config, overrides: tuple[str, ...],
                   runs: list[tuple], *, log: Callable[[str], None]) -> dict[tuple, Prepared]:
    """The first run's prepared data, and its model built once: mistakes every run would make (no data,
    too few people, an unknown model) end here, before OUT is written."""
    first = load_config(config, [*overrides, *arms[runs[0][0]], *HELD_OUT, f"data.fold={runs[0][2]}"])
    prepared = {tuple(prepare_key(first).values()): prepare(first, data, log=log)}
    for name in dict.fromkeys(grid.configs[a].model.name for a, _, _ in runs):
        build_model(name, "multi", "none")
    return prepared


def train_grid(grid: Grid, data, arms: dict[str, list[str]], config, overrides: tuple[str, ...], todo: list[tuple],
               results: pd.DataFrame, prepared: dict[tuple, Prepared], *, launcher: Launcher | None,
               progress: bool, log: Callable[[str], None]) -> None:
    """Train what is left (``todo``): here, sharing the prepared photos, or launched, each in its own
    process; every run scored on the answer key as it finishes and results.csv rewritten in plan order."""
    out, answer = grid.out, grid.answer
    runs = []  # (arm, seed, fold), its config, its folder: what is left to train
    fresh: dict[tuple, dict] = {}  # this call's rows, written in plan order whatever order runs finish in

    def record(run: tuple, row: dict) -> None:
        fresh[run] = row
        keep = results[np.array([(r.variant, r.seed, r.fold) not in fresh for r in results.itertuples()], dtype=bool)]
        rows = pd.DataFrame([fresh[p] for p in todo if p in fresh])
        write_csv(out / "results.csv", pd.concat([keep, rows], ignore_index=True)[RESULT_COLUMNS])

    for arm, seed, fold in todo:
        cfg = load_config(config, [*overrides, *arms[arm], *HELD_OUT, f"train.seed={seed}", f"data.fold={fold}"])
        run_dir = _run_dir(out, (arm, seed, fold))
        if _finished(run_dir, cfg):  # trained, but the parent was stopped before recording it (kill -9)
            log(f"{arm}  seed {seed}  fold {fold}: finished before; reusing {run_dir}")
            record((arm, seed, fold), _row((arm, seed, fold), read_json(run_dir / "summary.json"), run_dir, answer,
                                           log=log))
            continue
        if run_dir.exists():
            shutil.rmtree(run_dir)  # an unfinished run of ours: start it again
        runs.append(((arm, seed, fold), cfg, run_dir))
    finished = (_train_launched(runs, data, launcher, log=log) if launcher is not None and runs
                else _train_here(runs, data, prepared, progress=progress, log=log))
    for run, summary, error, trace in finished:
        record(run, _scored_row(run, summary, error, trace, _run_dir(out, run), answer, log=log))


def _resolved(cfg: Config) -> dict:
    """A config's settings as compared between variants: flat, the augmentation in its one spelling."""
    return flat(cfg) | {"data.augment": canonical_augment(cfg.data.augment)}


def _run_dir(out: Path, run: tuple) -> Path:
    """Where run (arm, seed, fold) of the grid in ``out`` trains."""
    return out / "runs" / slug(run[0]) / f"seed-{run[1]}-fold-{run[2]}"


def _train_here(runs: list[tuple], data, prepared: dict[tuple, Prepared], *, progress: bool,
                log: Callable[[str], None]):
    """The sequential default: train ``runs`` in this process, sharing the prepared data between them.
    Yields (run, summary or None, error, traceback) as each ends; a crash loses no other run."""
    store = next(iter(prepared.values())).store
    for i, (run, cfg, run_dir) in enumerate(runs, start=1):
        log(f"[run {i}/{len(runs)}] {run[0]}  seed {run[1]}  fold {run[2]}")
        try:
            pkey = tuple(prepare_key(cfg).values())
            if pkey not in prepared:  # one scan per label setting; the decoded photos are shared by all
                prepared[pkey] = prepare(cfg, data, store=store, log=log)
                store = prepared[pkey].store
            yield run, train(cfg, prepared[pkey], run_dir, progress=progress,
                             log=prefixed(log, f"{run[0]} seed {run[1]} fold {run[2]}")), "", ""
        except KeyboardInterrupt:
            raise
        except UserError as exc:
            yield run, None, str(exc).splitlines()[0], ""
        except Exception as exc:  # a run's crash must not lose the other runs; the traceback is kept
            yield run, None, f"{type(exc).__name__}: {exc}".splitlines()[0], traceback.format_exc()


def _train_launched(runs: list[tuple], data, launcher: Launcher, *, log: Callable[[str], None]):
    """--jobs / Ray: every run in its own process; yields as _train_here does, in the order runs finish."""
    by_name = {f"{a} seed {s} fold {f}": (a, s, f) for (a, s, f), _, _ in runs}
    source = spec_data(data)
    specs = [RunSpec(name, cfg.to_dict(), source, str(run_dir.resolve()))
             for name, (_, cfg, run_dir) in zip(by_name, runs)]
    for n, result in enumerate(launcher.run(specs, log=log), start=1):
        log(f"[run {n}/{len(runs)} finished] {result.spec.name}")
        yield by_name[result.spec.name], result.summary if result.ok else None, result.error, result.traceback


def _scored_row(run: tuple, summary: dict | None, error: str, trace: str, run_dir: Path, answer: AnswerKey, *,
                log: Callable[[str], None]) -> dict:
    """A finished run's results.csv row, scored here, by the parent, on the one answer key; a failed run's
    row names its error (its traceback goes to the run's error.txt)."""
    if summary is not None:
        try:
            row = _row(run, summary, run_dir, answer, log=log)
        except UserError as exc:
            error = str(exc).splitlines()[0]
        except Exception as exc:
            error, trace = f"{type(exc).__name__}: {exc}".splitlines()[0], traceback.format_exc()
        else:
            if not error:
                return row
    if trace:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "error.txt", trace)
    log(f"  failed: {error}" + (f" (traceback in {run_dir / 'error.txt'})" if trace else ""))
    return {"variant": run[0], "seed": run[1], "fold": run[2], "status": "failed", "error": error}


def _row(run: tuple, summary: dict, run_dir: Path, answer: AnswerKey, *, log: Callable[[str], None]) -> dict:
    """results.csv's row of a finished run: its held-out fold scored on the answer key, and its summary."""
    metrics, people = score_run(run_dir, answer)
    log(f"  macro F1 {metrics['macro_f1'] if metrics['macro_f1'] is not None else float('nan'):.4f} "
        f"on the {len(people)} held-out people against the answer key ({answer.description}): the compared figure")
    return {"variant": run[0], "seed": run[1], "fold": run[2], **metrics,
            **{k: summary.get(k) for k in ("best_epoch", "epochs", "seconds_per_epoch")},
            "checkpoint": f"last epoch ({summary.get('epochs')})", "scored_fold": run[2],
            "scored_people": len(people), "status": "ok", "error": ""}


def _finished(run_dir: Path, cfg) -> bool:
    """A run folder that holds a finished training of exactly these settings (reused, never retrained)."""
    from ..config import resume_conflicts
    from ..training.runs import read_run_config

    if not (run_dir / "summary.json").is_file():
        return False
    try:
        saved = read_run_config(run_dir)
    except (UserError, ValueError, TypeError, AttributeError):
        return False
    return not resume_conflicts(saved, cfg) and \
        (saved.train.epochs, saved.train.patience) == (cfg.train.epochs, cfg.train.patience)


def _read_results(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame(columns=RESULT_COLUMNS)
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for col in CHANCE_COLUMNS:
        if col not in frame.columns:
            frame[col] = np.nan
    missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: not an ablation results file (missing {', '.join(missing)}); choose a new --out")
    for col in ("variant", "checkpoint", "status", "error"):
        frame[col] = frame[col].astype(object).where(frame[col].notna(), "").astype(str)
    return frame[RESULT_COLUMNS]


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the Student t interval for the mean; NaN bounds below 2 values."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if len(values) else float("nan")
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf((1 + level) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def fieller_ratio(v: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(ratio of means, low, high) for paired values: mean(v) / mean(b), so it agrees with the paired
    delta mean(v) - mean(b) (below 1 exactly when the delta is below 0), with Fieller's interval for
    a ratio of paired means (the r for which mean(v - r*b) is within its t interval of 0). NaN bounds
    below 2 pairs, or when the baseline's mean is not clearly above 0 (the interval is unbounded)."""
    v, b = np.asarray(v, dtype=float), np.asarray(b, dtype=float)
    n = len(v)
    if n == 0 or b.mean() == 0:
        return float("nan"), float("nan"), float("nan")
    ratio = float(v.mean() / b.mean())
    if n < 2:
        return ratio, float("nan"), float("nan")
    t2 = stats.t.ppf((1 + level) / 2, n - 1) ** 2
    cov = np.cov(np.stack([v, b]), ddof=1) / n  # the covariance of the two means
    qa = b.mean() ** 2 - t2 * cov[1, 1]
    qb = -2 * (v.mean() * b.mean() - t2 * cov[0, 1])
    qc = v.mean() ** 2 - t2 * cov[0, 0]
    disc = qb * qb - 4 * qa * qc
    if qa <= 0 or disc < 0:
        return ratio, float("nan"), float("nan")
    root = np.sqrt(disc)
    return ratio, float((-qb - root) / (2 * qa)), float((-qb + root) / (2 * qa))


def summarize(results: pd.DataFrame, variants: list[str], *, metric: str = "macro_f1") -> pd.DataFrame:
    """Per variant: runs, mean, std and 95% interval of ``metric``; the paired delta (t interval) and the
    ratio of paired means (Fieller's interval) to the first variant over (seed, fold) pairs where both
    ran."""
    ok = results[results["status"] == "ok"].copy()
    ok[metric] = pd.to_numeric(ok[metric], errors="coerce")
    baseline = ok[ok["variant"] == variants[0]].set_index(["seed", "fold"])[metric]
    rows = []
    for v in variants:
        mine = ok[ok["variant"] == v].set_index(["seed", "fold"])[metric].dropna()
        mean, low, high = t_interval(mine.to_numpy())
        pairs = pd.concat([mine.rename("v"), baseline.rename("b")], axis=1, join="inner").dropna()
        delta, d_low, d_high = t_interval((pairs["v"] - pairs["b"]).to_numpy())
        ratio, r_low, r_high = fieller_ratio(pairs["v"].to_numpy(), pairs["b"].to_numpy())
        # A t interval from 2-3 runs can run past what the metric can be (an F1 below 0, a negative
        # ratio); every metric here is a fraction in [0, 1], so the bounds are cut to what is possible.
        low, high = max(low, 0.0), min(high, 1.0)
        d_low, d_high = max(d_low, -1.0), min(d_high, 1.0)
        r_low = max(r_low, 0.0)
        rows.append({"variant": v, "runs": len(mine), "failed": int(((results["variant"] == v)
                                                                      & (results["status"] != "ok")).sum()),
                     "mean": mean, "std": float(mine.std(ddof=1)) if len(mine) > 1 else float("nan"),
                     "low": low, "high": high, "pairs": len(pairs), "delta": delta, "delta_low": d_low,
                     "delta_high": d_high, "ratio": ratio, "ratio_low": r_low, "ratio_high": r_high,
                     "chance": _chance(ok, v, metric)})
    return pd.DataFrame(rows)


def _chance(ok: pd.DataFrame, variant: str, metric: str) -> float:
    """The mean chance level of ``metric`` over the variant's runs (their validation folds' class mix);
    nan for results written before runs recorded it."""
    column = f"chance_{metric}"
    if column not in ok.columns:
        return float("nan")
    values = pd.to_numeric(ok.loc[ok["variant"] == variant, column], errors="coerce").dropna()
    return float(values.mean()) if len(values) else float("nan")


def _fmt(x: float, digits: int = 3, signed: bool = False) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def to_markdown(table: pd.DataFrame, *, metric: str) -> str:
    """The table users paste: one row per variant, the baseline first."""
    lines = [f"| variant | runs | {metric} mean +- std | chance | paired delta [95% CI] | ratio of means [95% Fieller] |",
             "|---|---|---|---|---|---|"]
    for i, r in enumerate(table.itertuples()):
        runs = f"{r.runs}" + (f" ({r.failed} failed)" if r.failed else "")
        if i == 0:
            delta, ratio = "baseline", "1.00x"
        else:
            delta = f"{_fmt(r.delta, signed=True)} [{_fmt(r.delta_low, signed=True)}, {_fmt(r.delta_high, signed=True)}]"
            # Fieller's interval has no bounds when the baseline's mean is not clearly above 0
            bounds = (f"[{_fmt(r.ratio_low, 2)}, {_fmt(r.ratio_high, 2)}]" if np.isfinite(r.ratio_low)
                      else "[unbounded]" if r.pairs >= 2 else "[n/a]")
            ratio = f"{_fmt(r.ratio, 2)}x {bounds}" if np.isfinite(r.ratio) else "n/a"
        chance = getattr(r, "chance", float("nan"))
        low = " (at or below chance)" if np.isfinite(chance) and np.isfinite(r.mean) and r.mean <= chance + 1e-9 else ""
        lines.append(f"| `{r.variant}` | {runs} | {_fmt(r.mean)} +- {_fmt(r.std)}{low} | {_fmt(chance)} | {delta} | {ratio} |")
    return "\n".join(lines) + "\n"
