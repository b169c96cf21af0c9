"""The 18-class encoding: the only module that knows how mask, gender and age combine.

class = mask * 6 + gender * 3 + age_group, decoded as ((c // 6) % 3, (c // 3) % 2, c % 3).
mask: 0 wear, 1 incorrect, 2 not worn; gender: 0 male, 1 female; age group: 0 young, 1 middle, 2 old,
where the cut-offs are settings (competition default: <30, 30-59, >=60).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_CLASSES = 18
MASK_NAMES = ("wear", "incorrect", "normal")
GENDER_NAMES = ("male", "female")

# Photo stems of the competition layout and the mask state each one shows.
PHOTO_MASK: dict[str, int] = {
    "mask1": 0,
    "mask2": 0,
    "mask3": 0,
    "mask4": 0,
    "mask5": 0,
    "incorrect_mask": 1,
    "normal": 2,
}
PHOTO_STEMS = tuple(PHOTO_MASK)


@dataclass(frozen=True)
class AgeCutoffs:
    """Age group boundaries: group 0 is age < young, group 2 is age >= old.

    Many competition teams moved ``old`` down (57-59) to get more examples of the rare 60+ group.
    """

    young: int = 30
    old: int = 60

    def __post_init__(self) -> None:
        if not 0 < self.young < self.old:
            raise ValueError(f"age cut-offs must satisfy 0 < young < old, got young={self.young} old={self.old}")

    def group(self, age: int) -> int:
        return 0 if age < self.young else (1 if age < self.old else 2)

    def groups(self, ages: np.ndarray) -> np.ndarray:
        """Vectorised ``group`` for an integer array of ages."""
        ages = np.asarray(ages)
        return (ages >= self.young).astype(np.int64) + (ages >= self.old).astype(np.int64)

    def names(self) -> tuple[str, str, str]:
        return (f"<{self.young}", f"{self.young}-{self.old - 1}", f">={self.old}")


def encode(mask: int | np.ndarray, gender: int | np.ndarray, age_group: int | np.ndarray):
    """Combine the three answers into the class index (works on ints and arrays)."""
    return mask * 6 + gender * 3 + age_group


def decode(label: int | np.ndarray):
    """Split a class index into (mask, gender, age_group)."""
    return (label // 6) % 3, (label // 3) % 2, label % 3


def class_names(cutoffs: AgeCutoffs = AgeCutoffs()) -> list[str]:
    """Human names of the 18 classes, e.g. ``wear/female/<30``."""
    ages = cutoffs.names()
    out = []
    for c in range(NUM_CLASSES):
        m, g, a = decode(c)
        out.append(f"{MASK_NAMES[m]}/{GENDER_NAMES[g]}/{ages[a]}")
    return out


def task_names(task: str, cutoffs: AgeCutoffs = AgeCutoffs()) -> tuple[str, ...]:
    if task == "mask":
        return MASK_NAMES
    if task == "gender":
        return GENDER_NAMES
    if task == "age":
        return cutoffs.names()
    raise ValueError(f"unknown task {task!r}; expected one of mask, gender, age")


_MASK_ALIASES = {"wear": 0, "incorrect": 1, "normal": 2, "0": 0, "1": 1, "2": 2}
_GENDER_ALIASES = {"male": 0, "female": 1, "0": 0, "1": 1}


def parse_mask(value: str) -> int:
    """Parse a manifest mask value (wear|incorrect|normal or 0/1/2); raises ValueError otherwise."""
    key = str(value).strip().lower()
    if key not in _MASK_ALIASES:
        raise ValueError(f"mask must be one of wear, incorrect, normal (or 0, 1, 2), got {value!r}")
    return _MASK_ALIASES[key]


def parse_gender(value: str) -> int:
    """Parse a gender value (male|female or 0/1); raises ValueError otherwise."""
    key = str(value).strip().lower()
    if key not in _GENDER_ALIASES:
        raise ValueError(f"gender must be male or female (or 0, 1), got {value!r}")
    return _GENDER_ALIASES[key]


def parse_age(value: str) -> int:
    """Parse an age in whole years; raises ValueError otherwise."""
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) < 130:
        raise ValueError(f"age must be a whole number of years, got {value!r}")
    return int(text)


# Index arrays that map each of the 18 classes to its per-task answer; used to combine
# multi-head log-probabilities into class log-probabilities without a Python loop.
CLASS_MASK, CLASS_GENDER, CLASS_AGE = (np.array(x) for x in decode(np.arange(NUM_CLASSES)))


@dataclass(frozen=True)
class Task:
    """One of the three answers. Everything per task (target columns, heads, losses, metrics, the
    checkpoint score) iterates over ``TASKS``, and each task carries its own table column and its own
    class-index map, so no code pairs a task with a column by position."""

    name: str  # head name and metric prefix: mask_f1, gender_f1, age_f1
    column: str  # the table column holding this task's answer
    size: int  # number of answers
    of_class: tuple[int, ...]  # this task's answer for each of the 18 classes

    def names(self, cutoffs: AgeCutoffs = AgeCutoffs()) -> tuple[str, ...]:
        return task_names(self.name, cutoffs)


TASKS: tuple[Task, ...] = (
    Task("mask", "mask", 3, tuple(CLASS_MASK.tolist())),
    Task("gender", "gender", 2, tuple(CLASS_GENDER.tolist())),
    Task("age", "age_group", 3, tuple(CLASS_AGE.tolist())),
)


def task(name: str) -> Task:
    for t in TASKS:
        if t.name == name:
            return t
    raise ValueError(f"unknown task {name!r}; expected one of {', '.join(t.name for t in TASKS)}")


def encode_targets(targets: np.ndarray) -> np.ndarray:
    """18-class labels of (N, len(TASKS)) targets ordered as TASKS (rows must be fully known)."""
    by_name = {t.name: np.asarray(targets)[:, j] for j, t in enumerate(TASKS)}
    return encode(by_name["mask"], by_name["gender"], by_name["age"])
