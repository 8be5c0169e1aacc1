"""Mouth geometry: from FaceMesh landmarks and an articulation to a backward warp of the lower face.

The warp is built in a face-aligned frame (u along the eye line, v down,
origin between the mouth corners, pixel units) as a set of columns. Each
column u has seven rows ("knots") at fixed anatomical places:

    0 top     between the nose and the upper lip      (never moves)
    1 Uo      upper outer lip edge
    2 Ui      upper inner lip edge
    3 Li      lower inner lip edge
    4 Lo      lower outer lip edge
    5 chin    the jaw line under the mouth            (moves with the jaw)
    6 bottom  below the chin                          (never moves)

Source knots are where those places are in the frame; target knots are
where they should be: first the mouth is relaxed to a rest shape (the lips
meet at a seam between the original inner edges, the lower lip and chin
rising with them, which cancels the original jaw motion), then the new
articulation opens the jaw from that rest shape. Each output pixel finds
its column, then maps its v piecewise-linearly from target to source
knots: monotone in v, so the warp never folds, and a closing mouth
squeezes the old cavity into a line exactly. Spread and rounding scale the
lip region horizontally. Everything falls back to identity at the edge of
the region, so the warp is continuous with the untouched frame.

The warp also reports, for each output pixel, where it lies inside the
new mouth opening so `mouth_paint` can draw the cavity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from lipstream.models.facemesh import LIPS_INNER, LIPS_OUTER

from .articulation import Articulation

# contours from the subject's right mouth corner (image left) to the left one
UPPER_OUTER = (LIPS_OUTER[0],) + tuple(reversed(LIPS_OUTER[10:]))
LOWER_OUTER = LIPS_OUTER[:11]
UPPER_INNER = (LIPS_INNER[0],) + tuple(reversed(LIPS_INNER[10:]))
LOWER_INNER = LIPS_INNER[:11]
# the jaw line of the FaceMesh face oval, image left to right, through the chin (152)
JAW = (132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361)
EYES = (33, 263)  # outer eye corners: the face's roll and scale, unaffected by the mouth
SUBNASALE = 2

COLUMNS = 48
_MAX_STRETCH = 10.0
# the blend mask fades over these fractions of the region's height and width
_FEATHER_V = 0.12
_FEATHER_U = 0.15
# spread/rounding acts within an ellipse of these multiples of the lips' half-width and half-height
_BUMP_U = 1.6
_BUMP_V = 2.2
KNOTS = 7
TOP, UO, UI, LI, LO, CHIN, BOTTOM = range(KNOTS)


@dataclass(frozen=True)
class WarpConfig:
    """Shape of the re-articulated mouth, in units of the outer-eye-corner distance unless noted."""

    max_opening: float = 0.24  # inner-lip gap at full articulation
    upper_share: float = 0.2  # part of the opening taken by the upper lip rising
    seam: float = 0.3  # where a parted mouth closes, from the upper (0) to the lower (1) inner lip
    closed_gap: float = 0.004  # a closed mouth keeps a hairline between the lips
    chin_follow: float = 0.95  # chin travel per unit of lower-lip travel at the midline
    spread_gain: float = 0.08  # relative mouth widening at full spread (narrowing when rounded)
    side_reach: float = 1.9  # region half-width in outer mouth half-widths
    below_chin: float = 0.2  # unmoved margin below the chin
    above_lip: float = 0.55  # top knot, as a fraction of the way from the upper lip to the nose


@dataclass(frozen=True)
class MouthFrame:
    """Face-aligned axes at the mouth: u along the eye line, v down, in frame pixels."""

    origin: np.ndarray  # (2,) frame px
    axis_u: np.ndarray  # (2,) unit
    axis_v: np.ndarray  # (2,) unit
    scale: float  # outer eye corner distance, px

    def to_local(self, xy: np.ndarray) -> np.ndarray:
        d = np.asarray(xy, np.float64)[..., :2] - self.origin
        return np.stack([d @ self.axis_u, d @ self.axis_v], axis=-1)

    def to_frame(self, uv: np.ndarray) -> np.ndarray:
        uv = np.asarray(uv, np.float64)
        return self.origin + uv[..., :1] * self.axis_u + uv[..., 1:2] * self.axis_v


def mouth_frame(landmarks: np.ndarray) -> MouthFrame:
    """The aligned frame of one face (landmarks (468, 2+) in frame px)."""
    xy = np.asarray(landmarks, np.float64)[:, :2]
    eye = xy[EYES[1]] - xy[EYES[0]]
    scale = float(np.hypot(*eye))
    axis_u = eye / max(scale, 1e-9)
    axis_v = np.array([-axis_u[1], axis_u[0]])
    origin = 0.5 * (xy[LIPS_OUTER[0]] + xy[LIPS_OUTER[10]])
    return MouthFrame(origin, axis_u, axis_v, scale)


@dataclass(frozen=True)
class MouthShape:
    """Source knots of one face: rows per column, plus what the target needs."""

    frame: MouthFrame
    columns: np.ndarray  # (COLUMNS,) u of each column
    knots: np.ndarray  # (COLUMNS, KNOTS) source v per column
    inner: tuple[float, float]  # u of the inner mouth corners
    outer: tuple[float, float]  # u of the outer mouth corners
    side: np.ndarray  # (COLUMNS,) 1 in the middle, 0 at the region's sides


def _contour(uv: np.ndarray, at: np.ndarray) -> np.ndarray:
    """v of a left-to-right contour at columns `at`, ends held; robust to slight back-tracking in u."""
    u = np.maximum.accumulate(uv[:, 0])
    return np.interp(at, u + np.arange(len(u)) * 1e-6, uv[:, 1])


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def rest_shape(landmarks: np.ndarray, config: WarpConfig = WarpConfig()) -> MouthShape:
    """Source knots from the landmarks (frame px)."""
    frame = mouth_frame(landmarks)
    uv = frame.to_local(landmarks)
    d = frame.scale
    outer = (float(uv[LIPS_OUTER[0], 0]), float(uv[LIPS_OUTER[10], 0]))
    inner = (float(uv[LIPS_INNER[0], 0]), float(uv[LIPS_INNER[10], 0]))
    half = max(0.5 * (outer[1] - outer[0]), 0.1 * d)
    jaw = uv[list(JAW)]
    left = max(-config.side_reach * half, float(jaw[:, 0].min()))
    right = min(config.side_reach * half, float(jaw[:, 0].max()))
    columns = np.linspace(left, right, COLUMNS)
    knots = np.empty((COLUMNS, KNOTS))
    knots[:, UO] = _contour(uv[list(UPPER_OUTER)], columns)
    knots[:, UI] = _contour(uv[list(UPPER_INNER)], columns)
    knots[:, LI] = _contour(uv[list(LOWER_INNER)], columns)
    knots[:, LO] = _contour(uv[list(LOWER_OUTER)], columns)
    # the jaw line only where it runs below the mouth; the sides of the face are held
    low = jaw[jaw[:, 1] > 0.05 * d]
    chin = _contour(low, columns) if len(low) >= 2 else np.full(COLUMNS, 0.4 * d)
    knots[:, CHIN] = np.maximum(chin, knots[:, LO] + 0.05 * d)
    knots[:, BOTTOM] = knots[:, CHIN] + config.below_chin * d
    nose = float(uv[SUBNASALE, 1])
    top_line = float(uv[UPPER_OUTER[5], 1]) + config.above_lip * (nose - float(uv[UPPER_OUTER[5], 1]))
    knots[:, TOP] = np.minimum(top_line, knots[:, UO] - 0.02 * d)
    knots = np.maximum.accumulate(knots, axis=1)
    edge = np.minimum(columns - left, right - columns) / max(0.35 * (right - left), 1e-6)
    side = smoothstep(edge)
    return MouthShape(frame, columns, knots, inner, outer, side)


def target_knots(shape: MouthShape, pose: Articulation, weight: float = 1.0,
                 config: WarpConfig = WarpConfig()) -> np.ndarray:
    """Where each knot goes: the mouth closed at a seam, then opened by `pose`; `weight` blends from the source."""
    s, d = shape.knots, shape.frame.scale
    u = shape.columns
    centre = 0.5 * (shape.inner[0] + shape.inner[1])
    half = max(0.5 * (shape.inner[1] - shape.inner[0]), 1e-6)
    x = np.clip((u - centre) / half, -1.0, 1.0)
    # opening profile along the mouth: rounder lips open in a narrower, rounder gap
    roundness = 0.55 - 0.25 * pose.spread
    profile = (1.0 - x * x) ** roundness
    gap = np.maximum(s[:, LI] - s[:, UI], 0.0)
    seam = s[:, UI] + config.seam * gap
    amount = config.max_opening * d * pose.opening
    hair = config.closed_gap * d * profile
    upper = seam - config.upper_share * amount * profile - 0.5 * hair
    lower = seam + (1.0 - config.upper_share) * amount * profile + 0.5 * hair
    t = s.copy()
    t[:, UI] = upper
    t[:, LI] = lower
    t[:, UO] = s[:, UO] + 0.7 * (upper - s[:, UI])
    t[:, LO] = s[:, LO] + 0.9 * (lower - s[:, LI])
    # the jaw is rigid: the chin travels with the lower lip at the midline, fading towards the ears
    mid = int(np.argmin(np.abs(u - centre)))
    jaw = config.chin_follow * (lower[mid] - s[mid, LI])
    t[:, CHIN] = s[:, CHIN] + jaw * shape.side
    delta = (t - s) * (weight * shape.side)[:, None]
    delta[:, TOP] = 0.0
    delta[:, BOTTOM] = 0.0
    return np.maximum.accumulate(s + delta, axis=1)


@dataclass(frozen=True)
class Warp:
    """A backward map over `box` (frame px, x0 y0 x1 y1) and where the new mouth opening is."""

    box: tuple[int, int, int, int]
    map_x: np.ndarray  # (h, w) float32 source x in frame px for each output pixel
    map_y: np.ndarray
    cavity: np.ndarray  # (h, w) float32 coverage of the new inner mouth, 0..1
    depth: np.ndarray  # (h, w) float32 0 at the upper inner lip .. 1 at the lower one
    across: np.ndarray  # (h, w) float32 -1 .. 1 from one inner corner to the other
    gap: np.ndarray  # (h, w) float32 height of the opening in this column, px
    stretch: np.ndarray  # (h, w) float32 new opening over the original one in this column (capped)
    mask: np.ndarray  # (h, w) float32 0..1: where the warp differs from identity, feathered


def region_box(shape: MouthShape) -> tuple[int, int, int, int]:
    """Integer frame box (x0, y0, x1, y1) covering everything the warp may move."""
    u = shape.columns
    corners = np.concatenate([
        np.stack([u, shape.knots[:, TOP]], 1),
        np.stack([u, shape.knots[:, BOTTOM]], 1),
    ])
    xy = shape.frame.to_frame(corners)
    x0, y0 = np.floor(xy.min(axis=0)).astype(int)
    x1, y1 = np.ceil(xy.max(axis=0)).astype(int) + 1
    return int(x0), int(y0), int(x1), int(y1)


def build_warp(shape: MouthShape, target: np.ndarray, pose: Articulation,
               box: tuple[int, int, int, int], config: WarpConfig = WarpConfig(), weight: float = 1.0) -> Warp:
    """Dense backward map and cavity layers over `box` for the source/target knots.

    The layers are smooth at the pixel scale, so on large faces they are
    computed on a grid of every `step`-th pixel and resized (4x less work
    at 1080p); the grid's samples sit where `cv2.resize` expects them.
    """
    x0, y0, x1, y1 = box
    h, w = max(y1 - y0, 0), max(x1 - x0, 0)
    step = 2 if shape.frame.scale >= 100.0 and min(h, w) >= 32 else 1
    gh, gw = -(-h // step), -(-w // step)
    if not (h and w):
        return Warp(box, *[np.zeros((h, w), np.float32) for _ in range(8)])
    offset = 0.5 * (step - 1)
    xs = x0 + offset + step * np.arange(gw)
    ys = y0 + offset + step * np.arange(gh)
    layers = _warp_layers(xs, ys, shape, target, config.spread_gain * pose.spread * weight)
    if step > 1:
        layers = [cv2.resize(layer, (gw * step, gh * step), interpolation=cv2.INTER_LINEAR)[:h, :w] for layer in layers]
    return Warp(box, *layers)


class _AtColumns:
    """Per-column tables linearly interpolated at fractional column positions (ends held).

    The positions are resolved once and reused for every table. (numpy's
    `take` is far faster with a 1-D index, hence the flat arrays.)
    """

    def __init__(self, col: np.ndarray, n: int) -> None:
        c = np.clip(col.ravel(), 0.0, n - 1.0)
        lo = np.minimum(np.floor(c), n - 2)
        self._index = lo.astype(np.intp)
        self._frac = c - lo
        self._shape = col.shape

    def __call__(self, table: np.ndarray) -> np.ndarray:
        """`table` (n,) at the positions."""
        out = table.take(self._index)
        out += self._frac * np.diff(table).take(self._index)
        return out.reshape(self._shape)


def _warp_layers(xs: np.ndarray, ys: np.ndarray, shape: MouthShape, target: np.ndarray,
                 spread: float) -> list[np.ndarray]:
    """The `Warp` layers at the grid of frame points (xs x ys), float32; see the module docstring.

    Each point finds its column (u), is moved across by spread/rounding,
    then maps its v piecewise-linearly from the target knots to the source
    knots of its column, both interpolated between the neighbouring columns.
    """
    f32 = np.float32
    f = shape.frame
    cu, su = (f32(c) for c in f.axis_u)
    dx = (xs - f.origin[0]).astype(f32)[None, :]
    dy = (ys - f.origin[1]).astype(f32)[:, None]
    u = dx * cu + dy * su
    v = dy * cu - dx * su
    columns, source = shape.columns, shape.knots
    n = len(columns)
    left, right = float(columns[0]), float(columns[-1])
    per_column = f32((n - 1) / (right - left))
    centre = f32(0.5 * (shape.inner[0] + shape.inner[1]))
    half = max(0.5 * (shape.inner[1] - shape.inner[0]), 1e-6)
    outer_half = max(0.5 * (shape.outer[1] - shape.outer[0]), 1e-6)
    targets = np.ascontiguousarray(target.T, dtype=f32)  # (KNOTS, n)
    sources = np.ascontiguousarray(source.T, dtype=f32)
    inside = (u > left) & (u < right)
    at = _AtColumns((u - f32(left)) * per_column, n)
    t_top, t_bottom = at(targets[TOP]), at(targets[BOTTOM])
    # vertical feather: 1 inside the region, 0 at its top and bottom edges
    ey = np.minimum(v - t_top, t_bottom - v) / (f32(_FEATHER_V) * (t_bottom - t_top))
    ey[~inside] = 0.0
    np.clip(ey, 0.0, 1.0, out=ey)
    # spread/round: scale about the mouth centre, fading out away from the lips
    lip_top, lip_bottom = float(source[:, UO].min()), float(source[:, LO].max())
    bx = (u - centre) * f32(1.0 / (_BUMP_U * outer_half))
    by = (v - f32(0.5 * (lip_top + lip_bottom))) * f32(1.0 / (_BUMP_V * max(0.5 * (lip_bottom - lip_top), 1.0)))
    bump = np.maximum(1.0 - bx * bx - by * by, 0.0)
    bump *= bump
    bump *= ey
    bump *= f32(spread)
    us = u - (u - centre) * bump / (1.0 + bump)
    # piecewise-linear from target rows to source rows, in the (moved) column
    at = _AtColumns((us - f32(left)) * per_column, n)
    t = [at(row) for row in targets]
    s = [at(row) for row in sources]
    vs = s[TOP].copy()
    for k in range(KNOTS - 1):
        vs += (s[k + 1] - s[k]) * np.clip((v - t[k]) / np.maximum(t[k + 1] - t[k], 1e-6), 0.0, 1.0)
    band = ey > 0.0
    still = ~band | (v <= t[TOP]) | (v >= t[BOTTOM])
    vs[still] = v[still]
    # where the pixel lies inside the new opening, for the paint
    opening = t[LI] - t[UI]
    layers = [np.zeros_like(u) for _ in range(5)]
    cavity, depth, across, gap, stretch = layers
    inner = band & (opening > 0.0) & (v > t[UI] - 0.5) & (v < t[LI] + 0.5)
    if inner.any():
        o, vi, ui = opening[inner], v[inner], t[UI][inner]
        cover = np.minimum(np.minimum(vi - ui + 0.5, t[LI][inner] - vi + 0.5), 1.0) * np.minimum(o, 1.0)
        cavity[inner] = np.maximum(cover, 0.0)
        depth[inner] = np.clip((vi - ui) / o, 0.0, 1.0)
        across[inner] = np.clip((us[inner] - centre) * f32(1.0 / half), -1.0, 1.0)
        gap[inner] = o
        stretch[inner] = np.minimum(o / np.maximum(s[LI][inner] - s[UI][inner], 0.1), _MAX_STRETCH)
    # feathered mask: 1 inside the region, 0 at its edges
    ex = np.clip(np.minimum(u - f32(left), f32(right) - u) * f32(1.0 / (_FEATHER_U * (right - left))), 0.0, 1.0)
    mask = ey * ey * (3.0 - 2.0 * ey) * (ex * ex * (3.0 - 2.0 * ex))
    map_x = f32(f.origin[0]) + us * cu - vs * su
    map_y = f32(f.origin[1]) + us * su + vs * cu
    return [map_x, map_y, cavity, depth, across, gap, stretch, mask]


def frame_scale_ok(shape: MouthShape) -> bool:
    """False for faces too small for a meaningful warp, or landmarks that are not finite."""
    return shape.frame.scale >= 12.0 and math.isfinite(float(shape.knots.sum()))
