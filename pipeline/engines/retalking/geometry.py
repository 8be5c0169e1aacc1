"""Where the retalking networks look: boxes, affine maps and the face3d alignment, from FaceMesh (pure).

Every map is a 2x3 affine from frame pixels (OpenCV convention: pixel
centres at integers) to the pixels of a network image, so a chain of crops
and resizes is one matrix and costs one resampling.

FaceMesh -> the five points of Deep3DFaceRecon
    The original aligns with 68-point FAN landmarks reduced to five points
    (`lipstream.models._face3d_coeffs.five_points`): the centres of the
    eyes as the mean of their outer and inner corners (68-point 37/40 and
    43/46, 1-based), the nose tip (31) and the mouth corners (49, 55). The
    same anatomical points in the FaceMesh 468 topology are the eye corners
    33/133 (image-left eye) and 362/263 (image-right eye), the nose tip 1
    and the mouth corners 61 (image left) and 291 (image right); the order
    is the template's (image-left eye first). FaceMesh puts the eye corners
    on the lid junctions as FAN does, so the eye centres agree to a pixel or
    two; the nose tip is the pronasale in both.

D-Net's crop
    The original cuts every frame with one FFHQ-style box found on the first
    frame (square around the eyes and mouth: side 2 max(2 d_eyes,
    1.8 d_eye-mouth), centred a tenth of the way from the eyes to the
    mouth) and resizes it to 256. `stabilise_box` applies the same rule per
    frame (as the axis-aligned box around the rotated square), averaged
    over neighbouring frames so the crop does not shake.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from lipstream.models._face3d_coeffs import pos_fit
from lipstream.stream.frames import Frame

from ..shared.face_region import mesh_five_points, trusted

Box = tuple[int, int, int, int]

STABLE = (33, 133, 362, 263, 168, 6, 197, 1)  # eye corners and nose ridge: speech does not move them

FACE3D_SIZE = 224
FACE3D_RESCALE = 102.0


def ffhq_square(landmarks: np.ndarray) -> np.ndarray:
    """(cx, cy, side) of the axis-aligned box around the FFHQ crop square of one face."""
    p = mesh_five_points(landmarks)
    eye_avg = (p[0] + p[1]) / 2
    eye_to_eye = p[1] - p[0]
    eye_to_mouth = (p[3] + p[4]) / 2 - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x /= max(float(np.hypot(*x)), 1e-9)
    half = max(float(np.hypot(*eye_to_eye)) * 2.0, float(np.hypot(*eye_to_mouth)) * 1.8)
    centre = eye_avg + 0.1 * eye_to_mouth
    return np.array([centre[0], centre[1], 2 * half * (abs(x[0]) + abs(x[1]))])


def stabilise_box(frames: Sequence[Frame], k: int, smooth: int = 5) -> Box:
    """Integer square box (may leave the frame) that D-Net sees for `frames[k]`.

    The FFHQ squares of the `smooth` frames centred on k are averaged,
    stopping at a frame without a usable face (a new track never borrows
    from the old one).
    """
    face = frames[k].face
    assert face is not None and face.landmarks is not None
    squares = [ffhq_square(face.landmarks)]
    for step in (-1, 1):
        j = k + step
        while abs(j - k) <= smooth // 2 and 0 <= j < len(frames) and trusted(frames[j].face):
            squares.append(ffhq_square(frames[j].face.landmarks))  # type: ignore[union-attr]
            j += step
    cx, cy, side = np.mean(squares, axis=0)
    side = max(int(round(side)), 8)
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    return x0, y0, x0 + side, y0 + side


def box_to_image(box: Box, size: int) -> np.ndarray:
    """Affine frame px -> px of the `box` resized to size x size (cv2.resize pixel-centre convention)."""
    x0, y0, x1, y1 = box
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    return np.array([[sx, 0.0, (0.5 - x0) * sx - 0.5], [0.0, sy, (0.5 - y0) * sy - 0.5]])


def then(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The affine applying `first`, then `second`."""
    a = np.vstack([first, [0.0, 0.0, 1.0]])
    b = np.vstack([second, [0.0, 0.0, 1.0]])
    return (b @ a)[:2]


def invert(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through an affine."""
    points = np.asarray(points, dtype=np.float64)[:, :2]
    return points @ matrix[:, :2].T + matrix[:, 2]


def cut(rgb: np.ndarray, box: Box, size: int) -> np.ndarray:
    """`box` of the frame resized to size x size; parts outside the frame repeat the edge pixels.

    Shrinking averages pixels (INTER_AREA) so a large face is not aliased;
    enlarging interpolates (INTER_LINEAR).
    """
    x0, y0, x1, y1 = box
    height, width = rgb.shape[:2]
    inside = rgb[max(y0, 0) : min(y1, height), max(x0, 0) : min(x1, width)]
    pad = (max(-y0, 0), max(y1 - height, 0), max(-x0, 0), max(x1 - width, 0))
    if inside.size == 0:
        region = np.zeros((y1 - y0, x1 - x0, 3), rgb.dtype)
    elif any(pad):
        region = cv2.copyMakeBorder(inside, *pad, borderType=cv2.BORDER_REPLICATE)
    else:
        region = inside
    shrink = (x1 - x0) > size and (y1 - y0) > size
    return cv2.resize(np.ascontiguousarray(region), (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation taking points `src` to `dst` (Umeyama)."""
    src = np.asarray(src, dtype=np.float64)[:, :2]
    dst = np.asarray(dst, dtype=np.float64)[:, :2]
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - ms, dst - md
    u, sing, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = float(np.trace(np.diag(sing) @ d) / max((a**2).sum() / len(src), 1e-12))
    linear = scale * rotation
    return np.hstack([linear, (md - linear @ ms)[:, None]])


def alignment_params(points5: np.ndarray, size: int, template5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deep3DFaceRecon's alignment of a size x size image from its five points.

    Returns (params, matrix): the five numbers stored at semantic 257:262
    (W, H, 102 / s, tx, ty; D-Net reads the last three) and the affine from
    image px to the 224x224 face3d input, i.e. resize by 102 / s then the
    224 crop, with the original's integer truncations (as
    `_face3d_coeffs.face3d_alignment`, which takes 68 points).
    """
    lm = np.array(points5, dtype=np.float64)
    lm[:, 1] = size - 1 - lm[:, 1]
    t, s = pos_fit(lm, template5)
    scale = FACE3D_RESCALE / s
    w, h = int(size * scale), int(size * scale)
    left = int(w / 2 - FACE3D_SIZE / 2 + (t[0] - size / 2) * scale)
    up = int(h / 2 - FACE3D_SIZE / 2 + (size / 2 - t[1]) * scale)
    params = np.array([size, size, scale, t[0], t[1]], dtype=np.float32)
    # PIL resize maps pixel centres: x' = (x + 0.5) * w / size - 0.5; then the crop shifts by (left, up).
    fx, fy = w / size, h / size
    matrix = np.array([[fx, 0.0, 0.5 * fx - 0.5 - left], [0.0, fy, 0.5 * fy - 0.5 - up]])
    return params, matrix
