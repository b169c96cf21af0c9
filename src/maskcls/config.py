"""One typed config: defaults <- YAML file <- --set key=value overrides; saved with every run.

The defaults are the full-data GPU recipe (ResNet50 fine-tuned at the photos' own 384x512 size);
configs/demo.yaml shrinks it to a CPU-sized run.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .choices import (AMPS, CACHES, CROPS, HEADS, LOSSES, OPTIMIZERS, SAMPLERS, SCHEDULES, check_cascade, described,
                      note_legacy, parse_augment, split_legacy)
from .errors import UserError

if TYPE_CHECKING:
    from .labels import AgeCutoffs

# Settings that may change when a run is resumed: they do not alter what the optimizer has done so
# far. train.epochs re-stretches the cosine schedule from the current step. Every other change
# (lr, weight decay, optimizer, model, data, augmentation...) is refused: silently keeping the
# checkpoint's optimizer state with a new setting would make the run match neither setting.
RESUMABLE_CHANGES = ("train.epochs", "train.patience", "train.log_every", "train.trackers", "train.device", "train.threads",
                     "train.mlflow_model",
                     "data.workers", "data.pin_memory", "data.cache", "data.cache_dir", "train.compile")


def _f(default: Any, help: str, *, choices: tuple[str, ...] | None = None, lo: float | None = None,
       hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> Any:
    """A setting: its default, one line of help (`maskcls config` prints it), and what it allows: the
    names it takes (``choices``) or its range. ``check`` enforces both; factories read ``choices_of``."""
    meta = {"help": help, "choices": choices, "range": (lo, hi, lo_open, hi_open)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


class _Strict:
    """Refuses attributes that are not settings: ``cfg.train.epoch = 1`` (a typo) must not be ignored
    while the default trains, as the CLI's --set would not ignore it either."""

    def __setattr__(self, name: str, value: Any) -> None:
        known = [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]}?" if near else f"; its settings are {', '.join(known)}"
            raise AttributeError(f"{type(self).__name__} has no setting {name!r}{hint}")
        object.__setattr__(self, name, value)


@dataclass
class ModelConfig(_Strict):
    name: str = _f("resnet50", "a torchvision model name, or any timm name ('timm:' forces timm); face-descriptor: "
                               "no CNN, the three heads on the face model's descriptor alone (seconds on a CPU)")
    heads: str = _f("multi", described(HEADS), choices=tuple(HEADS))
    weights: str = _f("imagenet", "imagenet | none | path to a .pth / .safetensors file")
    freeze_epochs: int = _f(1, "train only the heads for this many epochs first", lo=0)
    backbone_lr_mult: float = _f(0.1, "backbone learning rate = train.lr * this", lo=0)
    drop_rate: float = _f(0.2, "dropout before the heads", lo=0, hi=1, hi_open=True)
    face_features: bool = _f(False, "the gender and age heads also read the face model's 128-d descriptor (`maskcls "
                                    "faces`; standardized, frozen), beside the CNN's pooled features (docs/faces.md, "
                                    "Face features)")


