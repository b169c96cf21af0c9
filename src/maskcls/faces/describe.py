"""Align a found face on dlib's 5 landmarks and describe it with dlib's ResNet: 128 numbers per face
whose Euclidean distance says whether two faces are the same person (below 0.6 by dlib's own
documented threshold). The network was trained for identity, not for gender or age; that it carries
both (a logistic regression reads them well, docs/faces.md) is measured, not promised."""

from __future__ import annotations

import numpy as np

from . import models
from .detect import Detection

DESCRIPTOR_SIZE = 128
SAME_PERSON_DISTANCE = 0.6  # dlib's documented threshold: below it, two descriptors are one person


def describe(image: np.ndarray, face: Detection) -> tuple[np.ndarray, np.ndarray]:
    """(landmarks (5, 2) float32 in the photo's pixels, descriptor (128,) float32) of one face."""
    dlib = models.dlib_module()
    rect = dlib.rectangle(face.x, face.y, face.x + face.w, face.y + face.h)
    image = np.ascontiguousarray(image)
    shape = models.load("landmarks")(image, rect)
    points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)], dtype=np.float32)
    vector = models.load("descriptor").compute_face_descriptor(image, shape)
    return points, np.asarray(vector, dtype=np.float32)
