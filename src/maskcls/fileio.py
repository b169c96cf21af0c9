"""Atomic output: every file is written under a temporary name and renamed into place, so a crash or
Ctrl-C never leaves a half-written file where the user expects a finished one."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

from .errors import UserError

# mkstemp and mkdtemp create 0600 files and 0700 folders; finished output follows the user's umask
# like any other program's (read once: os.umask can only be read by setting it).
_UMASK = os.umask(0)
os.umask(_UMASK)


def _publish_mode(path: Path, *, folder: bool = False) -> None:
    os.chmod(path, (0o777 if folder else 0o666) & ~_UMASK)


def check_replaceable(path: str | Path, *, force: bool, what: str = "--out") -> None:
    """Refuse to overwrite without ``force``, and never replace anything but a regular file (a FIFO,
    a device, a folder or a link elsewhere are the user's, not ours)."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UserError(f"{what} {path} exists and is not a regular file; maskcls replaces regular files only")
    if path.exists() and not force:
        raise UserError(f"{path} already exists; pass --force to overwrite it")


def refuse_output_inside(data: Any, out: str | Path, *, flag: str = "--out") -> None:
    """Outputs never go into the data: a report written under DATA/train/images becomes a stray
    'person' that validate then reports, and an output named like the manifest would replace it.
    ``data`` that is not a path (a DataFrame) has no folder to keep out of."""
    if not isinstance(data, (str, Path)) or not Path(data).exists():
        return
    data, where = Path(data).resolve(), Path(out).resolve()
    inside = where == data if data.is_file() else where.is_relative_to(data)
    if inside:
        raise UserError(f"{flag} {out} is inside the data ({data}); maskcls never writes into the data it reads: "
                        "choose a place outside it")


def claim_folder(out: str | Path, *, data: Any = None, flag: str = "--out", ours: Any = None,
                 owner: str = "", replace: str | None = None, force: bool = False) -> str:
    """The one rule for an output folder, for every command that writes one. Returns what it found:
    "new" (missing or empty), "ours" (it holds only this command's own files: it carries on from them) or
    "replace" (``force`` and the previous output's mark ``replace`` are there: the caller replaces it).

    - never inside ``data``, the data the command reads;
    - never a link, nor a file: an output folder is a real folder (a link may lead anywhere, and what is
      written through it would land outside what the user named);
    - a folder holding other files is refused, naming some of them. ``ours(name)`` says which names this
      command writes (hidden files are always allowed); ``owner`` names whose they are in the message.
    """
    out = Path(out)
    refuse_output_inside(data, out, flag=flag)
    if out.is_symlink():
        raise UserError(f"{flag} {out} is a link; give a real folder (what is written through a link lands "
                        "where it points)")
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out} exists and is not a folder; give a new folder")
    if not out.exists():
        return "new"
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if not names:
        return "new"
    if ours is not None and all(ours(n) for n in names):
        return "ours"
    if replace is not None and (out / replace).exists():
        if force:
            return "replace"
        raise UserError(f"{flag} {out} holds a previous {owner or 'output'}; --force replaces it, or give a new folder")
    others = [n for n in names if ours is None or not ours(n)]
    whose = f" that are not {owner}" if owner and ours is not None else ""
    raise UserError(f"{flag} {out} exists and holds files{whose} ({', '.join(others[:3])}"
                    f"{', ...' if len(others) > 3 else ''}); give a new or empty folder")


_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# What a read-only, full or someone else's output folder raises while we write into it.
_CANNOT_WRITE = _NO_SPACE | {errno.EROFS, errno.EACCES, errno.EPERM}


def cannot_write(target: str | Path, exc: OSError) -> UserError:
    """The one line for output that could not be written, naming the file or folder the user asked for,
    never the temporary name it was being built under."""
    why = os.strerror(exc.errno) if exc.errno else str(exc)
    advice = ("free some space (or choose another place) and run the command again" if exc.errno in _NO_SPACE
              else "choose a place you can write (or make this one writable) and run the command again")
    return UserError(f"{target}: cannot write it: {why}; {advice}")