@dataclass
class DataConfig(_Strict):
    size: str = _f("384x512", "WIDTHxHEIGHT fed to the model, the same for training and inference")
    mean: list[float] | None = _f(None, "input mean (R, G, B in 0..1); null: the model's pretrained config")
    std: list[float] | None = _f(None, "input std (R, G, B in 0..1); null: the model's pretrained config")
    crop: str = _f("none", "the crop before the resize, in training and inference alike", choices=tuple(CROPS))
    augment: str = _f("hflip+vflip", "random training transforms joined by + (see `maskcls augment-preview --help`)")
    face_margin: float = _f(0.5, "data.crop=face: the face box grows by this share of its size (more above: hair)",
                            lo=0, hi=3)
    cache_dir: str = _f("", "on-disk caches (faces, preprocessed photos); empty: $MASKCLS_CACHE or ~/.cache/maskcls")
    face_detectors: str = _f("hog+haar", "the face detector cascade of `maskcls faces` and data.crop=face, tried in "
                                         "order, joined by +: hog, haar, cnn (see `maskcls faces --help`)")
    face_groups: bool = _f(True, "person-level folds keep person ids whose faces match (one person filed twice) in "
                                 "one fold, when the face cache holds the data's faces (`maskcls faces DATA`)")
    corrections: str = _f("known", "label corrections: known | none | path to a corrections CSV")
    allow_outside: bool = _f(False, "accept manifest paths outside the manifest's folder (.. or absolute)")
    age_young: int = _f(30, "first age of the middle group, for training", lo=1, hi=100)
    age_old: int = _f(60, "first age of the old group, for training (teams used 57-59)", lo=2, hi=100)
    score_age_young: int = _f(30, "first age of the middle group, for scoring (the competition's 30)", lo=1, hi=100)
    score_age_old: int = _f(60, "first age of the old group, for scoring (the competition's 60)", lo=2, hi=100)
    folds: int = _f(5, "number of person-level folds", lo=2)
    fold: int | None = _f(0, "which person-level fold is held out for validation; null (train --fold none): no one, "
                             "every person trains and the last epoch is kept", lo=0)
    split_seed: int = _f(0, "decides which people fall in which fold; train.seed never moves people")
    cache: str = _f("none", described(CACHES), choices=tuple(CACHES))
    workers: int | None = _f(None, "photo-loading processes; null: the machine's cores, at most 8", lo=0)
    pin_memory: bool = _f(True, "page-locked batches for faster copies to the GPU")


@dataclass
class TrainConfig(_Strict):
    epochs: int = _f(12, "training epochs", lo=1)
    batch_size: int = _f(64, "photos per step", lo=1)
    optimizer: str = _f("adamw", described(OPTIMIZERS), choices=tuple(OPTIMIZERS))
    lr: float = _f(1e-3, "peak learning rate of the heads", lo=0, lo_open=True)
    weight_decay: float = _f(0.05, "weight decay (not on biases and norm weights)", lo=0)
    momentum: float = _f(0.9, "SGD momentum", lo=0, hi=1, hi_open=True)
    schedule: str = _f("cosine", described(SCHEDULES), choices=tuple(SCHEDULES))
    warmup_epochs: float = _f(1.0, "linear warm-up length in epochs (cosine schedule)", lo=0)
    min_lr_ratio: float = _f(0.01, "the cosine schedule ends at lr * this", lo=0, hi=1)
    loss: str = _f("ce", described(LOSSES), choices=tuple(LOSSES))
    focal_gamma: float = _f(2.0, "focal loss gamma", lo=0)
    class_weights: bool = _f(True, "weight the loss by inverse class frequency (the rare 60+ classes count more)")
    label_smoothing: float = _f(0.05, "label smoothing of the cross-entropy", lo=0, hi=1, hi_open=True)
    sampler: str = _f("none", described(SAMPLERS), choices=tuple(SAMPLERS))
    patience: int = _f(0, "stop after this many epochs without a better macro F1; 0 = never", lo=0)
    select: str = _f("best", "the checkpoint a run keeps (best.pt): best = best validation macro F1; last = the "
                     "last epoch, chosen without looking at the validation people, so its score is unbiased",
                     choices=("best", "last"))
    amp: str = _f("auto", described(AMPS), choices=tuple(AMPS))
    channels_last: bool = _f(True, "channels_last memory format (GPU only)")
    device: str = _f("auto", "auto | cpu | cuda", choices=("auto", "cpu", "cuda"))
    threads: int = _f(0, "CPU threads; 0: auto, the cores less those other processes keep busy (measured at the "
                         "start; OMP_NUM_THREADS, when set, decides)", lo=0)
    seed: int = _f(0, "weights, shuffling and augmentation (never the folds)")
    log_every: int = _f(20, "steps between loss read-outs (each one syncs with the GPU)", lo=1)
    trackers: str = _f("tensorboard", "experiment trackers joined by +: tensorboard (RUN/tb), mlflow "
                                      "($MLFLOW_TRACKING_URI or ./mlflow.db), tensorboard+mlflow, or none")
    mlflow_model: str = _f("", "with train.trackers=...mlflow: register the kept model in MLflow's model registry under "
                               "this name (mlflow.pytorch); empty: not registered")
    compile: bool = _f(False, "torch.compile the model (GPU: faster steps after a slow first one)")
    ema: float = _f(0.0, "exponential moving average of the weights (timm ModelEmaV3, its decay warm-up) with this "
                         "decay per step, e.g. 0.999: validation, best.pt and last.pt hold the average; 0 = off",
                    lo=0, hi=1, hi_open=True)
    mixup: float = _f(0.0, "mixup alpha (timm Mixup): photo pairs blended by lambda ~ Beta(alpha, alpha), the labels "
                           "of every head with the same lambda; 0 = off", lo=0)
    cutmix: float = _f(0.0, "cutmix alpha: a box of one photo pasted into another, every head's labels mixed by the "
                            "box's area; 0 = off", lo=0)
    mix_switch: float = _f(0.5, "with both mixup and cutmix on: the chance a batch uses cutmix instead of mixup",
                           lo=0, hi=1)
    mix_prob: float = _f(1.0, "with mixup or cutmix on: the chance a batch is mixed at all", lo=0, hi=1)
    swa: int = _f(0, "stochastic weight averaging (torch swa_utils): the weights at the end of this epoch (from 1) "
                     "and of every later one are averaged, BatchNorm statistics recomputed over the training "
                     "photos; the average is best.pt; 0 = off", lo=0)


