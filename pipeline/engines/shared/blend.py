"""Paste an edited region back into a frame with a feathered mask through a Laplacian pyramid.

Blending band by band lets coarse differences (shading, colour) fade over
a wide band and fine ones (texture, edges) over a narrow one, so neither a
halo nor a seam shows. Only the difference `src - dst` is decomposed, which
halves the work, and the result is tapered to zero where the mask is zero:
every pixel outside the mask, and every pixel outside `box`, is exactly the
destination's.
"""

from __future__ import annotations

import cv2
import numpy as np

Box = tuple[int, int, int, int]

_MIN_SIDE = 8  # coarsest pyramid level keeps at least this many pixels per side
_MAX_LEVELS = 5
TAPER = 4.0  # the correction reaches full strength once the mask passes 1/TAPER


def pyramid_levels(height: int, width: int) -> int:
    """How many times a region can be halved before it gets too small to carry a band."""
    levels = 0
    side = min(height, width)
    while side >= 2 * _MIN_SIDE and levels < _MAX_LEVELS:
        side //= 2
        levels += 1
    return levels


def blend(dst: np.ndarray, src: np.ndarray, mask: np.ndarray, box: Box, *, levels: int | None = None,
          out: np.ndarray | None = None) -> np.ndarray:
    """`dst` with `src` blended in over `box` (x0, y0, x1, y1) where `mask` (0..1) says.

    Images are uint8; `src` and `mask` have the box's size. The result goes
    to `out` (a new array unless given; it may be `dst` itself to edit in
    place) and is returned.
    """
    x0, y0, x1, y1 = box
    h, w = y1 - y0, x1 - x0
    if src.shape[:2] != (h, w) or mask.shape[:2] != (h, w):
        raise ValueError(f"src {src.shape[:2]} and mask {mask.shape[:2]} must match the box size {(h, w)}")
    if x0 < 0 or y0 < 0 or x1 > dst.shape[1] or y1 > dst.shape[0]:
        raise ValueError(f"box {box} is outside the {dst.shape[1]}x{dst.shape[0]} frame")
    if dst.dtype != np.uint8 or src.dtype != np.uint8:
        raise ValueError(f"blend works on uint8 images, got {dst.dtype} and {src.dtype}")
    if out is None:
        out = dst.copy()
    elif out is not dst:
        np.copyto(out, dst)
    if h and w:
        out[y0:y1, x0:x1] = blend_region(dst[y0:y1, x0:x1], src, mask, levels=levels)
    return out


def blend_region(base: np.ndarray, src: np.ndarray, mask: np.ndarray, *, levels: int | None = None) -> np.ndarray:
    """The blended pixels of one region (`base`, `src`, `mask` all of its size), as a new array.

    Engines hand this to `Frame.with_patch`, so a frame is never copied whole.
    """
    mask = np.clip(mask, 0.0, 1.0).astype(np.float32, copy=False)
    if not mask.any():
        return base.copy()
    h, w = base.shape[:2]
    colour = base.ndim == 3
    diff = cv2.subtract(src, base, dtype=cv2.CV_32F)
    n = pyramid_levels(h, w) if levels is None else levels
    correction = _pyramid_blend(diff, mask, n, colour)
    taper = np.minimum(mask * TAPER, 1.0)
    correction = cv2.multiply(correction, _channels(taper, colour))
    return cv2.add(base, correction, dtype=cv2.CV_8U)


def _channels(mask: np.ndarray, colour: bool) -> np.ndarray:
    return cv2.merge([mask, mask, mask]) if colour else mask


def _pyramid_blend(diff: np.ndarray, mask: np.ndarray, levels: int, colour: bool) -> np.ndarray:
    """Collapse of (Laplacian band of `diff`) x (Gaussian level of `mask`) over all bands."""
    gauss = [diff]
    masks = [mask]
    for _ in range(levels):
        gauss.append(cv2.pyrDown(gauss[-1]))
        masks.append(cv2.pyrDown(masks[-1]))
    result = cv2.multiply(gauss[-1], _channels(masks[-1], colour))
    for level in range(levels - 1, -1, -1):
        size = (gauss[level].shape[1], gauss[level].shape[0])
        band = cv2.subtract(gauss[level], cv2.pyrUp(gauss[level + 1], dstsize=size))
        result = cv2.add(cv2.pyrUp(result, dstsize=size), cv2.multiply(band, _channels(masks[level], colour)))
    return result
