"""What the benchmark scripts share: a user's mistake ends in one line and exit status 2 (as in
`maskcls`), and an --out folder is reused only for the settings that made it, since the scripts skip
the data and the runs they find there."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from maskcls.errors import UserError

STAMP = "benchmark.json"


def positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
