"""Pure helpers around the face3d coefficients: layout, D-Net driving windows, 5-point alignment.

Layouts (as used by OpenTalker/video-retalking ``inference.py`` and
``utils/inference_utils.py``; re-implemented, not copied)

Face3d output, 257 per frame (`split_coeffs`):
    0:80 identity | 80:144 expression | 144:224 texture | 224:227 angles (pitch, yaw,
    roll in radians) | 227:254 gamma (9 SH bands x 3 colours) | 254:257 translation
    (tx, ty, tz).

Per-frame "semantic" row, 262 (`semantic_row`): the 257 coefficients followed by the 5
alignment numbers of `face3d_alignment` at 257:262 =
    (raw W, raw H, s, tx, ty) with s = 102 / POS scale (the resize factor of the frame).

D-Net driving window, float32 (73, 26) (`driving_window`): column j is frame
``index - 13 + j`` (j = 0..25, clamped to the video, so 13 frames back and 12 ahead;
the current frame is column 13), rows
    0:64  expression   = semantic 80:144, but upstream overwrites it with the template
                         expression (``expression.mat`` ``expression_center`` by default)
                         in every column, so only pose/placement drive D-Net;
    64:67 angles       = semantic 224:227;
    67:70 translation  = semantic 254:257;
    70    crop scale   = semantic 259 x crop_norm_ratio (see `crop_norm_ratio`);
    71:73 crop tx, ty  = semantic 260:262.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import numpy as np
import torch

__all__ = [
    "ALIGN",
    "ANGLE",
    "COEFF_DIM",
    "CROP",
    "DRIVING_ROWS",
    "EXP",
    "Face3dAlignment",
    "Face3dCoeffs",
    "GAMMA",
    "ID",
    "SEMANTIC_DIM",
    "TEX",
    "TRANS",
    "WINDOW_LEN",
    "WINDOW_RADIUS",
    "crop_norm_ratio",
    "driving_window",
    "face3d_alignment",
    "five_points",
    "pos_fit",
    "semantic_row",
    "split_coeffs",
    "window_indices",
]

COEFF_DIM = 257
SEMANTIC_DIM = 262
ID = slice(0, 80)
EXP = slice(80, 144)
TEX = slice(144, 224)
ANGLE = slice(224, 227)
GAMMA = slice(227, 254)
TRANS = slice(254, 257)
ALIGN = slice(257, 262)
CROP = slice(259, 262)  # scale, tx, ty: the last three alignment numbers
_SCALE = 259

DRIVING_ROWS = 73
WINDOW_RADIUS = 13
WINDOW_LEN = 2 * WINDOW_RADIUS

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


class Face3dCoeffs(NamedTuple):
    """Views (no copies) of the 257 coefficients, sliced along the last axis."""

    id: np.ndarray | torch.Tensor
    exp: np.ndarray | torch.Tensor
    tex: np.ndarray | torch.Tensor
    angle: np.ndarray | torch.Tensor
    gamma: np.ndarray | torch.Tensor
    trans: np.ndarray | torch.Tensor


def split_coeffs(coeffs: ArrayT) -> Face3dCoeffs:
    """Split (..., 257) or (..., 262) coefficients into their named groups (numpy or torch)."""
    if coeffs.shape[-1] not in (COEFF_DIM, SEMANTIC_DIM):
        raise ValueError(f"expected 257 or 262 values on the last axis, got {tuple(coeffs.shape)}")
    return Face3dCoeffs(*(coeffs[..., part] for part in (ID, EXP, TEX, ANGLE, GAMMA, TRANS)))


def semantic_row(coeffs: np.ndarray, align_params: np.ndarray) -> np.ndarray:
    """Append the 5 alignment numbers to the 257 coefficients -> float32 (..., 262)."""
    coeffs = np.asarray(coeffs, dtype=np.float32)
    align_params = np.asarray(align_params, dtype=np.float32)
    if coeffs.shape[-1] != COEFF_DIM or align_params.shape[-1] != 5:
        raise ValueError(f"expected (..., 257) and (..., 5), got {coeffs.shape} and {align_params.shape}")
    return np.concatenate([coeffs, np.broadcast_to(align_params, coeffs.shape[:-1] + (5,))], axis=-1)


def window_indices(index: int, num_frames: int, radius: int = WINDOW_RADIUS) -> list[int]:
    """Frames feeding D-Net for frame `index`: index-radius .. index+radius-1, clamped.

    The window is asymmetric (13 back, 12 ahead), so a streaming engine needs 12
    frames of look-ahead; at the ends the first/last frame is repeated.
    """
    if num_frames <= 0:
        raise ValueError("num_frames must be positive")
    return [min(max(i, 0), num_frames - 1) for i in range(index - radius, index + radius)]


def crop_norm_ratio(source: np.ndarray, candidates: np.ndarray, alpha: float = 0.3) -> float:
    """Scale correction for row 70: source scale / scale of the candidate most like the source.

    "Most like" minimises ``alpha * mean|d expression| + (1 - alpha) * mean|d angles|``
    over `candidates` (N, 262). Upstream searches the whole video, which contains the
    source frame itself (distance 0), so the ratio is exactly 1 unless an earlier frame
    has identical expression and angles; a streaming engine may pass 1.0. Computed in
    float32 like the original, whose semantic rows are float32.
    """
    source = np.asarray(source, dtype=np.float32).reshape(SEMANTIC_DIM)
    candidates = np.asarray(candidates, dtype=np.float32).reshape(-1, SEMANTIC_DIM)
    exp_diff = np.mean(np.abs(candidates[:, EXP] - source[EXP]), axis=1)
    angle_diff = np.mean(np.abs(candidates[:, ANGLE] - source[ANGLE]), axis=1)
    best = int(np.argmin(alpha * exp_diff + (1 - alpha) * angle_diff))
    return float(source[_SCALE] / candidates[best, _SCALE])


def driving_window(
    rows: np.ndarray,
    expression: np.ndarray | None = None,
    crop_ratio: float | None = None,
) -> np.ndarray:
    """Build the (73, T) D-Net driving window from T semantic rows (T, 262) in time order.

    `rows` are usually ``semantics[window_indices(i, n)]``. `expression` (>= 64 values,
    first 64 used) replaces the expression rows in every column, as upstream does with
    its neutral/smile template; None keeps each frame's own expression. `crop_ratio`
    (from `crop_norm_ratio`) multiplies the crop scale row; upstream always applies it.
    Returns float32; add a batch axis for D-Net.
    """
    rows = np.asarray(rows, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != SEMANTIC_DIM:
        raise ValueError(f"expected (T, 262) semantic rows, got {rows.shape}")
    crop = rows[:, CROP].copy()
    if crop_ratio is not None:
        crop[:, 0] *= np.float32(crop_ratio)
    window = np.concatenate([rows[:, EXP], rows[:, ANGLE], rows[:, TRANS], crop], axis=1).T
    if expression is not None:
        template = np.asarray(expression, dtype=np.float32).reshape(-1)
        if template.size < 64:
            raise ValueError(f"expression template needs at least 64 values, got {template.size}")
        window[:64, :] = template[:64, None]
    return np.ascontiguousarray(window)


# --- Deep3DFaceRecon 5-point alignment (needs the BFM template, passed in) ---

_NOSE = 30  # 0-based index of landmark 31


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """68 landmarks (68, D) -> 5 points (5, D): left eye, right eye, nose tip, left/right mouth corner.

    Eye points are the means of the outer/inner corners (1-based 37/40 and 43/46),
    nose tip 31, mouth corners 49/55. Applied to similarity_Lm3D_all.mat ``lm``
    (68, 3) it yields the BFM template; applied to image landmarks it yields the
    points that are fitted to it.
    """
    lm = np.asarray(landmarks68, dtype=np.float64)
    if lm.shape[0] != 68:
        raise ValueError(f"expected 68 landmarks, got {lm.shape}")
    return np.stack(
        [
            lm[[36, 39]].mean(axis=0),
            lm[[42, 45]].mean(axis=0),
            lm[_NOSE],
            lm[48],
            lm[54],
        ]
    )


def pos_fit(points2d: np.ndarray, template3d: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares affine camera from the 3-D template to 2-D points -> (translation (2,), scale).

    Solves ``[x, y] = [r1 . X + tx, r2 . X + ty]`` for the 8 unknowns and reports the
    mean norm of r1, r2 as the scale. Points use a y-up frame (image y flipped).
    """
    xp = np.asarray(points2d, dtype=np.float64).reshape(-1, 2)
    x3 = np.asarray(template3d, dtype=np.float64).reshape(-1, 3)
    n = xp.shape[0]
    system = np.zeros((2 * n, 8))
    system[0::2, 0:3] = x3
    system[0::2, 3] = 1
    system[1::2, 4:7] = x3
    system[1::2, 7] = 1
    k = np.linalg.lstsq(system, xp.reshape(-1), rcond=None)[0]
    scale = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2
    return np.array([k[3], k[7]]), float(scale)


