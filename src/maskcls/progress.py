"""Progress bars with manners: silent under --quiet, and a few whole lines instead of hundreds when
stderr is a log file rather than a terminal.

Off a terminal every update is one newline-terminated line (tqdm's carriage returns would join a
whole training into one line that `grep` and `tail -f` cannot read), at most one every 30 s.
``prefixed`` tags the lines of one run among many (`[hflip seed 1 fold 0] epoch 3/12 ...`)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import Any, Callable, TextIO

from tqdm import tqdm

_quiet = False
LOG_INTERVAL_S = 30.0  # off a terminal: at most one progress line per bar this often
_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # cursor moves tqdm writes for nested bars


def set_quiet(quiet: bool) -> None:
    """--quiet: no progress bars anywhere (messages and results still print)."""
    global _quiet
    _quiet = quiet


_verbose = False


def set_verbose(verbose: bool) -> None:
    """--verbose: lists where the default is a count (corrections naming people not in the data)."""
    global _verbose
    _verbose = verbose


def is_verbose() -> bool:
    """Whether --verbose was given."""
    return _verbose


def is_quiet() -> bool:
    """Whether --quiet was given."""
    return _quiet


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (progress bars draw in place only there)."""
    return bool(getattr(stream, "isatty", None)) and stream.isatty()


class LineWriter:
    """A file for tqdm that turns its redraws into whole lines: each status ends with a newline,
    the carriage returns and cursor moves are dropped, blank erasures are skipped."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        """Write whole lines only: a bar's in-place updates become a line every 30 s."""
        for part in re.split(r"[\r\n]", _CONTROL.sub("", text)):
            if part.strip():
                self.stream.write(part.rstrip() + "\n")
        return len(text)

    def flush(self) -> None:
        """Flush the stream beneath."""
        self.stream.flush()


def bar(iterable: Iterable | None = None, *, desc: str = "", total: int | None = None, unit: str = "it",
        disable: bool = False, leave: bool = True, file: TextIO | None = None) -> Any:
    """tqdm, unless quiet; when the stream (stderr) is not a terminal, whole lines, one every 30 s."""
    stream = file if file is not None else sys.stderr
    tty = is_terminal(stream)
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable or _quiet, leave=leave,
                file=stream if tty else LineWriter(stream), dynamic_ncols=tty,
                mininterval=0.1 if tty else LOG_INTERVAL_S, maxinterval=10.0 if tty else 2 * LOG_INTERVAL_S)


def prefixed(log: Callable[[str], None], tag: str) -> Callable[[str], None]:
    """``log`` with every line tagged ``[tag] `` (trainings inside --fold all, audit, ablate, improve)."""
    return lambda line: log(f"[{tag}] {line}")
