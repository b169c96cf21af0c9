"""The epoch budget of a final fit (`train --fold none --epochs-from RUN`): the run trains on every
person, so no one is left to choose its epoch; a finished `--fold all` run of the same recipe chose it.

The rule: the median over the folds of each fold's best epoch (the epoch its best.pt holds), rounded
half up. The final fit then trains that many epochs on every person, its schedule stretched over them,
and keeps the last. Each epoch holds k/(k-1) the photos of a fold's, so the fit takes k/(k-1) the
steps: more data for the same number of passes, as a fold model's best epoch was measured.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from .. import config as config_mod
from ..config import Config
from ..errors import UserError

# `maskcls train --help` reads RULE: this module stays free of torch and pandas (training.runs and fileio
# are imported where used).

RULE = "the median of its folds' best epochs, rounded half up"

# Settings a final fit may set apart from the cross-validated recipe: the held-out fold and what
# follows from holding no one out, the epochs (which this module sets), and how, not what, it trains.
FREE = frozenset({"data.fold", "train.select", "train.patience", "train.epochs", *config_mod.RESUMABLE_CHANGES})


@dataclass(frozen=True)
class Budget:
    """Where a final fit's epoch count came from, as summary.json records it."""

    epochs: int
    source: str  # "config" or the --fold all run's folder
    best_epochs: tuple[int, ...] = ()

    def describe(self) -> str:
        """'N epochs (from ...)': the budget and where it came from."""
        epochs = f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}"
        if self.source == "config":
            return f"{epochs} from the config (train.epochs)"
        return f"{epochs} from {self.source}: {RULE} ({', '.join(map(str, self.best_epochs))})"

    def to_dict(self) -> dict:
        """The budget as summary.json records it."""
        out = {"epochs": self.epochs, "source": self.source}
        if self.best_epochs:
            out.update(rule=RULE, best_epochs=list(self.best_epochs))
        return out


def median_epoch(best_epochs: list[int]) -> int:
    """The rule, on its own: median, rounded half up (8 and 9 give 9)."""
    return int(math.floor(statistics.median(best_epochs) + 0.5))


def epochs_from(run: str | Path) -> Budget:
    """The budget a finished `--fold all` run chose. Refuses a run that is not one, or not finished."""
    from ..fileio import read_json
    from .runs import fold_dir

    run = Path(run)
    if not run.is_dir():
        what = "a file, not a run folder" if run.exists() else "no such folder"
        raise UserError(f"--epochs-from {run}: {what}; give a finished `maskcls train DATA --out RUN --fold all` run")
    cv_path = run / "cv_summary.json"
    if not cv_path.is_file():
        what = ("a run with folds left to train (rerun its --fold all command to finish it)"
                if fold_dir(run, 0).is_dir() else "not a --fold all run (it has no cv_summary.json)")
        raise UserError(f"--epochs-from {run}: {what}; the epoch count is read from every fold's best epoch")
    try:
        per_fold = read_json(cv_path)["per_fold"]
        best = [int(f["best_epoch"]) for f in per_fold]
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{cv_path}: not a cv_summary.json that maskcls wrote (no per-fold best_epoch: {exc})") from None
    if not best or min(best) < 1:
        raise UserError(f"{cv_path}: holds no fold's best epoch")
    return Budget(median_epoch(best), str(run), tuple(best))


def recipe_config(run: str | Path) -> Path:
    """The config file of the cross-validated recipe (its fold 0's): what a final fit trains with unless
    told otherwise."""
    from .runs import fold_dir

    return fold_dir(run, 0) / "config.yaml"


def check_same_recipe(run: str | Path, cfg: Config) -> None:
    """A budget chosen for one recipe says nothing about another: refuse settings that differ from the
    run's, other than those a final fit sets itself (FREE). mean/std count only where cfg sets them."""
    from .runs import read_run_config

    chosen = read_run_config(run)
    old, new = config_mod.flat(chosen), config_mod.flat(cfg)
    changed = [f"{k} ({config_mod.shown(old.get(k))} -> {config_mod.shown(v)})" for k, v in new.items()
               if k not in FREE and old.get(k) != v and not (k in ("data.mean", "data.std") and v is None)]
    if changed:
        raise UserError(f"--epochs-from {run} chose the epochs for its own settings, and these differ: "
                        f"{', '.join(changed[:4])}{' ...' if len(changed) > 4 else ''}; leave out --config, --set and "
                        "the options that change them to train its recipe, or cross-validate this one first")
