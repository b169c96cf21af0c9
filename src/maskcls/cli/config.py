"""maskcls config: every setting with its value and one line of help."""

from __future__ import annotations

import argparse

from .common import config_args, resolve_config


def add_parser(sub) -> None:
    from ..config import builtin_names

    p = sub.add_parser("config", help="print every setting with its value and one line of help",
                       description="Print every setting of a config (default: the built-in default) with its "
                                   "value and one line of help; --set shows the effect of overrides.")
    config_args(p, help=f"YAML file or built-in name: {', '.join(builtin_names())}")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import format_settings

    cfg = resolve_config(args, announce=False)
    for line in format_settings(cfg):
        print(line)
    return 0