@dataclass
class Config(_Strict):
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def cutoffs(self) -> AgeCutoffs:
        """The training age cut-offs (data.age_young, data.age_old)."""
        return _age_cutoffs(self.data.age_young, self.data.age_old)

    @property
    def score_cutoffs(self) -> AgeCutoffs:
        """The cut-offs validation scores with (the competition's 30/60 unless set): a model trained
        with data.age_old=58 is still judged on the groups the leaderboard uses."""
        return _age_cutoffs(self.data.score_age_young, self.data.score_age_old)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height): one parsed value used by training and inference alike."""
        return parse_size(self.data.size)

    def to_dict(self) -> dict[str, Any]:
        """The settings as nested plain dicts (section -> key -> value)."""
        return dataclasses.asdict(self)


def _age_cutoffs(young: int, old: int) -> AgeCutoffs:
    # labels imports numpy; importing it here, not at the top, keeps it out of the parser that
    # `maskcls --help` builds (that reads choices and built-in names from this module).
    from .labels import AgeCutoffs

    return AgeCutoffs(young, old)


def default_workers() -> int:
    """data.workers's default, shared by every command's --workers: the machine's cores, at most 8 (past
    that, decoding rarely keeps up with the model anyway)."""
    import os

    return min(8, os.cpu_count() or 1)


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"size must look like WIDTHxHEIGHT (e.g. 384x512), got {text!r}") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise UserError(f"size {text} out of range: each side must be 16..4096 pixels")
    return w, h


def _coerce(key: str, value: Any, typ: Any) -> Any:
    """Check (and gently convert) one value against its declared type; errors name the key."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(typ)
        if value is None and type(None) in args:
            return None
        typ = next(a for a in args if a is not type(None))
        origin = typing.get_origin(typ)
    if origin is list:
        (item,) = typing.get_args(typ)
        if not isinstance(value, list):
            raise UserError(f"config {key}: expected a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if typ is bool:
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    hint = ""
    if typ is str and isinstance(value, bool):  # YAML 1.1 reads yes/no/on/off as booleans
        hint = "; YAML reads yes, no, on and off as true/false, so put the word in quotes, e.g. 'no'"
    raise UserError(f"config {key}: expected {getattr(typ, '__name__', typ)}, got {value!r}{hint}")


def migrate(cfg: Config, key: str, value: Any) -> tuple[str, Any]:
    """The one reading of old spellings, applied to every value a config file, a run's checkpoint or --set
    gives, before it is checked: (key, value) as the settings spell them now. Nowhere else reads them.

    - train.tensorboard=true/false (before train.trackers): tensorboard added to or taken from the trackers;
    - data.cache=true/false (before the disk cache): ram / none;
    - a crop spelled inside data.augment (centercrop+hflip, before data.crop): the crop moves to data.crop,
      with a one-line note, and the augmentation keeps the rest.
    """
    if key == "train.tensorboard" and isinstance(value, bool):
        names = [t for t in cfg.train.trackers.split("+") if t not in ("tensorboard", "none", "")]
        return "train.trackers", "+".join((["tensorboard"] if value else []) + names) or "none"
    if key == "data.cache" and isinstance(value, bool):
        return key, "ram" if value else "none"
    if key == "data.augment" and isinstance(value, str):
        return key, _move_legacy_crop(cfg, value)
    return key, value


def _set(cfg: Config, key: str, value: Any) -> None:
    key, value = migrate(cfg, key, value)
    section_name, _, name = key.partition(".")
    section = getattr(cfg, section_name, None) if name else None
    if section is None or not dataclasses.is_dataclass(section) or name not in {f.name for f in dataclasses.fields(section)}:
        known = [k for k, *_ in describe_settings(Config())]
        near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean {near[0]}? " if near else ""
        raise UserError(f"unknown config key {key!r}; {hint}`maskcls config` lists every setting")
    hints = typing.get_type_hints(type(section))
    if key == "data.fold" and isinstance(value, str) and value.strip().lower() == "none":
        value = None  # `train --fold none` spells null so
    if key == "data.size" and isinstance(value, int) and not isinstance(value, bool):
        # YAML reads 0x30 as hex and 96 as a number: the WxH text is gone before we see it.
        raise UserError(f"config data.size: YAML read the value as the number {value}; write WIDTHxHEIGHT "
                        "in quotes, e.g. size: '96x128'")
    value = _coerce(key, value, hints[name])
    setattr(section, name, value)  # choices and ranges: check(), once for all


def _move_legacy_crop(cfg: Config, augment: str) -> str:
    """Configs and runs from before data.crop spelled the crop inside data.augment (centercrop+hflip):
    the crop moves to data.crop, with a note; returns the augmentation without it."""
    try:
        rest, crop = split_legacy(augment)
    except ValueError as exc:
        raise UserError(f"config data.augment: {exc}") from None
    if crop is None:
        return augment
    # A later layer wins, as for any setting (`--set data.augment=facecrop` over a config's crop: center);
    # one layer spelling two crops is refused where the layer is read (apply_dict).
    note_legacy(augment, rest, crop)
    cfg.data.crop = crop
    return rest


SECTIONS = ("model", "data", "train")


def _declared(cfg: Any) -> list[tuple[str, Any, Any]]:
    """[(key, value, the field's metadata)] for every setting, in declaration order."""
    return [(f"{section.name}.{f.name}", getattr(getattr(cfg, section.name), f.name), f.metadata)
            for section in dataclasses.fields(cfg) for f in dataclasses.fields(getattr(cfg, section.name))]


def choices_of(key: str) -> tuple[str, ...]:
    """The names a setting takes, as declared with it; () for a setting without a fixed set of names."""
    return next((meta.get("choices") or () for k, _, meta in _declared(Config()) if k == key), ())


def unknown_choice(key: str, value: Any) -> UserError:
    """The error for a name a setting does not take; factories raise it for a name they do not know."""
    return UserError(f"config {key}: {value!r} is not one of {', '.join(choices_of(key))}")


def _check_declared(key: str, value: Any, meta: Any) -> None:
    """One setting against what its field declares: its choices, or its range."""
    choices = meta.get("choices")
    if choices and value not in choices:
        raise unknown_choice(key, value)
    lo, hi, lo_open, hi_open = meta.get("range", (None, None, False, False))
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"config {key}: {value!r} is not a finite number")
    if value is None or isinstance(value, (str, list, bool)):
        return
    bad = (lo is not None and (value <= lo if lo_open else value < lo)) or \
          (hi is not None and (value >= hi if hi_open else value > hi))
    if bad:
        low = "" if lo is None else ("> " if lo_open else ">= ") + f"{lo:g}"
        high = "" if hi is None else ("< " if hi_open else "<= ") + f"{hi:g}"
        raise UserError(f"config {key}: {value!r} is out of range; it must be {' and '.join(x for x in (low, high) if x)}")


