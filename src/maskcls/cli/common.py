"""What several commands share: help texts, argparse types and the option groups they repeat.
Light to import: no torch, no image libraries (the parser is built before any command runs)."""

from __future__ import annotations

import argparse
from typing import Callable

from ..errors import UserError

DATA_HELP = "a folder in the competition layout (train/train.csv, train/images/...) or a .csv manifest"
RUNS_HELP = ("a run folder, a --fold all run (all its fold models), or several runs: "
             "their probabilities are averaged (an ensemble)")
CORR_HELP = "label corrections: 'known' (the published list for the real data), 'none', or a CSV file"
QUIET_HELP = "no progress bars (messages and results still print)"


class CommandParser(argparse.ArgumentParser):
    """A command's parser. ``more_help`` (a function) ends the description with text computed only
    when --help is shown: the augmentation presets' table imports Albumentations, which takes seconds."""

    def __init__(self, *args, more_help: Callable[[], str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.more_help = more_help

    def format_help(self) -> str:
        if self.more_help is not None:
            self.description = (self.description or "") + self.more_help()
            self.more_help = None
        return super().format_help()


def at_least(low: int) -> Callable[[str], int]:
    """argparse type: a whole number >= low (seeds and worker counts take 0, counts of things 1)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


nonneg = at_least(0)


def config_args(p: argparse.ArgumentParser, *, default: str | None, help: str,
                set_help: str = "override a setting") -> None:
    """--config (a YAML file or built-in name) and repeatable --set KEY=VALUE, as load_config takes them."""
    p.add_argument("--config", default=default, help=help)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)


def cutoff_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--age-young", type=int, default=30, help="first age of the middle group (default 30)")
    p.add_argument("--age-old", type=int, default=60, help="first age of the old group (default 60; teams used 57-59)")


def cutoffs(args: argparse.Namespace):
    """The AgeCutoffs of --age-young/--age-old; a wrong order is the user's mistake."""
    from ..labels import AgeCutoffs

    try:
        return AgeCutoffs(args.age_young, args.age_old)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def device_arg(p: argparse.ArgumentParser, *, default: str | None, help: str) -> None:
    from ..config import choices_of

    p.add_argument("--device", default=default, choices=choices_of("train.device"), metavar="DEVICE", help=help)


def inference_args(p: argparse.ArgumentParser) -> None:
    """What evaluate, predict and classify share: how the run's model is run."""
    from ..serve.backends import BACKENDS, TTA_CHOICES

    p.add_argument("--tta", default="none", choices=TTA_CHOICES,
                   help="test-time augmentation: hflip averages the photo and its mirror image")
    device_arg(p, default="auto", help="auto (GPU when there is one), cpu or cuda")
    p.add_argument("--workers", type=nonneg, default=0, help="photo-loading processes (default 0: load in this one)")
    p.add_argument("--backend", default="torch", choices=tuple(BACKENDS),
                   help="; ".join(f"{name}: {b.help}" for name, b in BACKENDS.items()))


def launch_args(p: argparse.ArgumentParser) -> None:
    """--jobs/--devices (this machine) and --launcher ray (a cluster): on the commands that train several runs."""
    g = p.add_argument_group("many runs at once")
    g.add_argument("--jobs", type=at_least(1), default=None, metavar="N",
                   help="train N runs at once, each in its own process pinned to one device (default 1: one "
                        "after another in this process); the files are the same as without it")
    g.add_argument("--devices", default=None, metavar="LIST",
                   help="devices for --jobs: cpu, cuda (every GPU) or cuda:0,cuda:1,... (default: every visible "
                        "GPU, else cpu); one run per GPU at a time, several may share cpu; without --jobs, one "
                        "run per device listed")
    g.add_argument("--launcher", default="local", choices=("local", "ray"),
                   help="ray: send each run as a Ray task (one GPU each, else --cpus-per-run CPUs) to "
                        "--ray-address, or to a Ray on this machine; DATA and --out must be paths every node sees")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="the Ray cluster's head, HOST:PORT (as `ray start --head` prints), ray://HOST:PORT or auto")
    g.add_argument("--cpus-per-run", type=at_least(1), default=None, metavar="N",
                   help="CPU threads per run (Ray: CPUs reserved per task; default 1); locally, default: the "
                        "cores divided by --jobs")


def launch_options(args: argparse.Namespace) -> dict:
    """The open_launcher keywords of launch_args' options."""
    return {"jobs": args.jobs, "devices": args.devices, "launcher": args.launcher, "ray_address": args.ray_address,
            "cpus_per_run": args.cpus_per_run}


def launch_asked(args: argparse.Namespace) -> bool:
    """Whether any of launch_args' options was given (they mean nothing to a command that trains one run)."""
    return any(v is not None for v in (args.jobs, args.devices, args.ray_address, args.cpus_per_run)) \
        or args.launcher != "local"