@dataclass(frozen=True)
class Face3dAlignment:
    """Where to cut the face3d input from a frame, and the 5 numbers stored at semantic 257:262.

    To build the input: resize the whole frame to `resized` (w, h) with **PIL-style
    bicubic**, then take the `box` (left, top, right, bottom), 224x224, padding with
    black where it leaves the image (PIL ``crop`` semantics), RGB, / 255.
    """

    params: np.ndarray  # float32 (5,): raw W, raw H, s, tx, ty
    resized: tuple[int, int]
    box: tuple[int, int, int, int]


def face3d_alignment(
    landmarks68: np.ndarray | None,
    width: int,
    height: int,
    template5: np.ndarray,
    target_size: int = 224,
    rescale: float = 102.0,
) -> Face3dAlignment:
    """Deep3DFaceRecon's align_img geometry for one frame of size `width` x `height`.

    `landmarks68`: (68, 2) image pixels (x right, y down; e.g. FAN on the 256 crop) or
    None when no face was found, in which case upstream aligns the template itself
    spread over the frame. `template5`: (5, 3) from `five_points` of the BFM
    ``similarity_Lm3D_all.mat`` ``lm``. Integer truncation (toward zero) is the original's.
    """
    template5 = np.asarray(template5, dtype=np.float64)
    if landmarks68 is None:
        unit = (template5[:, :2] + 1) / 2
        lm5 = unit * np.array([width, height], dtype=np.float64)
    else:
        lm = np.array(landmarks68, dtype=np.float64)
        lm[:, 1] = height - 1 - lm[:, 1]
        lm5 = five_points(lm)
    t, s = pos_fit(lm5, template5)
    s = rescale / s
    w = int(width * s)
    h = int(height * s)
    left = int(w / 2 - target_size / 2 + (t[0] - width / 2) * s)
    up = int(h / 2 - target_size / 2 + (height / 2 - t[1]) * s)
    params = np.array([width, height, s, t[0], t[1]], dtype=np.float32)
    return Face3dAlignment(params, (w, h), (left, up, left + target_size, up + target_size))