def describe_settings(cfg: Any) -> list[tuple[str, Any, str]]:
    """[(key, value, one line of help)] for every setting, in declaration order."""
    return [(key, value, meta.get("help", "")) for key, value, meta in _declared(cfg)]


def _first_setting(section: str) -> str:
    return next(k.split(".", 1)[1] for k, *_ in describe_settings(Config()) if k.startswith(section + "."))


def apply_dict(cfg: Config, values: dict[str, Any], source: str) -> Config:
    """Set ``values`` (section -> key -> value, as YAML holds them) on ``cfg``; ``source`` names them in errors."""
    if not isinstance(values, dict):
        raise UserError(f"{source}: expected sections model:, data:, train: at the top level")
    for section, entries in values.items():
        if entries is None and str(section) in SECTIONS:
            continue  # an empty `model:` section: nothing to set
        if not isinstance(entries, dict):
            if str(section) in SECTIONS:
                raise UserError(f"{source}: {section}: is a section and holds settings, one per line below it "
                                f"(e.g. `{section}:` then `  {_first_setting(str(section))}: ...`), got {entries!r}")
            _set(cfg, str(section), entries)  # raises: a top-level key is never a setting
        if str(section) == "data":
            _one_crop(entries, source)
        for name, value in entries.items():
            _set(cfg, f"{section}.{name}", value)
    return cfg


