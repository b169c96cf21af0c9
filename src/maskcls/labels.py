"""The 18-class encoding: the only module that knows how mask, gender and age combine.

class = mask * 6 + gender * 3 + age_group, decoded as ((c // 6) % 3, (c // 3) % 2, c % 3).
mask: 0 wear, 1 incorrect, 2 not worn; gender: 0 male, 1 female; age group: 0 young, 1 middle, 2 old,
where the cut-offs are settings (competition default: <30, 30-59, >=60).
"""

from __future__ import annotations

from collections.abc import Callable
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
        """The age group of ``age``: 0 below young, 1 below old, else 2."""
        return 0 if age < self.young else (1 if age < self.old else 2)

    def groups(self, ages: np.ndarray) -> np.ndarray:
        """Vectorised ``group`` for an integer array of ages."""
        ages = np.asarray(ages)
        return (ages >= self.young).astype(np.int64) + (ages >= self.old).astype(np.int64)

    def names(self) -> tuple[str, str, str]:
        """The three groups' names: '<30', '30-59', '>=60' with the default cut-offs."""
        return (f"<{self.young}", f"{self.young}-{self.old - 1}", f">={self.old}")


def encode(mask: int | np.ndarray, gender: int | np.ndarray, age_group: int | np.ndarray):
    """Combine the three answers into the class index (works on ints and arrays)."""
    return mask * 6 + gender * 3 + age_group


