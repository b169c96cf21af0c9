"""The `maskcls` command. Each command is one module here holding its parser and its handler side by
side: ``add_parser(subparsers)`` and ``run(args) -> exit status``; a handler only calls the library.
Building the parser imports light modules only (no torch, no image libraries), so `maskcls --help`
and `maskcls --version` answer at once; each ``run`` imports what its command needs."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from importlib import import_module

from ..errors import UserError, user_message
from .common import QUIET_HELP, VERBOSE_HELP, CommandParser, at_least  # noqa: F401 (at_least: benchmarks/_cli.py uses it)

# The modules of the commands, in the order `maskcls --help` lists them.
COMMANDS = ("config", "demo", "demo_data", "validate", "faces", "eda", "summary", "train", "evaluate", "predict", "classify",
            "score", "audit", "review", "interpret", "augment_preview", "export", "bench", "ablate", "lr_find",
            "improve", "serve")


def build_parser() -> argparse.ArgumentParser:
    """The `maskcls` parser with every command's subparser (no torch or image library imported)."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="maskcls",
        description="Train and serve a mask / gender / age classifier for face photos (18 classes, macro F1).",
        epilog="Quick start: `maskcls demo`. On your data: `maskcls validate DATA`, then "
               "`maskcls train DATA --out RUN` (GPU recipe) or `--config demo` (CPU-sized), then "
               "`maskcls predict RUN DATA/eval --out submission.csv`. `maskcls COMMAND --help` for details.",
    )
    parser.add_argument("--version", "-V", action="version", version=f"maskcls {__version__}")
    parser.add_argument("--quiet", "-q", action="store_true", help=QUIET_HELP)
    parser.add_argument("--verbose", "-v", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    for name in COMMANDS:
        import_module(f"{__name__}.{name}").add_parser(sub)
    # -q and -v work after the command too (`maskcls train -q ...`); SUPPRESS keeps the one given before it.
    for command in sub.choices.values():
        command.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
        command.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of one command (``maskcls COMMAND``)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


# errno values that are the user's environment, not a bug: a read-only or full disk, no permission.
USER_OS_ERRORS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
                  errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST}


def main(argv: list[str] | None = None) -> int:
    """Run one command line; returns the exit status (2 and one line for a user's mistake)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's own parser: its usage and its --help, not maskcls's
        _command_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    from ..progress import set_quiet, set_verbose

    set_quiet(args.quiet)
    set_verbose(args.verbose)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"maskcls {args.command}: error: {user_message(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `maskcls classify ... | head`: the reader left; end quietly, as other command-line tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        if exc.errno not in USER_OS_ERRORS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(f"maskcls {args.command}: error: cannot write or read{where}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"maskcls {args.command}: interrupted", file=sys.stderr)
        return 130
