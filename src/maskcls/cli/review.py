"""maskcls review: serve an audit's review page on 127.0.0.1; every decision goes to disk as it is made."""

from __future__ import annotations

import argparse

from .common import at_least


def add_parser(sub) -> None:
    """Add `maskcls review` to the command line: its options and their help."""
    p = sub.add_parser("review", help="serve an audit's review page; every decision is written to disk",
                       description="Serve AUDIT/review.html on 127.0.0.1 (open the printed address in a browser). "
                                   "Every accept / reject / skip / undo is appended to AUDIT/decisions.csv as it "
                                   "is made, and AUDIT/accepted_corrections.csv (the corrections format, for "
                                   "`maskcls train --corrections`) is rewritten with it. A later `maskcls audit` "
                                   "into AUDIT (or given --decisions) does not raise rejected suggestions again. "
                                   "Ctrl-C stops; rerun to continue.")
    p.add_argument("audit", metavar="AUDIT", help="the folder of a `maskcls audit DATA --out AUDIT`")
    p.add_argument("--port", type=at_least(0), default=8765,
                   help="port on 127.0.0.1 (default 8765; 0 picks a free one)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls review` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..audit.server import serve

    serve(args.audit, port=args.port, log=lambda line: print(line, flush=True))
    return 0
