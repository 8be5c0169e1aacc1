"""Shared value types and protocols for face detectors and landmark models.

Every face model in lipstream (the embedded MediaPipe BlazeFace/FaceMesh
TFLite models, Apache-2.0, and later RetinaFace/S3FD/FAN) speaks this
contract, so trackers and pipelines never depend on a particular network.

Conventions (all implementations):
  * frames are RGB uint8 arrays of shape (H, W, 3);
  * coordinates are frame pixels in the OpenCV convention: pixel (row r,
    column c) has its centre at (x=c, y=r);
  * scores and presence are probabilities in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, Union, runtime_checkable

import numpy as np


def _frozen_array(values: object, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    """Copy to a read-only float64 array so frozen dataclasses stay immutable."""
    arr = np.array(values, dtype=np.float64)
    if arr.ndim != 1 + len(shape_tail) or arr.shape[1:] != shape_tail:
        raise ValueError(f"{name} must have shape (N, {', '.join(map(str, shape_tail))}), got {arr.shape}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Detection:
    """One face box with its score and keypoints, in frame pixels.

    For BlazeFace the 6 keypoints are, in order: the subject's right eye
    (left in the image), left eye, nose tip, mouth centre, right ear
    tragion, left ear tragion.
    """

    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    def __post_init__(self) -> None:
        object.__setattr__(self, "keypoints", _frozen_array(self.keypoints, (2,), "keypoints"))
        for name in ("x0", "y0", "x1", "y1", "score"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def box(self) -> np.ndarray:
        """(4,) array x0, y0, x1, y1."""
        return np.array([self.x0, self.y0, self.x1, self.y1])

    def mapped(self, scale: float = 1.0, offset: tuple[float, float] = (0.0, 0.0)) -> Detection:
        """This detection with every coordinate scaled, then shifted (from a resized or cropped picture to the frame)."""
        dx, dy = offset
        return Detection(
            self.x0 * scale + dx, self.y0 * scale + dy, self.x1 * scale + dx, self.y1 * scale + dy,
            self.score, self.keypoints * scale + (dx, dy),
        )

    @property
    def center(self) -> tuple[float, float]:
        return (0.5 * (self.x0 + self.x1), 0.5 * (self.y0 + self.y1))

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass(frozen=True, eq=False)
class Landmarks:
    """Dense face landmarks: (N, 3) points (x, y in frame pixels, z in pixels
    of the same scale, relative depth) and a face-presence probability."""

    points: np.ndarray
    presence: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", _frozen_array(self.points, (3,), "points"))
        object.__setattr__(self, "presence", float(self.presence))

    @property
    def xy(self) -> np.ndarray:
        """(N, 2) view of the image-plane coordinates."""
        return self.points[:, :2]


Roi = Union[Detection, Landmarks]


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in a batch of frames; one list (best score first) per frame."""

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]: ...


@runtime_checkable
class LandmarkModel(Protocol):
    """Locates landmarks inside a region given by a detection or by the
    previous frame's landmarks, so tracking needs no detector once locked."""

    def landmarks(self, frame: np.ndarray, roi: Roi) -> Landmarks: ...