def _one_crop(data: dict, source: str) -> None:
    """A data: section that sets crop and also spells another crop in augment (the old way) says two things."""
    if "crop" not in data or not isinstance(data.get("augment"), str):
        return
    try:
        _, crop = split_legacy(data["augment"])
    except ValueError:
        return  # _set names the bad spelling
    if crop is not None and crop != data["crop"]:
        raise UserError(f"{source}: data.augment={data['augment']} spells the crop {crop} and data.crop is "
                        f"{data['crop']}; set the crop once, as data.crop")


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one section is an error: plain YAML keeps the last
    value silently, and a config that says `epochs: 3` and `epochs: 5` is a mistake either way."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"{key!r} is given twice in one section",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _builtin_dir() -> Path:
    return Path(str(resources.files("maskcls") / "resources" / "configs"))


def builtin_names() -> list[str]:
    """The built-in config names (resources/configs/*.yaml)."""
    return sorted(p.stem for p in _builtin_dir().glob("*.yaml"))


def builtin_config_path(name: str) -> Path | None:
    """The file of built-in config ``name``, or None."""
    path = _builtin_dir() / f"{name}.yaml"
    return path if path.is_file() else None


# One rule for every command that takes --config: said in every --help, applied by default_config_name.
DEFAULT_CONFIG_RULE = "default: 'default' (the ResNet50 GPU recipe) on a machine with a GPU, 'demo' (sized for a CPU) without one"


def default_config_name() -> str:
    """The built-in config a command uses when none is given (DEFAULT_CONFIG_RULE): the GPU recipe
    where it can run, the CPU-sized one where it would take days."""
    import torch  # only commands that run a model ask, and they import torch anyway

    return "default" if torch.cuda.is_available() else "demo"


