"""What `evaluate_run` scores, by name; light to import, so the command line's choices read it."""

from __future__ import annotations

# val: the run's own validation fold (DATA must be its training data); all: every labelled photo;
# auto: val on the training data, else all.
SPLITS = ("auto", "val", "all")
