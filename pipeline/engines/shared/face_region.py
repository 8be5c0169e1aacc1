"""Where an engine may edit a face: the one usable-face rule, the face box, the lower-face mask.

Every engine edits inside the tracked crop only, and only faces the face
stage trusts; these helpers are that contract, shared so the engines agree
on it.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from lipstream.stream.frames import Face, Frame

__all__ = ["FACE_OVAL", "LOWER_FACE", "Box", "editable", "face_box", "lower_face_mask", "mesh_five_points", "outline_mask", "trusted"]

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels, end exclusive

EYE_IMAGE_LEFT = (33, 133)  # the subject's right eye: outer, inner corner
EYE_IMAGE_RIGHT = (362, 263)  # the subject's left eye: inner, outer corner
NOSE_TIP = 1
MOUTH_CORNERS = (61, 291)  # image left, image right
_MIN_SIDE = 8  # boxes narrower than this (px) carry no usable mouth

# FaceMesh points around the region pasted back: the face contour from the
# image-left cheek at nostril height (93) through the chin (152) to the
# image-right one (323), then back along the cheeks and the base of the nose
# (425, 327, 2, 98, 205), so the eyes and the nose tip stay the original's.
LOWER_FACE = (
    93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323,
    425, 327, 2, 98, 205,
)

# FaceMesh's face outline, forehead to chin (what ParseNet calls the face, without hair or ears).
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
    148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)


def mesh_five_points(landmarks: np.ndarray) -> np.ndarray:
    """FaceMesh (468, 2+) -> (5, 2): image-left eye, image-right eye, nose tip, left and right mouth corner."""
    xy = np.asarray(landmarks, dtype=np.float64)[:, :2]
    return np.stack(
        [
            xy[list(EYE_IMAGE_LEFT)].mean(axis=0),
            xy[list(EYE_IMAGE_RIGHT)].mean(axis=0),
            xy[NOSE_TIP],
            xy[MOUTH_CORNERS[0]],
            xy[MOUTH_CORNERS[1]],
        ]
    )


def trusted(face: Face | None) -> bool:
    """A face whose landmarks can place an edit: present, with landmarks, not flagged small."""
    return face is not None and face.landmarks is not None and not face.small


def editable(face: Face | None) -> bool:
    """A trusted face that is to be changed at all (its fade weight is above 0)."""
    return trusted(face) and face.weight > 0  # type: ignore[union-attr]


def face_box(
    frames: Sequence[Frame], k: int, *, pads: tuple[float, float, float, float], smooth: int = 5
) -> Box | None:
    """The integer box (x0, y0, x1, y1) cut for `frames[k]`, inside its face crop.

    `pads` (top, bottom, left, right) grow the landmark box by fractions of
    its height (top, bottom) and width (left, right). The landmark boxes of
    up to `smooth` frames centred on k are
    averaged, going no further than the first frame without a face on
    either side (a new track must not borrow boxes from the old one), then
    padded and clamped to the crop. None when too small to use.
    """
    face = frames[k].face
    assert face is not None
    reach = smooth // 2
    boxes = [np.asarray(face.box, np.float64)]
    for step in (-1, 1):
        j = k + step
        while abs(j - k) <= reach and 0 <= j < len(frames) and frames[j].face is not None:
            boxes.append(np.asarray(frames[j].face.box, np.float64))  # type: ignore[union-attr]
            j += step
    x0, y0, x1, y1 = np.mean(boxes, axis=0)
    top, bottom, left, right = pads
    h, w = y1 - y0, x1 - x0
    x0, x1, y0, y1 = x0 - left * w, x1 + right * w, y0 - top * h, y1 + bottom * h
    cx0, cy0, cx1, cy1 = face.crop
    box = (
        max(int(np.floor(x0)), cx0),
        max(int(np.floor(y0)), cy0),
        min(int(np.ceil(x1)), cx1),
        min(int(np.ceil(y1)), cy1),
    )
    if box[2] - box[0] < _MIN_SIDE or box[3] - box[1] < _MIN_SIDE:
        return None
    return box


def lower_face_mask(landmarks: np.ndarray, box: Box, feather: float) -> np.ndarray:
    """Float32 (h, w) weights 0..1 over `box`: the jaw region, feathered, zero on the box border."""
    return outline_mask(landmarks, box, feather, LOWER_FACE)


def outline_mask(landmarks: np.ndarray, box: Box, feather: float, outline: Sequence[int]) -> np.ndarray:
    """Float32 (h, w) weights 0..1 over `box`: inside the polygon of the `outline` points, feathered
    by `feather` box heights, zero on the box border."""
    x0, y0, x1, y1 = box
    h, w = y1 - y0, x1 - x0
    scale = 4  # sub-pixel polygon edges (fillPoly fixed-point shift)
    polygon = np.round((np.asarray(landmarks)[list(outline), :2] - (x0, y0)) * (1 << scale)).astype(np.int32)
    canvas = np.zeros((h, w), np.uint8)
    cv2.fillPoly(canvas, [polygon], 255, lineType=cv2.LINE_AA, shift=scale)
    mask = canvas.astype(np.float32) / 255.0
    sigma = max(feather * h, 0.5)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    # Fall to zero at the box border so the edge of the generated square never shows.
    ramp = max(sigma, 1.0)
    rows = np.clip(np.minimum(np.arange(h) + 0.5, h - 0.5 - np.arange(h)) / ramp, 0.0, 1.0)
    cols = np.clip(np.minimum(np.arange(w) + 0.5, w - 0.5 - np.arange(w)) / ramp, 0.0, 1.0)
    return (mask * rows[:, None].astype(np.float32) * cols[None, :].astype(np.float32)).astype(np.float32)