def describe_config(name: str | Path, overrides: Sequence[str], cfg: Config, *, chosen: bool = False) -> str:
    """The first line of a command that trains: which config, what it sets, and why it was chosen."""
    why = " (no --config: the default for this machine)" if chosen else ""
    sets = "".join(f" --set {o}" for o in overrides)
    model = (f"{FACE_MODEL} (no CNN: heads on the face descriptor)" if cfg.model.name == FACE_MODEL else
             f"{cfg.model.name} at {cfg.data.size}" + (" + face features" if cfg.model.face_features else ""))
    epochs = f"{cfg.train.epochs} epoch{'' if cfg.train.epochs == 1 else 's'}"
    return (f"config: {name}{why}{sets} -> {model}, {epochs}, "
            f"batch {cfg.train.batch_size}, device {cfg.train.device}")


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the YAML at ``path`` (a file or a built-in name like ``demo``), then ``key=value`` overrides."""
    cfg = Config()
    if path is not None:
        if not str(path).strip():
            raise UserError(f"--config is empty; give a built-in name ({', '.join(builtin_names())}) or a YAML file")
        file = builtin_config_path(str(path)) or Path(path)
        if file.is_dir():
            raise UserError(f"config {path}: a folder, not a YAML file")
        if not file.is_file():
            raise UserError(f"config {path}: no such file or built-in config (built-in: {', '.join(builtin_names())})")
        try:
            values = yaml.load(file.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
        except UnicodeDecodeError:
            raise UserError(f"{file}: not a UTF-8 text file; a config is YAML text") from None
        except OSError as exc:
            raise UserError(f"{file}: cannot read ({exc.strerror or exc})") from None
        except yaml.YAMLError as exc:
            raise UserError(f"{file}: not valid YAML ({exc})") from None
        apply_dict(cfg, values, str(file))
    given = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise UserError(f"--set {item!r}: expected key=value, e.g. train.epochs=5")
        given[key.strip()] = text.strip()
    # The --set list is one layer, like one YAML file: it may not spell two crops.
    _one_crop({k.split(".", 1)[1]: v for k, v in given.items() if k in ("data.crop", "data.augment")}, "--set")
    for item in overrides:
        key, _, text = item.partition("=")
        _set(cfg, key.strip(), _override_value(key.strip(), text))
    return check(cfg)


def set_values(overrides: Sequence[str], key: str) -> list[str]:
    """The values ``--set KEY=...`` gives ``key`` in ``overrides``, in order."""
    return [v.strip() for k, _, v in (o.partition("=") for o in overrides) if k.strip() == key]


def with_option(overrides: Sequence[str], key: str, value: object, option: str) -> list[str]:
    """``overrides`` with ``key=value``, for a command option that is that setting (``--folds K`` is
    data.folds=K): a --set of the same value is kept as it is (so the config line says it once), one of
    another value is refused rather than silently overridden."""
    given = set_values(overrides, key)
    if any(v != str(value) for v in given):
        raise UserError(f"{option} {value} and --set {key}={given[-1]} disagree; give one of them")
    return list(overrides) if given else [*overrides, f"{key}={value}"]


# What `--fold none` sets: no one held out, so no epoch is chosen and nothing stops early.
NO_HOLDOUT = (("data.fold", "null"), ("train.select", "last"), ("train.patience", "0"))


def no_holdout(overrides: Sequence[str]) -> list[str]:
    """``overrides`` plus NO_HOLDOUT; a --set that says otherwise is refused, not silently overridden."""
    out = list(overrides)
    for key, value in NO_HOLDOUT:
        given = set_values(out, key)
        if any(v.lower() not in {value, "none" if value == "null" else value} for v in given):
            raise UserError(f"--fold none trains on every person and validates nothing, so it sets {key}={value}; "
                            f"--set {key}={given[-1]} contradicts it: leave it out")
        if not given:
            out.append(f"{key}={value}")
    return out


def train_config(out: str | Path, *, config: str | Path | None = None, overrides: Sequence[str] = (),
                 corrections: str | None = None, fold: int | str | None = None, resume: bool = False) -> Config:
    """The settings of a training into run folder ``out`` (what `maskcls train` runs with).

    ``config`` defaults to the run's own config.yaml when resuming (a resumed run keeps its settings
    unless told otherwise), else to ``default_config_name()``; ``overrides`` (key=value) come next, then
    ``corrections`` and ``fold`` when given. ``fold="all"`` (every fold) leaves data.fold alone and
    cannot be combined with ``resume``: a --fold all run continues by itself. ``fold="none"`` holds no one
    out (``no_holdout``)."""
    saved = Path(out) / "config.yaml"
    if resume and config is None and saved.is_file():
        config = saved
    overrides = list(overrides)
    if corrections is not None:
        overrides.append(f"data.corrections={corrections}")
    if fold == "none":
        overrides = no_holdout(overrides)
    elif fold is not None and fold != "all":
        overrides.append(f"data.fold={int(fold)}")
    cfg = load_config(config or default_config_name(), overrides)
    if fold == "all" and resume:
        raise UserError("--fold all resumes by itself: rerun the same command without --resume")
    return cfg


# The value column is this wide whatever the config (longer values widen one listing only), so the
# help column does not move between `maskcls config` listings of different configs.
VALUE_WIDTH = 28


def _inline(value: Any) -> str:
    """A value in YAML's inline form, as a config file or --set writes it."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def format_settings(cfg: Config) -> list[str]:
    """`maskcls config`'s lines: 'key = value   # help', the values in YAML's inline form, help aligned
    in the same column for every config."""
    rows = [(k, _inline(v), h) for k, v, h in describe_settings(cfg)]
    key_width = max(len(k) for k, *_ in describe_settings(Config()))
    width = max(key_width + 3 + VALUE_WIDTH, *(len(k) + 3 + len(v) for k, v, _ in rows))
    return [f"{key} = {value}".ljust(width) + f"  # {help_text}" for key, value, help_text in rows]


