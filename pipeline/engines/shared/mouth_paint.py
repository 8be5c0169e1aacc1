"""Paint the inside of a newly opened mouth: a dark cavity shaded from the lip colour, upper teeth when wide.

The warp stretches whatever was between the original lips into the new
opening. Where the original mouth was open nearly as wide, that is the
speaker's real inside (teeth, tongue) and it is kept; where the opening
grows more than that (from a closed or barely parted original) it is
painted: a shadowed cavity whose colour comes from this face's lips, and
at large openings a band of upper teeth in the colour of the speaker's own
teeth (seen when the original mouth opens), darker towards the corners. A
closed mouth gets nothing. The paint is
drawn as a separate layer and softened to the face's scale before it is
laid on, so it has no sharper edges than the footage around it.
"""

from __future__ import annotations

import cv2
import numpy as np

from lipstream.models.facemesh import LIP_GAP, LIP_INNER_WIDTH, LIPS_INNER, LIPS_OUTER

from .mouth_warp import Warp

# landmarks on the skin just below the lower lip and above the upper lip
SKIN_POINTS = (18, 200, 164)

# sizes in units of the outer-eye-corner distance
TEETH_FROM = 0.035  # openings below this show no teeth
TEETH_FULL = 0.11  # ... and from this one the full band
TEETH_HEIGHT = 0.06  # visible height of the upper teeth at the midline
SOFTNESS = 0.008  # blur of the painted layer
KEEP_STRETCH = 1.3  # the original inside is kept while the opening grows at most this much ...
KEEP_RAMP = 0.7  # ... and fully painted over from KEEP_STRETCH + KEEP_RAMP
INCISOR_EDGES = np.array([-0.55, -0.25, 0.0, 0.25, 0.55])  # tooth gaps across the inner mouth (-1..1)


def sample_colours(rgb: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean lip and skin colours (float32 RGB) near the landmarks of one face."""
    xy = np.asarray(landmarks, np.float64)[:, :2]
    lip_points = 0.5 * (xy[list(LIPS_OUTER)] + xy[list(LIPS_INNER)])
    skin_points = xy[list(SKIN_POINTS)]
    return _mean_at(rgb, lip_points), _mean_at(rgb, skin_points)


def _mean_at(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Mean colour of the 3x3 pixels around each point (clamped inside the image), all points pooled."""
    h, w = rgb.shape[:2]
    ij = np.rint(points).astype(int)
    xs = np.clip(ij[:, 0], 1, w - 2)[:, None] + _NEIGHBOURS[0]
    ys = np.clip(ij[:, 1], 1, h - 2)[:, None] + _NEIGHBOURS[1]
    return rgb[ys, xs].reshape(-1, 3).astype(np.float32).mean(axis=0)


_NEIGHBOURS = np.mgrid[-1:2, -1:2].reshape(2, 1, 9)[::-1]  # (dx, dy) of a 3x3 block


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def teeth_colour(skin: np.ndarray) -> np.ndarray:
    """A guess before any teeth were seen: warm off-white a little brighter than the skin."""
    level = min(235.0, 1.05 * float(skin @ _LUMA) + 15.0)
    white = np.array([0.97, 0.94, 0.86], np.float32) * level
    return 0.7 * white + 0.3 * skin.astype(np.float32)


def observe_inside(rgb: np.ndarray, landmarks: np.ndarray, min_ratio: float = 0.18) -> np.ndarray | None:
    """Colour of the speaker's own teeth, read from a frame where the original mouth is open.

    The brightest pixels between the inner lips of a clearly open mouth
    are teeth; painting with their colour keeps the new mouth consistent
    with the footage. None when the mouth is not open enough to tell.
    """
    xy = np.asarray(landmarks, np.float64)[:, :2]
    gap = np.linalg.norm(xy[LIP_GAP[0]] - xy[LIP_GAP[1]])
    width = np.linalg.norm(xy[LIP_INNER_WIDTH[0]] - xy[LIP_INNER_WIDTH[1]])
    if width <= 4 or gap < min_ratio * width:
        return None
    poly = xy[list(LIPS_INNER)]
    x0, y0 = np.floor(poly.min(axis=0)).astype(int)
    x1, y1 = np.ceil(poly.max(axis=0)).astype(int) + 1
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, rgb.shape[1]), min(y1, rgb.shape[0])
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(inside, [np.rint(poly - [x0, y0]).astype(np.int32)], 1)
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8))
    pixels = rgb[y0:y1, x0:x1][inside > 0].astype(np.float32)
    if len(pixels) < 12:
        return None
    luma = pixels @ _LUMA
    bright = pixels[luma >= np.percentile(luma, 85)].mean(axis=0)
    if (bright.max() - bright.min()) > 0.5 * bright.max():
        return None  # saturated: tongue or lip, not teeth
    return bright


