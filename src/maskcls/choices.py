"""The pluggable choices that are names, each declared once with one line of help: the crop
(``data.crop``), the augmentation presets (``data.augment``, joined by +) and the face detectors
(``data.face_detectors``), with the checks of a spelled choice and the one reading of their old spellings.

The config (its choices and --help), the command line and the factories read these tables; the factories
hold what each name does (data.crops and data.preprocess: the crop; data.transforms: each preset's
Albumentations ops; faces.detect: each detector). On the ground floor, importing nothing: the config
reads it, and the config stands below the data and the face model.
"""

from __future__ import annotations

import sys

CROPS: dict[str, str] = {
    "none": "the whole photo, resized to data.size",
    "center": "the common baseline's centre crop (256x320 of 384x512, width x height)",
    "face": "the face found by the face model's detector cascade (data.face_detectors, cached as `maskcls faces` "
            "caches it), grown by data.face_margin (hair and chin kept); no face found -> the centre crop",
}

# The preset names that spelled a crop inside data.augment before data.crop existed.
LEGACY_PRESETS: dict[str, str] = {"centercrop": "center", "facecrop": "face"}

# The preset names that spelled a crop inside data.augment before data.crop existed; read once, when a
# config loads (config.migrate), and by the ablation's variants and augment-preview, which take presets.
LEGACY_PRESETS: dict[str, str] = {"centercrop": "center", "facecrop": "face"}

_noted: set[str] = set()  # legacy spellings already reported in this process


def check_crop(crop: str) -> str:
    """``crop`` when it is a known crop; ValueError naming the choices otherwise."""
    if crop not in CROPS:
        raise ValueError(f"unknown crop {crop!r}; expected one of {', '.join(CROPS)}")
    return crop


def split_legacy(augment: str) -> tuple[str, str | None]:
    """'centercrop+hflip' -> ('hflip', 'center'); 'centercrop' -> ('none', 'center'); a spec without a
    crop comes back unchanged with None. Two crops are a ValueError naming them."""
    parts = [p.strip() for p in str(augment).split("+")]
    crops = [p for p in parts if p in LEGACY_PRESETS]
    if not crops:
        return augment, None
    if len(crops) > 1:
        raise ValueError(f"augmentation {augment!r} has two crops ({', '.join(crops)}); choose one")
    rest = [p for p in parts if p not in LEGACY_PRESETS]
    return "+".join(rest) or "none", LEGACY_PRESETS[crops[0]]


def note_legacy(augment: str, rest: str, crop: str) -> None:
    """One line on stderr, once per spelling and process: where the crop went."""
    if augment in _noted:
        return
    _noted.add(augment)
    print(f"note: data.augment={augment} spells a crop; read as data.crop={crop} and data.augment={rest} "
          "(crops are their own setting now)", file=sys.stderr)


AUGMENTATIONS: dict[str, str] = {
    "none": "resize only",
    "hflip": "horizontal flip, p=0.5",
    "vflip": "vertical flip, p=0.5 (with hflip: +4% in the write-up)",
    "rotate90": "a random multiple of 90 degrees; odd turns are resized back into the frame",
    "contrast": "CLAHE plus random brightness/contrast (shows wrinkles; worse in the write-up)",
    "colorjitter": "brightness, contrast, saturation and a little hue",
    "blur": "Gaussian blur, p=0.3",
    "dropout": "coarse dropout: 1-4 grey holes of 5-15% of each side",
    "randomresizedcrop": "random crop of 60-100% of the area, resized back",
    "trivialaugment": "TrivialAugment (torchvision TrivialAugmentWide): one random op of 14 at a random strength per photo",
    "randaugment": "RandAugment (torchvision, N=2 ops at magnitude 9 of 30)",
    "flips": "hflip+vflip",
}