def decode(label: int | np.ndarray):
    """Split a class index into (mask, gender, age_group)."""
    return (label // 6) % 3, (label // 3) % 2, label % 3


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
    if not text.isdigit():
        raise ValueError(f"age must be a whole number of years, got {value!r}")
    if not 0 < int(text) < 130:
        raise ValueError(f"age must be between 1 and 129 years, got {value!r}")
    return int(text)


# Index arrays that map each of the 18 classes to its per-task answer; used to combine
# multi-head log-probabilities into class log-probabilities without a Python loop.
CLASS_MASK, CLASS_GENDER, CLASS_AGE = (np.array(x) for x in decode(np.arange(NUM_CLASSES)))


def _mask_names(cutoffs: AgeCutoffs) -> tuple[str, ...]:
    return MASK_NAMES


def _gender_names(cutoffs: AgeCutoffs) -> tuple[str, ...]:
    return GENDER_NAMES


def _age_names(cutoffs: AgeCutoffs) -> tuple[str, ...]:
    return cutoffs.names()


@dataclass(frozen=True)
class Task:
    """One of the three answers. Everything per task (target columns, heads, losses, metrics, the
    checkpoint score, probability columns, answer names, audit fields) iterates over ``TASKS``, and
    each task carries its own table columns, names and class-index map, so no code pairs a task with
    a column by position or spells a task's name."""

    name: str  # head name, metric prefix (mask_f1), probability columns (p_mask_0..) and answer key
    column: str  # the table column holding this task's answer (an index into ``names``)
    size: int  # number of answers
    of_class: tuple[int, ...]  # this task's answer for each of the 18 classes
    field: str  # the label as recorded: the table/manifest column and the corrections-CSV field
    parse: Callable[[str], int]  # a recorded value (manifest, corrections CSV) -> the ``field`` value
    answer_names: Callable[[AgeCutoffs], tuple[str, ...]]  # the names of the answers
    per_person: bool  # the answer belongs to the person (every photo), not to one photo

    def names(self, cutoffs: AgeCutoffs = AgeCutoffs()) -> tuple[str, ...]:
        """The task's answer names (the age group's follow the cut-offs)."""
        return tuple(self.answer_names(cutoffs))

    @property
    def derived(self) -> bool:
        """True when the answer is derived from the recorded value (an age in years -> its group)."""
        return self.field != self.column

    def value_name(self, value: int, cutoffs: AgeCutoffs = AgeCutoffs()) -> str:
        """A recorded value in words: an answer's name, or the value itself where it is derived (years)."""
        return str(value) if self.derived else self.names(cutoffs)[value]


TASKS: tuple[Task, ...] = (
    Task("mask", "mask", 3, tuple(CLASS_MASK.tolist()), "mask", parse_mask, _mask_names, per_person=False),
    Task("gender", "gender", 2, tuple(CLASS_GENDER.tolist()), "gender", parse_gender, _gender_names, per_person=True),
    Task("age", "age_group", 3, tuple(CLASS_AGE.tolist()), "age", parse_age, _age_names, per_person=True),
)


def task(name: str) -> Task:
    """The task called ``name`` (mask, gender or age); KeyError otherwise."""
    for t in TASKS:
        if t.name == name:
            return t
    raise ValueError(f"unknown task {name!r}; expected one of {', '.join(t.name for t in TASKS)}")


def by_field(field: str) -> Task:
    """The task recorded in the table/manifest column (and corrections field) ``field``: for code
    that needs one task's meaning (a mask state per photo, an age in years), named by the data format."""
    for t in TASKS:
        if t.field == field:
            return t
    raise ValueError(f"unknown field {field!r}; expected one of {', '.join(t.field for t in TASKS)}")


def task_names(name: str, cutoffs: AgeCutoffs = AgeCutoffs()) -> tuple[str, ...]:
    """The answer names of the task called ``name``."""
    return task(name).names(cutoffs)


def class_names(cutoffs: AgeCutoffs = AgeCutoffs()) -> list[str]:
    """Human names of the 18 classes, the tasks' answers joined in ``TASKS`` order, e.g. ``wear/female/<30``."""
    names = [t.names(cutoffs) for t in TASKS]
    return ["/".join(n[t.of_class[c]] for t, n in zip(TASKS, names)) for c in range(NUM_CLASSES)]


# ---------------------------------------------------------------- probability columns and answers


def class_prob_columns() -> list[str]:
    """The 18 class-probability columns of every probability table: p0..p17."""
    return [f"p{c}" for c in range(NUM_CLASSES)]


def task_prob_columns(t: Task | str) -> list[str]:
    """One task's probability columns: p_<task>_0.. (the marginals of the 18)."""
    t = task(t) if isinstance(t, str) else t
    return [f"p_{t.name}_{k}" for k in range(t.size)]


def prob_columns() -> list[str]:
    """Class probabilities then every task's, in ``TASKS`` order: the columns ``prob_values`` fills."""
    return class_prob_columns() + [c for t in TASKS for c in task_prob_columns(t)]


def task_probs(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Marginal probabilities per task (name -> (N, task size)) from (N, 18) class probabilities."""
    out = {}
    for t in TASKS:
        idx = np.asarray(t.of_class)
        out[t.name] = np.stack([probs[:, idx == k].sum(1) for k in range(t.size)], axis=1)
    return out


def prob_values(probs: np.ndarray) -> np.ndarray:
    """(N, len(prob_columns())): the (N, 18) class probabilities followed by each task's marginals."""
    per_task = task_probs(probs)
    return np.concatenate([np.asarray(probs)] + [per_task[t.name] for t in TASKS], axis=1)


def decode_answers(classes: int | np.ndarray) -> dict[str, np.ndarray]:
    """Class indices -> {task name: that task's answer for each} (ints for an int)."""
    out = {}
    for t in TASKS:
        value = np.asarray(t.of_class)[classes]
        out[t.name] = int(value) if np.ndim(value) == 0 else value
    return out


def answer_names(classes: int | np.ndarray, cutoffs: AgeCutoffs = AgeCutoffs()) -> dict[str, np.ndarray]:
    """Class indices -> {task name: the answers' names} (a str for an int)."""
    out = {}
    for name, value in decode_answers(classes).items():
        names = np.array(task(name).names(cutoffs))[value]
        out[name] = str(names) if np.ndim(names) == 0 else names
    return out


def encode_answers(answers: dict) -> object:
    """{task name: answers} -> class indices. The encoding is mixed-radix, so each task's stride is
    the class whose answers are 1 for that task and 0 for the others; arithmetic keeps pandas
    nullable integers (an unknown answer gives an unknown class)."""
    out = 0
    for t in TASKS:
        stride = next(c for c in range(NUM_CLASSES)
                      if all(u.of_class[c] == (1 if u is t else 0) for u in TASKS))
        out = out + answers[t.name] * stride
    return out


def encode_targets(targets: np.ndarray) -> np.ndarray:
    """18-class labels of (N, len(TASKS)) targets ordered as TASKS (rows must be fully known)."""
    targets = np.asarray(targets)
    return np.asarray(encode_answers({t.name: targets[:, j] for j, t in enumerate(TASKS)}))


# The heads' outputs, by head name: one head per task (model.heads=multi) or one 18-class head (single).
# The model's heads, the losses and mixing read the sizes here.
HEAD_SIZES: dict[str, int] = {"class": NUM_CLASSES, **{t.name: t.size for t in TASKS}}
def head_names(heads: str) -> tuple[str, ...]:
    """The heads of ``heads``: one per task in TASKS order (multi), or the one 18-class head (single)."""
    return tuple(t.name for t in TASKS) if heads == "multi" else ("class",)
