"""What several commands share: help texts, argparse types and the option groups they repeat.
Light to import: no torch, no image libraries (the parser is built before any command runs)."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from ..errors import UserError

DATA_HELP = "a folder in the competition layout (train/train.csv, train/images/...) or a .csv manifest"
RUNS_HELP = "a run folder, a --fold all run (all its fold models) or a .onnx file; --add-run adds more"


def runs_args(p: argparse.ArgumentParser) -> None:
    """RUN and repeatable --add-run: the one way evaluate, predict and classify take an ensemble."""
    p.add_argument("run", metavar="RUN", help=RUNS_HELP)
    p.add_argument("--add-run", action="append", default=[], metavar="RUN",
                   help="another run whose probabilities are averaged with RUN's (an ensemble); repeat for more")


def runs_of(args: argparse.Namespace):
    """RUN alone, or [RUN, *--add-run] for an ensemble."""
    return [args.run, *args.add_run] if args.add_run else args.run
CORR_HELP = "label corrections: 'known' (the published list for the real data), 'none', or a CSV file"
QUIET_HELP = "no progress bars (messages and results still print)"
VERBOSE_HELP = ("say more: list every correction naming a person not in the data (validate, summary and every "
                "training log), where the default is one count line")


class CommandParser(argparse.ArgumentParser):
    """A command's parser. ``more_help`` (a function) ends the description with text computed only
    when --help is shown: the augmentation presets' table imports Albumentations, which takes seconds."""

    def __init__(self, *args, more_help: Callable[[], str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.more_help = more_help

    # argparse's own errors that are about the command line's shape, where the usage lines help; a bad
    # value of one option (--jobs 0) is said in one line, with where to read more.
    _SHAPE_ERRORS = ("the following arguments are required", "unrecognized arguments", "one of the arguments",
                     "expected one argument", "expected at least one argument", "not allowed with argument")

    def error(self, message: str):
        """A bad command line: usage lines only for its shape, then one line with where to read more."""
        if any(s in message for s in self._SHAPE_ERRORS):
            self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` for more)\n")

    def format_help(self) -> str:
        """The help, with the text that is costly to compute added only now."""
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


def config_args(p: argparse.ArgumentParser, *, help: str = "YAML file or built-in name (default, demo, plain, "
                "gpu-resnet50, real-cpu)", set_help: str = "override a setting, e.g. --set train.epochs=5") -> None:
    """--config (a YAML file or built-in name; one default rule for every command) and repeatable
    --set KEY=VALUE, as load_config takes them."""
    from ..config import DEFAULT_CONFIG_RULE

    p.add_argument("--config", default=None, help=f"{help}; {DEFAULT_CONFIG_RULE}")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)


def resolve_config(args: argparse.Namespace, *, announce: bool = True):
    """The config a command runs with: --config, else the machine's default (DEFAULT_CONFIG_RULE). Sets
    ``args.config`` to the name chosen and, for commands that train, prints which one first (stdout,
    where their log lines go: stderr keeps to progress and the one-line error)."""
    from ..config import default_config_name, describe_config, load_config

    chosen = args.config is None
    args.config = default_config_name() if chosen else args.config
    cfg = load_config(args.config, list(args.set))
    if announce:
        print(describe_config(args.config, args.set, cfg, chosen=chosen), flush=True)
    return cfg


def cutoff_args(p: argparse.ArgumentParser) -> None:
    """--age-young and --age-old, the shorthands of data.age_young and data.age_old."""
    p.add_argument("--age-young", type=int, default=None,
                   help="first age of the middle group (default 30; the same as --set data.age_young=N)")
    p.add_argument("--age-old", type=int, default=None,
                   help="first age of the old group (default 60, teams used 57-59; the same as --set data.age_old=N)")


def data_setting_args(p: argparse.ArgumentParser) -> None:
    """The settings of a command that reads labels but trains nothing (eda, summary): the age cut-offs as
    flags and --set for DATA_KEYS; data_settings() reads them back."""
    cutoff_args(p)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"a data setting, as train takes it: {', '.join(DATA_KEYS)}")


def device_arg(p: argparse.ArgumentParser, *, default: str | None, help: str) -> None:
    """--device with train.device's choices."""
    from ..config import choices_of

    p.add_argument("--device", default=default, choices=choices_of("train.device"), metavar="DEVICE", help=help)


def inference_args(p: argparse.ArgumentParser) -> None:
    """What evaluate, predict and classify share: how the run's model is run."""
    from ..serve.backends import BACKENDS, TTA_CHOICES

    p.add_argument("--tta", default="none", choices=TTA_CHOICES,
                   help="test-time augmentation: hflip averages the photo and its mirror image")
    device_arg(p, default="auto", help="auto (GPU when there is one), cpu or cuda")
    workers_arg(p)
    p.add_argument("--backend", default="torch", choices=tuple(BACKENDS),
                   help="; ".join(f"{name}: {b.help}" for name, b in BACKENDS.items()))


WORKERS_HELP = "photo-loading processes (default: the machine's cores, at most 8; 0 loads in this process)"


def workers_arg(p: argparse.ArgumentParser, help: str = WORKERS_HELP) -> None:
    """--workers with the one default every command shares (data.workers's: the cores, at most 8)."""
    p.add_argument("--workers", type=nonneg, default=None, help=help)


def workers_value(args: argparse.Namespace) -> int:
    """--workers, or the shared default when not given."""
    from ..config import default_workers

    return default_workers() if args.workers is None else args.workers


# Flags that are shorthands of settings: a command that takes --set takes both spellings.
SETTING_FLAGS = {"age_young": "data.age_young", "age_old": "data.age_old", "allow_outside": "data.allow_outside",
                 "device": "train.device", "workers": "data.workers"}


def setting_args(p: argparse.ArgumentParser, *, device: bool = True, workers: bool = True) -> None:
    """The shorthands of settings on commands that train: --device, --workers, --age-young, --age-old,
    --allow-outside (each the same as its --set key)."""
    if device:
        device_arg(p, default=None, help="auto (GPU when there is one), cpu or cuda; the same as "
                                         "--set train.device=... (default: the config's)")
    if workers:
        workers_arg(p, help="photo-loading processes (--set data.workers=N; default: the config's data.workers: "
                            "0, loading in this process, in the CPU configs (demo, plain, real-cpu); the machine's "
                            "cores, at most 8, in default.yaml)")
    cutoff_args(p)
    p.add_argument("--allow-outside", action="store_true", default=None,
                   help="accept manifest paths outside its folder (the same as --set data.allow_outside=true)")


def setting_flags(args: argparse.Namespace) -> list[str]:
    """--set overrides spelled by the shorthand flags given (None: not given)."""
    out = []
    for attr, key in SETTING_FLAGS.items():
        value = getattr(args, attr, None)
        if value is not None:
            out.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
    return out


def data_settings(args: argparse.Namespace):
    """The data settings of a command that reads labels but trains nothing (eda, summary): --set keys
    among DATA_KEYS, then the shorthand flags. Returns the Config."""
    from ..config import load_config

    sets = list(getattr(args, "set", []))
    for item in sets:
        key = item.partition("=")[0].strip()
        if key not in DATA_KEYS:
            raise UserError(f"--set {item}: this command takes only {', '.join(DATA_KEYS)}")
    return load_config(None, [*sets, *setting_flags(args)])


DATA_KEYS = ("data.age_young", "data.age_old", "data.allow_outside", "data.cache_dir", "data.face_detectors",
             "data.face_groups")
FOLDS_HELP = "K person-level folds, every one trained (the same as --set data.folds=K; default: the config's data.folds)"


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
