"""maskcls config: every setting with its value and one line of help, or what differs between two configs."""

from __future__ import annotations

import argparse

from .common import config_args, resolve_config


def add_parser(sub) -> None:
    """Add `maskcls config` to the command line: its options and their help."""
    from ..config import builtin_names

    p = sub.add_parser("config", help="print every setting with its value and one line of help",
                       description="Print every setting of a config with its value and one line of help; --set "
                                   "shows the effect of overrides. `maskcls config A B` (two configs: built-in "
                                   "names or YAML files) or `--diff` (the config against the built-in default) "
                                   "prints only the settings that differ, side by side.")
    p.add_argument("configs", metavar="CONFIG", nargs="*",
                   help="one config to list, or two to compare (instead of --config)")
    config_args(p, help=f"YAML file or built-in name: {', '.join(builtin_names())}")
    p.add_argument("--diff", action="store_true",
                   help="only the settings that differ from the built-in default, beside its values")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`maskcls config` with the parsed arguments; returns the exit status (errors raise UserError)."""
    from ..config import format_diff, format_settings, load_config
    from ..errors import UserError

    if len(args.configs) > 2:
        raise UserError(f"give one config to list or two to compare, got {len(args.configs)}")
    if args.configs and args.config is not None:
        raise UserError("give the config as CONFIG or as --config, not both")
    if len(args.configs) == 2:
        first, second = args.configs
        a, b = load_config(first), load_config(second, list(args.set))
        for line in format_diff(a, b, (first, second + "".join(f" --set {s}" for s in args.set))):
            print(line)
        return 0
    if args.configs:
        args.config = args.configs[0]
    cfg = resolve_config(args, announce=False)
    lines = format_diff(load_config("default"), cfg, ("default", args.config)) if args.diff else format_settings(cfg)
    for line in lines:
        print(line)
    return 0