def diff_settings(a: Config, b: Config) -> list[tuple[str, Any, Any, str]]:
    """[(key, value in a, value in b, help)] for the settings whose values differ, in declaration order."""
    return [(key, va, vb, h) for (key, va, h), (_, vb, _) in zip(describe_settings(a), describe_settings(b))
            if va != vb]


def format_diff(a: Config, b: Config, names: tuple[str, str]) -> list[str]:
    """Two configs side by side, only the settings that differ; fixed columns (key, then each value)."""
    rows = [(k, _inline(va), _inline(vb), h) for k, va, vb, h in diff_settings(a, b)]
    if not rows:
        return [f"{names[0]} and {names[1]} have the same settings"]
    key_width = max(len(k) for k, *_ in describe_settings(Config()))
    w1 = max(len(names[0]), *(len(r[1]) for r in rows))
    w2 = max(len(names[1]), *(len(r[2]) for r in rows))
    head = f"{'setting':<{key_width}}  {names[0]:<{w1}}  {names[1]:<{w2}}  # help"
    return [head] + [f"{k:<{key_width}}  {va:<{w1}}  {vb:<{w2}}  # {h}" for k, va, vb, h in rows]


def _override_value(key: str, text: str) -> Any:
    """The value of one --set: YAML for numbers, lists and booleans, but the text itself for a string
    setting (YAML would read data.size=0x30 as the hex number 48)."""
    section, _, name = key.partition(".")
    owner = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}.get(section)
    typ = typing.get_type_hints(owner).get(name) if owner else None
    if typ is str and key != "data.cache":
        return text.strip()
    return yaml.safe_load(text) if text.strip() else ""


def check(cfg: Config) -> Config:
    """Every setting against what its field declares (choices, range), then what no single field can
    say: the age cut-offs' order, the size's form, the augmentation's names, mean/std, the held-out fold."""
    for key, value, meta in _declared(cfg):
        _check_declared(key, value, meta)
    for young, old in (("age_young", "age_old"), ("score_age_young", "score_age_old")):
        try:
            _age_cutoffs(getattr(cfg.data, young), getattr(cfg.data, old))
        except ValueError as exc:
            raise UserError(f"config data.{young}/{old}: {exc}") from None
    parse_size(cfg.data.size)  # raises a UserError naming the bad value
    try:
        parse_augment(cfg.data.augment)
    except ValueError as exc:
        raise UserError(f"config data.augment: {exc}") from None
    for key in ("mean", "std"):
        v = getattr(cfg.data, key)
        if v is not None and len(v) != 3:
            raise UserError(f"config data.{key}: expected 3 numbers (R, G, B), got {v}")
        if v is not None and not all(math.isfinite(x) and (0 < x <= 1 if key == "std" else 0 <= x <= 1) for x in v):
            raise UserError(f"config data.{key}: each of R, G, B must be in {'(0, 1]' if key == 'std' else '[0, 1]'} "
                            f"(pixel values scaled to 0..1), got {v}")
    _check_no_holdout(cfg)
    if cfg.train.select == "last" and cfg.train.patience:
        # early stopping watches the validation people: the last epoch would be chosen on them after all
        raise UserError("config train.select=last scores the last epoch of a fixed budget; train.patience "
                        "(early stopping on the validation people) must be 0")
    _check_averaging(cfg)
    _check_face_features(cfg)
    parse_trackers(cfg.train.trackers)  # raises a UserError naming the unknown tracker
    try:
        check_cascade(cfg.data.face_detectors)
    except ValueError as exc:
        raise UserError(f"config data.face_detectors: {exc}") from None
    if cfg.data.fold is not None and cfg.data.fold >= cfg.data.folds:
        raise UserError(f"config data.fold must be between 0 and {cfg.data.folds - 1}, got {cfg.data.fold}")
    return cfg


