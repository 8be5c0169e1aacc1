"""The speaker's own mouths, kept as exemplars: a bounded bank that covers the shapes the mouth took.

An exemplar is the mouth region of one frame resampled into the face's own
mouth frame (`mouth_warp.mouth_frame`: centred between the mouth corners,
axes along and across the eye line, lengths in outer-eye-corner distances),
so mouths from any head pose and size line up. With it go the lip contours
in the same units and a shape descriptor (inner opening, width, lip
thicknesses). The bank keeps at most `per_slot` exemplars in each cell of a
grid over opening and width, the best by quality (sharp, frontal, well
exposed), and never two from neighbouring frames in one cell, so at most
`slots x per_slot` exemplars (256 x 48 KB about 12 MB). It also keeps, per
opening, what this speaker's mouths typically show between the lips (teeth
share, luminance) over every mouth offered, so selection can prefer the
speaker's usual look to a rare one (a clenched smile where speech opens the
jaw).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from lipstream.stream.frames import Frame

from ..shared.mouth_warp import LOWER_INNER, LOWER_OUTER, UPPER_INNER, UPPER_OUTER, MouthFrame, mouth_frame

__all__ = ["BankConfig", "Exemplar", "MouthBank", "cut_exemplar", "descriptor", "learn_frame", "lip_knots", "teeth_like"]

# the canonical patch: u in [-HALF_U, HALF_U], v in [-ABOVE, BELOW] (outer-eye distances)
HALF_U, ABOVE, BELOW = 0.5, 0.3, 0.36
WIDTH = 160
HEIGHT = round(WIDTH * (ABOVE + BELOW) / (2 * HALF_U))
COLUMNS = 33  # lip contours sampled at these positions across the outer mouth corners (-1 .. 1)
THUMB = (20, 13)  # small copy used to judge how alike two exemplars look
_EYES, _NOSE = (33, 263), 1
_LEAST_INSIDE = 40  # patch pixels between the inner lips needed to judge what a mouth shows


@dataclass(frozen=True)
class BankConfig:
    opening_step: float = 0.015  # slot height over the inner opening (eye distances)
    max_opening: float = 0.3
    width_edges: tuple[float, ...] = (0.42, 0.48, 0.53, 0.58, 0.64)  # slot edges over the outer mouth width
    per_slot: int = 2
    min_gap: int = 12  # frames between two exemplars of one slot
    min_width_px: float = 24.0  # mouths narrower than this in the frame are too small to learn from
    least_seen: int = 4  # mouths around an opening needed before the speaker's typical look there is known
    looks_kept: int = 64  # latest looks remembered per opening slot


@dataclass(frozen=True, eq=False)
class Exemplar:
    patch: np.ndarray  # (HEIGHT, WIDTH, 3) uint8 RGB in the canonical mouth frame
    knots: np.ndarray  # (COLUMNS, 4) v of the upper outer, upper inner, lower inner, lower outer lip (eye distances)
    centre: float  # u of the middle between the outer mouth corners (eye distances)
    half_width: float  # half the outer mouth width (eye distances)
    descriptor: np.ndarray  # see `descriptor`
    quality: float
    frame: int  # index of the frame it came from
    thumb: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((1,), np.float32))
    teeth: float = math.nan  # share of teeth-like pixels between the inner lips (NaN when too closed to tell)
    luma: float = math.nan  # mean luminance between the inner lips (0..255, NaN likewise)

    @property
    def opening(self) -> float:
        return float(self.descriptor[0])


def _contour(points: np.ndarray, at: np.ndarray) -> np.ndarray:
    order = np.argsort(points[:, 0], kind="stable")
    return np.interp(at, points[order, 0], points[order, 1])


def lip_knots(frame: MouthFrame, landmarks: np.ndarray) -> tuple[np.ndarray, float, float]:
    """((COLUMNS, 4) lip contours in eye distances, centre u, half width) of one face."""
    uv = frame.to_local(landmarks) / frame.scale
    left, right = uv[UPPER_OUTER[0], 0], uv[UPPER_OUTER[-1], 0]
    centre, half = 0.5 * (left + right), max(0.5 * (right - left), 1e-3)
    at = centre + half * np.linspace(-1.0, 1.0, COLUMNS)
    knots = np.stack([_contour(uv[list(c)], at) for c in (UPPER_OUTER, UPPER_INNER, LOWER_INNER, LOWER_OUTER)], axis=1)
    return np.maximum.accumulate(knots, axis=1), float(centre), float(half)


def descriptor(knots: np.ndarray, half_width: float) -> np.ndarray:
    """(inner opening, outer width, upper lip, lower lip) at the mouth's middle, eye distances."""
    mid = knots[COLUMNS // 2]
    return np.array([max(mid[2] - mid[1], 0.0), 2 * half_width, mid[1] - mid[0], mid[3] - mid[2]])


def _canonical_to_frame(frame: MouthFrame) -> np.ndarray:
    """(2, 3) affine from canonical patch pixels to frame pixels."""
    su, sv = 2 * HALF_U / WIDTH, (ABOVE + BELOW) / HEIGHT
    d = frame.scale
    u0, v0 = -HALF_U + 0.5 * su, -ABOVE + 0.5 * sv
    a = np.column_stack([frame.axis_u * su * d, frame.axis_v * sv * d])
    return np.column_stack([a, frame.origin + d * (u0 * frame.axis_u + v0 * frame.axis_v)])


def cut_exemplar(rgb: np.ndarray, origin: tuple[int, int], landmarks: np.ndarray, index: int) -> Exemplar | None:
    """The exemplar of one face whose region `rgb` starts at `origin` (frame px); None if unfit."""
    xy = np.asarray(landmarks, np.float64)
    frame = mouth_frame(xy)
    if not np.isfinite(frame.scale) or frame.scale < 8:
        return None
    knots, centre, half = lip_knots(frame, xy)
    to_frame = _canonical_to_frame(frame)
    to_frame[:, 2] -= origin
    patch = cv2.warpAffine(rgb, to_frame, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    grey, teeth = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY), teeth_like(patch)
    share, luma = _inside(grey, teeth, knots, centre, half)
    quality = _quality(grey, teeth, knots, centre, half, xy, frame)
    return Exemplar(patch, knots, centre, half, descriptor(knots, half), quality, index, _thumb(patch), share, luma)


def _inside(grey: np.ndarray, teeth: np.ndarray, knots: np.ndarray, centre: float, half: float) -> tuple[float, float]:
    """(teeth share, mean luminance) between the inner lips; NaN when fewer than `_LEAST_INSIDE` pixels show."""
    inner = _lip_rows(knots, centre, half, 1, 2)
    if inner.sum() < _LEAST_INSIDE:
        return math.nan, math.nan
    return float(teeth[inner].mean()), float(grey[inner].mean())


def _thumb(patch: np.ndarray) -> np.ndarray:
    return cv2.resize(patch, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _lip_rows(knots: np.ndarray, centre: float, half: float, first: int, last: int) -> np.ndarray:
    """(HEIGHT, WIDTH) bool: the patch pixels between lip contour `first` and `last` (knot columns)."""
    u = -HALF_U + (np.arange(WIDTH) + 0.5) * (2 * HALF_U / WIDTH)
    v = -ABOVE + (np.arange(HEIGHT) + 0.5) * ((ABOVE + BELOW) / HEIGHT)
    across = (u - centre) / half
    positions = np.linspace(-1, 1, COLUMNS)
    top, bottom = (np.interp(np.clip(across, -1, 1), positions, knots[:, k]) for k in (first, last))
    vv = v[:, None]
    return (vv >= top[None, :]) & (vv <= bottom[None, :]) & (np.abs(across) <= 1.0)[None, :]


def _lip_bands(knots: np.ndarray, centre: float, half: float) -> np.ndarray:
    """(HEIGHT, WIDTH) bool: the patch pixels between the outer and inner contour of either lip."""
    return _lip_rows(knots, centre, half, 0, 1) | _lip_rows(knots, centre, half, 2, 3)


def teeth_like(rgb: np.ndarray) -> np.ndarray:
    """Bright, nearly colourless pixels: teeth (lips and skin are saturated, the mouth's inside dark)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    return (hsv[..., 2] > 150) & (hsv[..., 1] < 80)


def _quality(grey: np.ndarray, teeth: np.ndarray, knots: np.ndarray, centre: float, half: float, xy: np.ndarray, frame: MouthFrame) -> float:
    """0..1: sharp lips, a frontal face, neither dark nor blown out, lip contours on the lips.

    FaceMesh sometimes puts an inner lip contour on the teeth of a wide
    smile; such an exemplar would draw teeth where lips belong, so teeth
    inside its lip bands count against it.
    `grey` and `teeth` (the `teeth_like` mask) are of the patch.
    """
    bands = _lip_bands(knots, centre, half)
    if not bands.any():
        return 0.0
    # on the lips alone (eroded off their edges): teeth edges would make mouths showing teeth look sharpest
    inner = cv2.erode(bands.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    on_lips = inner if inner.sum() >= 20 else bands
    sharp = float(cv2.Laplacian(grey, cv2.CV_32F)[on_lips].var())
    sharpness = sharp / (sharp + 60.0)
    eye_l, eye_r, nose = (frame.to_local(xy[i]) / frame.scale for i in (*_EYES, _NOSE))
    yaw = abs((nose[0] - eye_l[0]) - (eye_r[0] - nose[0]))  # 0 when the nose sits between the eyes
    frontal = float(np.clip(1.0 - 2.0 * yaw, 0.0, 1.0))
    mean = float(grey.mean())
    exposure = float(np.clip(min(mean - 30.0, 225.0 - mean) / 50.0, 0.0, 1.0)) * float(1.0 - (grey >= 250).mean())
    purity = float(np.clip(1.0 - 10.0 * teeth[bands].mean(), 0.0, 1.0))
    return sharpness * frontal * exposure * purity


class MouthBank:
    """Exemplars by slot over (opening, width); bounded, the best of each slot kept."""

    def __init__(self, config: BankConfig = BankConfig()) -> None:
        self.config = config
        self._slots: dict[tuple[int, int], list[Exemplar]] = {}
        self._seen: dict[int, deque[tuple[float, float]]] = {}  # opening slot -> the latest mouths' (teeth, luma)

    def typical(self, opening: float) -> tuple[float, float] | None:
        """(teeth share, luminance) between the lips of this speaker's mouths near `opening`: the medians
        over the latest mouths offered (kept or not), the usual look rather than a mix of a clenched smile
        and an open jaw; None until at least `least_seen` were seen around it."""
        centre = int(round(min(opening, self.config.max_opening) / self.config.opening_step))
        seen = [look for k in (centre - 1, centre, centre + 1) for look in self._seen.get(k, ())]
        if len(seen) < self.config.least_seen:
            return None
        teeth, luma = np.median(np.array(seen), axis=0)
        return float(teeth), float(luma)

    @property
    def max_size(self) -> int:
        c = self.config
        return (int(round(c.max_opening / c.opening_step)) + 1) * (len(c.width_edges) + 1) * c.per_slot

    def slot(self, d: np.ndarray) -> tuple[int, int]:
        c = self.config
        opening = int(round(min(d[0], c.max_opening) / c.opening_step))
        return opening, int(np.searchsorted(c.width_edges, d[1]))

    def add(self, exemplar: Exemplar) -> bool:
        """Keep `exemplar` if its slot has room or it beats the slot's worst; True when kept."""
        if math.isfinite(exemplar.teeth):
            seen = self._seen.setdefault(self.slot(exemplar.descriptor)[0], deque(maxlen=self.config.looks_kept))
            seen.append((exemplar.teeth, exemplar.luma))
        if exemplar.quality <= 0.0:
            return False
        kept = self._slots.setdefault(self.slot(exemplar.descriptor), [])
        near = [e for e in kept if abs(e.frame - exemplar.frame) < self.config.min_gap]
        if near:  # one per stretch of frames: the better one
            if all(exemplar.quality > e.quality for e in near):
                for e in near:
                    kept.remove(e)
                kept.append(exemplar)
                return True
            return False
        if len(kept) < self.config.per_slot:
            kept.append(exemplar)
            return True
        worst = min(kept, key=lambda e: e.quality)
        if exemplar.quality > worst.quality:
            kept[kept.index(worst)] = exemplar
            return True
        return False

    def exemplars(self) -> list[Exemplar]:
        return [e for kept in self._slots.values() for e in kept]

    def __len__(self) -> int:
        return sum(len(kept) for kept in self._slots.values())

    def nbytes(self) -> int:
        return sum(e.patch.nbytes + e.knots.nbytes + e.thumb.nbytes for e in self.exemplars())


def learn_frame(bank: MouthBank, frame: Frame, landmarks: np.ndarray, index: int) -> bool:
    """Add the mouth of one unedited frame to the bank (only its mouth region is converted)."""
    xy = np.asarray(landmarks, np.float64)[:, :2]
    x0, y0 = np.floor(xy.min(axis=0)).astype(int)
    x1, y1 = np.ceil(xy.max(axis=0)).astype(int) + 1
    width = x1 - x0
    if width < bank.config.min_width_px * 2:
        return False
    box = (max(int(x0), 0), max(int((y0 + y1) // 2), 0), int(x1), int(y1) + width // 4)
    region = frame.rgb_region(box)
    exemplar = cut_exemplar(region, (box[0], box[1]), landmarks, index)
    return exemplar is not None and bank.add(exemplar)
