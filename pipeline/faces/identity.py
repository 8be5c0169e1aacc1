"""Who the target speaker is, and whether a face is still that person (pure).

The target is chosen once: the largest face, or the face nearest a point the
user gave. After that a face is accepted as the target only if it fits the
track: where the target was heading, about its size, and looking like it
(an upper-face patch, which lip motion does not change). So two people
crossing, or another face growing larger, never swap the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lipstream.models.face_types import Detection

# Canonical positions (in a 32x24 patch) of the outer eye corners and the nose
# tip; the patch covers eyes, brows and nose, not the mouth.
PATCH_SIZE = (32, 24)
_CANONICAL = np.float32([[6.0, 9.0], [26.0, 9.0], [16.0, 20.0]])
EYE_OUTER = (33, 263)
NOSE_TIP = 1


@dataclass(frozen=True)
class Signature:
    """How a face looks: grey structure (unit vector) and mean skin chroma (Lab a, b).

    Measured on real clips: the same person over head turns keeps chroma
    within ~3 and structure correlation above ~0.55; different people were
    ~8-10 apart in chroma.
    """

    structure: np.ndarray
    chroma: np.ndarray

    def compare(self, other: Signature) -> tuple[float, float]:
        """(structure correlation in [-1, 1], chroma distance)."""
        return float(np.dot(self.structure, other.structure)), float(np.linalg.norm(self.chroma - other.chroma))

    def blend(self, other: Signature, rate: float) -> Signature:
        structure = (1 - rate) * self.structure + rate * other.structure
        structure /= max(float(np.linalg.norm(structure)), 1e-6)
        return Signature(structure, (1 - rate) * self.chroma + rate * other.chroma)


def signature(rgb: np.ndarray, points: np.ndarray) -> Signature:
    """The signature of the face whose landmarks are `points`."""
    src = np.float32([points[EYE_OUTER[0], :2], points[EYE_OUTER[1], :2], points[NOSE_TIP, :2]])
    matrix = cv2.getAffineTransform(src, _CANONICAL)
    patch = cv2.warpAffine(rgb, matrix, PATCH_SIZE, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    lab = cv2.cvtColor(patch, cv2.COLOR_RGB2LAB).astype(np.float32)
    grey = lab[..., 0].ravel()
    grey -= grey.mean()
    norm = float(np.linalg.norm(grey))
    return Signature(grey / norm if norm > 1e-6 else grey, lab[..., 1:].reshape(-1, 2).mean(axis=0) - 128.0)


def box_of(points: np.ndarray) -> np.ndarray:
    xy = points[:, :2]
    return np.array([xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()])


def choose_initial(detections: list[Detection], point: tuple[float, float] | None = None) -> Detection | None:
    """The target among the first frame's faces: nearest `point`, else the largest."""
    if not detections:
        return None
    if point is not None:
        return min(detections, key=lambda d: np.hypot(d.center[0] - point[0], d.center[1] - point[1]))
    return max(detections, key=lambda d: d.width * d.height)


@dataclass
class IdentityGate:
    """Remembers the target's look and motion; judges candidate faces.

    While tracking, a face must be near where the target was heading, about
    its size and of its chroma. After the target was lost, a candidate must
    also match its structure; the allowed distance grows with the time away.
    `max_jump` is in face sizes per frame.
    """

    max_jump: float = 0.35
    size_ratio: float = 1.35
    max_chroma: float = 5.0
    min_structure: float = 0.5
    learn_rate: float = 0.05

    def __post_init__(self) -> None:
        self.look: Signature | None = None
        self.box: np.ndarray | None = None
        self.velocity = np.zeros(2)
        self.missing = 0  # frames since the target was last accepted

    @property
    def started(self) -> bool:
        return self.look is not None

    def predicted_centre(self) -> np.ndarray:
        assert self.box is not None
        centre = (self.box[:2] + self.box[2:]) / 2
        return centre + self.velocity * (self.missing + 1)

    def fits(self, box: np.ndarray, look: Signature) -> bool:
        """Is a face with this box and look the target?"""
        if self.look is None or self.box is None:
            return True
        size = max(self.box[2] - self.box[0], 1.0)
        new_size = max(box[2] - box[0], 1.0)
        slack = 1 + self.missing
        jump = np.linalg.norm((box[:2] + box[2:]) / 2 - self.predicted_centre())
        ratio = max(new_size / size, size / new_size)
        structure, chroma = look.compare(self.look)
        if jump > self.max_jump * size * slack or ratio > self.size_ratio ** min(slack, 4):
            return False
        if chroma > (self.max_chroma if self.missing else 1.5 * self.max_chroma):
            return False
        return self.missing == 0 or structure >= self.min_structure

    def accept(self, box: np.ndarray, look: Signature) -> None:
        if self.box is not None and self.missing == 0:
            step = (box[:2] + box[2:]) / 2 - (self.box[:2] + self.box[2:]) / 2
            self.velocity = 0.7 * self.velocity + 0.3 * step
        else:
            self.velocity = np.zeros(2)
        self.box = box
        self.look = look if self.look is None else self.look.blend(look, self.learn_rate)
        self.missing = 0

    def miss(self) -> None:
        self.missing += 1

    def resume(self, look: Signature, box: np.ndarray, missing: int) -> None:
        """Take up a target last seen `missing` frames ago with this look and box (a segment that starts
        fresh continuing the pre-pass's lock): any face that looks like it is accepted, wherever it went."""
        self.look, self.box, self.velocity, self.missing = look, np.asarray(box, float).copy(), np.zeros(2), max(missing, 1)
