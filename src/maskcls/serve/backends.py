"""The serving backends' table (torch, onnx) and the test-time augmentations they run: the one home
that `Predictor`, `export` and the command line's choices read. Light to import (the CLI builds its
parser from it), so what a backend needs is imported when it is used."""

from __future__ import annotations

TTA_CHOICES = ("none", "hflip")  # hflip: the mean of the photo's and its mirror image's probabilities

BACKENDS = {"torch": None, "onnx": None}
