"""Progress bars with manners: silent under --quiet, and a few lines instead of hundreds when stderr
is a log file rather than a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

_quiet = False


def set_quiet(quiet: bool) -> None:
    """--quiet: no progress bars anywhere (messages and results still print)."""
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def bar(iterable: Iterable | None = None, *, desc: str = "", total: int | None = None, unit: str = "it",
        disable: bool = False, leave: bool = True) -> Any:
    """tqdm, unless quiet; when stderr is not a terminal, one update every 30 s (a log gets a few
    lines per step, not every refresh)."""
    tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable or _quiet, leave=leave,
                dynamic_ncols=tty, mininterval=0.1 if tty else 30.0, maxinterval=10.0 if tty else 60.0)
