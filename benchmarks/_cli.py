"""What the benchmark scripts share: a user's mistake ends in one line and exit status 2 (as in
`maskcls`), and an --out folder is reused only for the settings that made it, since the scripts skip
the data and the runs they find there."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from maskcls.cli import at_least
from maskcls.cli.common import CommandParser
from maskcls.config import Config, flat, set_values
from maskcls.errors import UserError

STAMP = "benchmark.json"


positive = at_least(1)  # argparse type: a whole number >= 1, as maskcls's own commands check them


def parser_for(doc: str, *, people: int, folds: int, epochs: int, what: str) -> argparse.ArgumentParser:
    """The options both k-fold benchmarks take: people, folds, epochs, config, --set and --out."""
    # maskcls's own parser: a bad value (--seeds 0) is one line, the usage only for a misshapen command line
    parser = CommandParser(description=doc.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--people", type=positive, default=people, help="synthetic training people (default: %(default)s)")
    parser.add_argument("--folds", type=positive, default=folds, help=f"k: {what} (at least 2; default: %(default)s)")
    parser.add_argument("--epochs", type=positive, default=epochs, help="epochs per fold model (default: %(default)s)")
    parser.add_argument("--config", default="demo", help="base config: a built-in name or a YAML file (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting on top of the config, e.g. data.crop=center (repeatable)")
    parser.add_argument("--out", default=None, help="keep the data and the runs here and reuse them when rerun with "
                                                     "the same settings (default: a temp folder)")
    return parser


def check_folds(args: argparse.Namespace) -> None:
    if set_values(args.set, "data.folds"):
        raise UserError("--set data.folds: the benchmark sets it from --folds")
    if args.folds < 2:
        raise UserError(f"--folds must be at least 2, got {args.folds}")
    if args.people < 2 * args.folds:
        raise UserError(f"--people {args.people} is too few for {args.folds} folds; give at least {2 * args.folds}")


def stamp_of(args: argparse.Namespace, cfg: Config) -> dict:
    """What makes an --out folder's data and runs: the script's numbers and the resolved settings (so
    the order of --set, or a setting given twice, does not matter)."""
    # jobs: how, not what; repeats: further fold draws beside the first (the audit reuses those there)
    own = {k: v for k, v in vars(args).items() if k not in ("out", "config", "set", "jobs", "repeats")}
    return {**own, **{f"setting {k}": v for k, v in json.loads(json.dumps(flat(cfg))).items()}}


def out_folder(path: str | None, settings: dict, tmp: str) -> Path:
    """The folder to work in: a temp folder, or --out, which must be new, empty, or made by this same call."""
    if path is None:
        return Path(tmp)
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise UserError(f"--out {root}: exists and is not a folder")
    stamp = root / STAMP
    if root.is_dir() and any(root.iterdir()):
        if not stamp.is_file():
            raise UserError(f"--out {root}: a folder with other files in it; choose a new or empty folder")
        before = json.loads(stamp.read_text())
        changed = sorted(k for k in before.keys() | settings.keys() if before.get(k) != settings.get(k))
        if changed:
            raise UserError(f"--out {root} holds data and runs made with other settings "
                            f"({', '.join(f'{k}: {before.get(k)} -> {settings.get(k)}' for k in changed)}); "
                            "rerun with those or choose a new folder")
    root.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(settings, indent=2) + "\n")
    return root


def run(main: Callable[[], None]) -> None:
    try:
        main()
    except UserError as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
