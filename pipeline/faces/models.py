"""Which detector and landmark model the face stage uses: the embedded ones, or official networks.

`--detector` picks what finds faces (BlazeFace ships in the package;
RetinaFace and S3FD load their official checkpoints); it runs only while the
target is not being tracked. `--landmarks fan` adds FAN's 68 points on top
of FaceMesh: the 468-point mesh every engine reads is moved to agree with
FAN where the two models mark the same feature (`MESH_68`), smoothly in
between, so the engines keep their dense geometry with FAN's placement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

from lipstream.config import FaceConfig
from lipstream.models.face_types import Detection, FaceDetector

if TYPE_CHECKING:
    from lipstream.models.fan import FanLandmarks

__all__ = ["DETECTORS", "LANDMARKS", "MESH_68", "FaceModels", "face_models", "fit_mesh", "mesh_68", "requirements"]

DETECTORS: dict[str, str | None] = {
    "blazeface": None,  # embedded, full range
    "blazeface-short": None,  # embedded, close-ups
    "retinaface": "retinaface_r50",
    "retinaface-mnet": "retinaface_mnet",
    "s3fd": "s3fd",
}
"""`--detector` name -> registry checkpoint (None: embedded, no weights)."""

LANDMARKS: dict[str, str | None] = {"facemesh": None, "fan": "fan2d"}

# The 68-point (iBUG) scheme in FaceMesh vertices, subject's right side first
# (image left). Chosen by drawing the mesh on real faces: eye corners and lid
# points, the upper brow edge, the nose ridge and base, the lip contours. The
# jaw (points 0-16) is not a set of vertices: `mesh_68` spaces it evenly
# along the face oval, as FAN places it, with the chin (8) at vertex 152.
_JAW_RIGHT = (127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152)  # ear to chin, image left
_JAW_LEFT = (152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356)  # chin to ear, image right
MESH_68: dict[int, int] = {
    **dict(zip(range(17, 27), (70, 63, 105, 66, 107, 336, 296, 334, 293, 300))),  # brows
    **dict(zip(range(27, 36), (168, 197, 5, 1, 98, 97, 2, 326, 327))),  # nose ridge, then its base
    **dict(zip(range(36, 48), (33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380))),  # eyes
    **dict(zip(range(48, 60), (61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91))),  # outer lips
    **dict(zip(range(60, 68), (78, 81, 13, 311, 308, 402, 14, 178))),  # inner lips
}


def requirements(config: FaceConfig) -> tuple[tuple[str, ...], ...]:
    """Registry checkpoints the chosen detector and landmark model need."""
    names = [DETECTORS[config.detector], LANDMARKS[config.landmarks]]
    return tuple((name,) for name in names if name is not None)


@dataclass
class FaceModels:
    """The face stage's models. `device` is where torch models run (None: only the embedded TFLite ones)."""

    detector: FaceDetector | None = None  # None: the embedded BlazeFace, made on the stage's own thread
    refiner: FanLandmarks | None = None
    device: str | None = None


def face_models(config: FaceConfig, device: str = "cpu", weights: Sequence[Path] = ()) -> FaceModels:
    """Load what `config` asks for (official checkpoints from `weights`, $LIPSTREAM_WEIGHTS, the cache).

    Torch is imported only when a checkpoint is: the embedded models run on
    TFLite, and importing torch alone costs ~170 MB of resident memory.
    """
    detector: FaceDetector | None = None
    refiner = None
    name = DETECTORS[config.detector]
    if name is not None:
        from lipstream.models._loading import load_model

        network = load_model(name, weights_dirs=weights, device=device)
        if name == "s3fd":
            from lipstream.models.s3fd import S3FDDetector

            detector = ScaledDetector(S3FDDetector(network), config.detect_size)
        else:
            from lipstream.models.retinaface import RetinaFaceDetector

            detector = ScaledDetector(RetinaFaceDetector(network), config.detect_size)
    name = LANDMARKS[config.landmarks]
    if name is not None:
        from lipstream.models._loading import load_model
        from lipstream.models.fan import FanLandmarks

        refiner = FanLandmarks(load_model(name, weights_dirs=weights, device=device))
    return FaceModels(detector, refiner, device if detector is not None or refiner is not None else None)


class ScaledDetector:
    """A detector run on frames shrunk to at most `max_side` pixels, its boxes mapped back.

    The official detectors take the picture at its own size: a 1080x1920
    frame costs them seconds on a CPU, and faces that are worth tracking are
    still tens of pixels wide at 640.
    """

    def __init__(self, detector: FaceDetector, max_side: int) -> None:
        self.detector = detector
        self.max_side = max_side

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        scales = [min(1.0, self.max_side / max(f.shape[:2])) for f in frames]
        small = [f if s == 1.0 else cv2.resize(f, (round(f.shape[1] * s), round(f.shape[0] * s)), interpolation=cv2.INTER_AREA) for f, s in zip(frames, scales)]
        found = self.detector.detect(small)
        return [[d.mapped(1.0 / s) for d in dets] if s != 1.0 else dets for dets, s in zip(found, scales)]


def _resample(polyline: np.ndarray, count: int) -> np.ndarray:
    """`count` points evenly spaced along `polyline` (first and last included)."""
    steps = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    wanted = np.linspace(0.0, along[-1], count)
    return np.stack([np.interp(wanted, along, polyline[:, k]) for k in range(2)], axis=1)


def mesh_68(points: np.ndarray) -> np.ndarray:
    """(68, 2): the iBUG points as the FaceMesh `points` (468, 2+) place them."""
    xy = np.asarray(points, np.float64)[:, :2]
    out = np.empty((68, 2))
    out[:9] = _resample(xy[list(_JAW_RIGHT)], 9)
    out[8:17] = _resample(xy[list(_JAW_LEFT)], 9)
    for k, vertex in MESH_68.items():
        out[k] = xy[vertex]
    return out


def fit_mesh(points: np.ndarray, fan: np.ndarray, reach: float = 0.08, max_disagreement: float = 0.15) -> np.ndarray | None:
    """The mesh `points` (468, 3) moved so its 68-point view lands on `fan` (68, 2), or None.

    Each vertex moves by a Gaussian-weighted mean of the 68 displacements
    (`reach` in face widths), so the mesh keeps its shape between anchors.
    None when the two models disagree by more than `max_disagreement` face
    widths (median): FAN then found something else, and the mesh is kept.
    """
    xy = np.asarray(points, np.float64)[:, :2]
    width = float(np.ptp(xy[:, 0])) or 1.0
    anchors = mesh_68(xy)
    moves = np.asarray(fan, np.float64)[:, :2] - anchors
    if np.median(np.linalg.norm(moves, axis=1)) > max_disagreement * width:
        return None
    d2 = ((xy[:, None, :] - anchors[None, :, :]) ** 2).sum(axis=2)
    weights = np.exp(-d2 / (2.0 * (reach * width) ** 2)) + 1e-12
    shift = (weights @ moves) / weights.sum(axis=1, keepdims=True)
    out = np.array(points, np.float64, copy=True)
    out[:, :2] += shift
    return out