FACE_MODEL = "face-descriptor"  # model.name of the heads on the descriptor alone


def face_setting(cfg: Config) -> str:
    """The setting that makes a model read the face descriptor, as messages name it."""
    return f"model.name={FACE_MODEL}" if cfg.model.name == FACE_MODEL else "model.face_features"


def _check_face_features(cfg: Config) -> None:
    if cfg.model.name == FACE_MODEL:
        cfg.model.face_features = True  # the model is the face features: there is nothing else to read
    if cfg.model.face_features and (cfg.train.mixup or cfg.train.cutmix):
        # a blend of two photos has no one face: the descriptor of neither describes it
        way_out = "another model.name" if cfg.model.name == FACE_MODEL else "model.face_features=false"
        raise UserError(f"config {face_setting(cfg)} reads one face per photo; train.mixup and train.cutmix blend "
                        f"two photos into one, whose face is neither's: set them to 0, or use {way_out}")


def _check_no_holdout(cfg: Config) -> None:
    if cfg.data.fold is None and (cfg.train.select != "last" or cfg.train.patience):
        # with no one held out there is nothing to choose an epoch or stop early on
        raise UserError("config data.fold=null trains on every person and validates nothing: train.select must be "
                        f"last and train.patience 0 (got {cfg.train.select} and {cfg.train.patience}); "
                        "`maskcls train --fold none` sets both")


def _check_averaging(cfg: Config) -> None:
    if cfg.train.swa > cfg.train.epochs:
        raise UserError(f"config train.swa: averaging would start after epoch {cfg.train.swa}, past the last epoch "
                        f"(train.epochs={cfg.train.epochs}); set train.swa between 1 and {cfg.train.epochs}, or 0 for off")
    if cfg.train.swa and cfg.train.ema:
        raise UserError("config train.ema and train.swa both average the weights; choose one (set the other to 0)")


def from_dict(values: dict[str, Any]) -> Config:
    """Rebuild a Config saved by ``to_dict`` (e.g. from a checkpoint)."""
    return check(apply_dict(Config(), values, "saved config"))


def flat(cfg: Config) -> dict[str, Any]:
    """{'section.key': value} for every setting."""
    return {f"{s}.{k}": v for s, section in cfg.to_dict().items() for k, v in section.items()}


def resume_conflicts(saved: Config, new: Config, free: Iterable[str] = RESUMABLE_CHANGES) -> list[str]:
    """Settings that differ between a checkpoint's config and a resumed run's, other than the ``free`` ones.
    data.mean/std are compared only when the new config sets them (the saved one holds resolved values)."""
    old, cur = flat(saved), flat(new)
    free = set(free)
    out = []
    for key, value in cur.items():
        if key in free or (key in ("data.mean", "data.std") and value is None):
            continue
        if old.get(key) != value:
            out.append(f"{key} ({shown(old.get(key))} -> {shown(value)})")
    return out


def shown(value: Any) -> str:
    """A setting's value as messages write it: as in a config file (null, not None)."""
    return "null" if value is None else str(value)


def dump(cfg: Config) -> str:
    """The settings as YAML, in declaration order."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


# train.trackers: the names are declared here, with the setting; training/trackers.py implements them.
TRACKERS = ("tensorboard", "mlflow")


def parse_trackers(text: str) -> tuple[str, ...]:
    """'tensorboard+mlflow' -> ('tensorboard', 'mlflow'); 'none' or '' -> (). Raises on unknown names."""
    names = [t.strip().lower() for t in str(text).replace(",", "+").split("+") if t.strip()]
    if names == ["none"]:
        return ()
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise UserError(f"config train.trackers: unknown tracker {unknown[0]!r}; use tensorboard, mlflow, "
                        "tensorboard+mlflow or none")
    return tuple(dict.fromkeys(names))