def paint_cavity(region: np.ndarray, warp: Warp, lip: np.ndarray, teeth: np.ndarray, scale: float,
                 half_width: float) -> None:
    """Draw the new inner mouth into `region` (the warped box, uint8 RGB, edited in place)."""
    ys, xs = np.nonzero(warp.cavity > 0)
    if len(ys) == 0:
        return
    sigma = max(0.5, SOFTNESS * scale)
    pad = int(np.ceil(3 * sigma)) + 1
    h, w = region.shape[:2]
    y0, y1 = max(int(ys.min()) - pad, 0), min(int(ys.max()) + pad + 1, h)
    x0, x1 = max(int(xs.min()) - pad, 0), min(int(xs.max()) + pad + 1, w)
    window = (slice(y0, y1), slice(x0, x1))
    sizes = (TEETH_FROM * scale, TEETH_FULL * scale, TEETH_HEIGHT * scale, half_width)
    colour, alpha = _paint(warp.cavity[window], warp.depth[window], warp.across[window], warp.gap[window],
                           warp.stretch[window], lip.astype(np.float32), teeth.astype(np.float32), sizes)
    colour = cv2.GaussianBlur(colour, (0, 0), sigma)
    alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
    patch = region[window].astype(np.float32)
    patch = patch * (1.0 - alpha[..., None]) + colour
    region[window] = np.clip(np.rint(patch), 0, 255).astype(np.uint8)


def _paint(cavity: np.ndarray, depth: np.ndarray, across: np.ndarray, gap: np.ndarray, stretch: np.ndarray,
           lip: np.ndarray, teeth: np.ndarray, sizes: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Premultiplied colour (h, w, 3) and coverage (h, w) of the inner mouth per pixel of the layers."""
    teeth_from, teeth_full, teeth_height, half = sizes
    # where the original mouth was open about as wide, its own inside (real teeth) stays
    cover = np.maximum(cavity * np.clip((stretch - KEEP_STRETCH) * (1.0 / KEEP_RAMP), 0.0, 1.0), 0.0)
    d, a, g = depth, across, gap
    a2 = a * a
    # shade: lip-coloured near the rims of a narrow opening, dark deep inside a wide one
    rim = np.minimum(np.minimum(d, 1.0 - d) * g * (1.0 / (0.6 * teeth_from)), 1.0)
    shade = 0.5 - 0.26 * rim - 0.1 * a2
    show = np.clip((g - teeth_from) * (1.0 / (teeth_full - teeth_from)), 0.0, 1.0)  # how wide: 0 .. 1
    # the tongue rises into view at the bottom of a wide opening
    red = np.clip((d - 0.6) * (1.0 / 0.4), 0.0, 1.0) * show * 0.3
    # upper teeth: a band hanging from the upper lip, curving up towards the corners
    band = np.minimum(teeth_height * (1.0 - 0.5 * a2), 0.4 * g) * show
    y = d * g  # px below the upper inner lip
    tooth = np.clip(band + 0.5 - y, 0.0, 1.0) * (0.4 + 0.6 * show)
    tooth[g <= teeth_from] = 0.0
    light = (1.0 - 0.65 * a2) * (0.7 + 0.3 * np.minimum(y / np.maximum(0.3 * band, 1.0), 1.0))  # the lip's shadow
    for edge in INCISOR_EDGES:
        light[np.abs(a - edge) * half < 0.5] *= 0.88
    cavity_colour = np.stack([shade + red, shade + 0.4 * red, shade + 0.4 * red], axis=-1) * lip
    colour = cavity_colour * (1.0 - tooth)[..., None] + (light * tooth)[..., None] * teeth
    return (colour * cover[..., None]).astype(np.float32), cover.astype(np.float32)