def parse_augment(spec: str) -> list[str]:
    """'hflip+vflip' -> ['hflip', 'vflip']; unknown names are errors naming them."""
    parts = [n.strip() for n in str(spec).split("+")]
    names = [n for n in parts if n]
    if not names:
        raise ValueError("augmentation is empty; use none or preset names joined by +")
    if len(names) != len(parts):  # 'hflip++vflip' or '+hflip': most likely a preset name went missing
        raise ValueError(f"augmentation {spec!r} has an empty part between its + signs")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"augmentation {spec!r} names {repeated[0]!r} twice")
    crops = [n for n in names if n in LEGACY_PRESETS]
    if crops:  # the config moves these into data.crop; here they are a call that mixes the two settings
        raise ValueError(f"{crops[0]!r} is a crop, not an augmentation: set data.crop={LEGACY_PRESETS[crops[0]]}")
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation preset {unknown[0]!r}; expected names from "
                         f"{', '.join(AUGMENTATIONS)} joined by +")
    if "none" in names and len(names) > 1:
        raise ValueError(f"augmentation {spec!r}: 'none' cannot be combined with other presets")
    return names


def canonical_augment(spec: str) -> tuple[str, ...]:
    """The presets a spec stands for, as a sorted tuple: 'vflip+hflip', 'hflip+vflip' and 'flips' are
    one augmentation (the flips are independent draws, so their order changes nothing)."""
    names = [m for n in parse_augment(spec) for m in (("hflip", "vflip") if n == "flips" else (n,))]
    return tuple(sorted(set(names)))


DETECTORS: dict[str, str] = {
    "hog": "dlib's HOG + linear SVM frontal detector (fast; misses most masked faces)",
    "haar": "OpenCV's Haar cascades: frontal, frontal alt2, profile (catch many masked faces HOG misses)",
    "cnn": "dlib's CNN (MMOD) detector on a copy at most 256 px wide (slow on a CPU: ~0.4 s a photo)",
}
DEFAULT_CASCADE = ("hog", "haar")
DEFAULT_CASCADE = ("hog", "haar")


def check_cascade(names: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """'hog+haar' or a sequence -> a tuple of known detector names (ValueError naming a bad one)."""
    parts = tuple(p.strip() for p in (names.split("+") if isinstance(names, str) else names) if p.strip())
    bad = [p for p in parts if p not in DETECTORS]
    if bad or not parts:
        raise ValueError(f"unknown face detector(s) {', '.join(bad) or '(none given)'}; "
                         f"expected some of {', '.join(DETECTORS)} joined by +")
    if len(set(parts)) != len(parts):
        raise ValueError(f"face detector cascade {'+'.join(parts)} names a detector twice")
    return parts


# The training engine's choices: each name once, with its help; config declares them on their settings
# (choices and --help), and each factory dispatches on the same table (training/optim, losses, loaders,
# runtime, model), with a test that every declared name builds (tests/test_choices.py).
HEADS: dict[str, str] = {
    "multi": "mask 3 + gender 2 + age 3 heads",
    "single": "one 18-way head",
}
OPTIMIZERS: dict[str, str] = {
    "adamw": "AdamW, decoupled weight decay",
    "sgd": "SGD with Nesterov momentum (train.momentum)",
}
SCHEDULES: dict[str, str] = {
    "cosine": "warm-up then cosine decay per step",
    "constant": "the same lr throughout",
}
LOSSES: dict[str, str] = {
    "ce": "cross-entropy",
    "focal": "cross-entropy scaled by (1 - p)^train.focal_gamma",
}
SAMPLERS: dict[str, str] = {
    "none": "every photo once per epoch, shuffled",
    "weighted": "draw rare classes (60+) as often as common ones",
}
AMPS: dict[str, str] = {
    "auto": "bf16 (or fp16) on GPU, none on CPU",
    "bf16": "bfloat16 autocast",
    "fp16": "float16 autocast with a gradient scaler",
    "none": "float32",
}
CACHES: dict[str, str] = {
    "none": "decode every epoch",
    "ram": "decode once into memory",
    "disk": "once, into a memory-mapped file in data.cache_dir shared by runs and commands",
}


def described(table: dict[str, str]) -> str:
    """'a: what a does | b: what b does', the help of a setting whose choices are ``table``."""
    return " | ".join(f"{name}: {text}" for name, text in table.items())