@contextlib.contextmanager
def naming(target: str | Path, *, also: tuple[int, ...] = ()) -> Iterator[None]:
    """Inside: an OSError of an output that cannot be written (read-only, full, not ours; and the errnos
    in ``also``) becomes ``cannot_write(target)``, naming what the user asked for; any other error passes
    as it is."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _CANNOT_WRITE and exc.errno not in also:
            raise
        raise cannot_write(target, exc) from None


def check_writable(path: str | Path) -> None:
    """Refuse, before any work, output that could not be written: the nearest existing folder on the way
    to ``path`` is read-only or not ours (os.access sees a read-only mount even as root)."""
    path = Path(path)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        err = errno.EROFS if _read_only_mount(folder) else errno.EACCES
        raise cannot_write(path, OSError(err, os.strerror(err)))


def _read_only_mount(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _ours(exc: OSError, *temporary: Path) -> bool:
    """Whether an error raised while building output is about that output (its temporary file or
    folder, or no file named), not about an input read on the way."""
    if exc.errno not in _CANNOT_WRITE:
        return False
    if exc.errno in _NO_SPACE:  # only writing fills a disk: whatever file it names, it is our output
        return True
    name = exc.filename
    if name is None:
        return True
    name = Path(os.fsdecode(name))
    return any(name == t or name.is_relative_to(t) for t in temporary)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on error removed."""
    path = Path(path)
    # ENOENT once the folder exists: a file system that takes no new files there (/proc, a FUSE mount)
    with naming(path, also=(errno.ENOENT,)):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _publish_mode(tmp_path)
        os.replace(tmp_path, path)
    except OSError as exc:
        if not _ours(exc, tmp_path, path):
            raise
        raise cannot_write(path, exc) from None
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """``open`` on a temporary file beside ``path``, renamed onto it when the block ends without error."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, UTF-8."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id is running on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    # A zombie answers signal 0 but is dead: an orphaned worker (its parent killed) stays one until init
    # reaps it, which some containers' init never does.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class PidLock:
    """A lock file holding "pid host" of its owner: one writer per folder (a training run, a review
    server). A lock whose process is gone (kill -9) is taken over; one held by a live process, or by a
    process on another machine (a shared disk: we cannot tell whether it lives), is refused with
    ``busy(pid, host)``'s message."""

    def __init__(self, path: str | Path, busy, *, target: str | Path | None = None) -> None:
        self.path = Path(path)
        self.busy = busy
        self.target = Path(target) if target is not None else self.path.parent  # named when it cannot be written
        self.me = f"{os.getpid()} {socket.gethostname()}"
        self.held = False

    def owner(self) -> tuple[int | None, str]:
        """(pid, host) written in the lock; (None, "") when unreadable or torn (its writer died first)."""
        try:
            pid_text, _, host = self.path.read_text().strip().partition(" ")
            return int(pid_text), host.strip() or socket.gethostname()  # a lock without a host is from here
        except (OSError, ValueError):
            return None, ""

    def acquire(self) -> None:
        """Take the lock, or raise a UserError naming the process that holds it (a dead holder's lock is taken over)."""
        for _ in range(2):
            try:
                with naming(self.target):  # EEXIST is not a write failure: it passes to the handler below
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid, host = self.owner()
                if pid is None and self._young():  # being written this instant by its taker, not torn
                    raise UserError(self.busy("?", socket.gethostname())) from None
                if pid is not None and (host != socket.gethostname() or pid_alive(pid)):
                    raise UserError(self.busy(pid, host)) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(self.me)
            self.held = True
            return
        raise UserError(f"{self.path}: could not take the lock (another process taking it at the same time?)")

    def _young(self) -> bool:
        try:
            return time.time() - self.path.stat().st_mtime < 5
        except OSError:
            return False

    def release(self) -> None:
        """Give the lock back (its file removed)."""
        try:
            if self.held and self.path.read_text() == self.me:
                self.path.unlink()
        except OSError:
            pass
        self.held = False


def _remove_stale_dirs(path: Path) -> None:
    """Remove hidden build folders left beside ``path`` by a killed process (kill -9 skips cleanup);
    the pid in their name tells whether their builder is still running."""
    for old in path.parent.glob(f".{path.name}.*.tmp"):
        parts = old.name[len(path.name) + 2:].split(".")
        if old.is_dir() and parts and parts[0].isdigit() and not pid_alive(int(parts[0])):
            shutil.rmtree(old, ignore_errors=True)


def read_json(path: str | Path) -> Any:
    """The JSON in ``path``, or a UserError naming the file where it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable JSON file ({exc})") from None


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` as CSV (no index) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a whole folder under a temporary name and move it into place only when complete."""
    path = Path(path)
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_dirs(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _publish_mode(tmp, folder=True)
        if path.exists():
            # Only an empty folder may be replaced; callers refuse non-empty ones before starting.
            path.rmdir()
        os.replace(tmp, path)
    except OSError as exc:
        if not _ours(exc, tmp, path):
            raise
        # A file inside the folder being built is named by its place in the finished folder.
        name = Path(os.fsdecode(exc.filename)) if exc.filename is not None else tmp
        raise cannot_write(path / name.relative_to(tmp) if name.is_relative_to(tmp) else path, exc) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def require_file(path: str | Path, kind: str = "file", *, what: str = "", hint: str = "",
                 missing: str = "file not found") -> Path:
    """``path`` when it is a file; otherwise a UserError that says what is there instead (a folder is
    not "not found"). ``what`` names the role before the path, ``hint`` says what to give instead."""
    path = Path(path)
    name, advice = f"{what} {path}" if what else str(path), f" ({hint})" if hint else ""
    if path.is_dir():
        article = "an" if kind[:1].lower() in "aeio" or kind.startswith("ONNX") else "a"
        raise UserError(f"{name}: a folder, not {article} {kind}{advice}")
    if not path.is_file():
        raise UserError(f"{name}: {'not a regular file' if path.exists() else missing}{advice}")
    return path


def read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a CSV as strings (ids keep their leading zeros) and check its header. The index holds each
    row's line number in the file (blank lines skipped but counted), for messages."""
    require_file(path, "CSV file")
    try:
        # Blank lines are kept while reading so that each row knows its line in the file, then dropped.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise UserError(f"{path}: not a readable CSV file ({str(exc).strip().splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame.index = pd.RangeIndex(2, len(frame) + 2)  # the header is line 1
    blank = frame.apply(lambda col: col.str.strip() == "").all(axis=1) if len(frame.columns) else frame.index == frame.index
    frame = frame[~blank]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns) or 'none'}")
    return frame
