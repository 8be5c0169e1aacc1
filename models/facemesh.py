"""FaceMesh 468-point face landmarks on the embedded TFLite model.

Model: `face_landmark.tflite` from the MediaPipe 0.10.21 wheel (Google,
Apache-2.0; see assets/LICENSE-mediapipe.txt). The ROI geometry, crop warp
and unprojection below are an independent implementation of the conventions
the model was trained with; it runs on `ai_edge_litert` without MediaPipe.

Contract:
  input   an RGB uint8 frame (H, W, 3) and a region: a BlazeFace
          `Detection`, the previous frame's `Landmarks` (tracking without a
          detector), or an explicit `FaceRoi`;
  output  `Landmarks`: (468, 3) points, x/y in frame pixels (OpenCV
          convention), z relative depth in the same pixel scale (smaller =
          closer to the camera); presence = sigmoid of the face-flag logit,
          low when the crop holds no face ("tracking lost").

Model tensors (checked with the interpreter): input (1,192,192,3) float32
RGB in [0, 1], the face crop upright (eyes horizontal); outputs (1,1,1,1404)
= 468 x (x, y, z) in crop pixels, and (1,1,1,1) face-flag logit.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Union

import cv2
import numpy as np

from .blazeface import open_asset_interpreter, sigmoid
from .face_types import Detection, Landmarks

log = logging.getLogger(__name__)

NUM_LANDMARKS = 468
INPUT_SIZE = 192

# Lip contours, each a closed loop starting at the right mouth corner (image left).
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
LIP_CORNERS = (61, 291)
LIP_GAP = (13, 14)  # upper / lower inner lip at the midline: mouth opening
LIP_INNER_WIDTH = (78, 308)
LIPS = tuple(sorted(set(LIPS_OUTER) | set(LIPS_INNER)))
# "Right" is the subject's right, i.e. the left side of the image.
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_INNER, LEFT_EYE_OUTER = 362, 263
EYE_CORNERS = (RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER)

# Context around the face box that the model was trained with.
ROI_SCALE = 1.5
# BlazeFace eye distance is ~0.45 box widths on frontal faces, ~0.3 at 45 deg yaw.
_MIN_EYE_DISTANCE = 0.25
# Crops shrinking the frame more than this are low-passed first (see _prefilter).
_PREFILTER_MIN_SHRINK = 1.5


# ----------------------------------------------------------------- pure math


@dataclass(frozen=True)
class FaceRoi:
    """Square, rotated crop region in frame pixels.

    (cx, cy) is the centre, `size` the side, `angle` (radians) the direction
    of the crop's x axis in the image (y down): the eye line, so the crop
    shows the face upright.
    """

    cx: float
    cy: float
    size: float
    angle: float

    def crop_to_frame(self, out_size: int = INPUT_SIZE) -> np.ndarray:
        """2x3 matrix from crop pixel centres (OpenCV convention) to frame pixels."""
        k = self.size / out_size
        c, s = k * math.cos(self.angle), k * math.sin(self.angle)
        rot = np.array([[c, -s], [s, c]])
        t = np.array([self.cx, self.cy]) + rot @ np.full(2, 0.5 - out_size / 2)
        return np.hstack([rot, t[:, None]])

    def to_crop(self, xy: np.ndarray, out_size: int = INPUT_SIZE) -> np.ndarray:
        """Frame pixels (N, 2+) -> crop pixel centres (N, 2): the inverse of `crop_to_frame`."""
        inverse = cv2.invertAffineTransform(self.crop_to_frame(out_size))
        return np.asarray(xy, np.float64)[:, :2] @ inverse[:, :2].T + inverse[:, 2]

    def corners(self) -> np.ndarray:
        """(4, 2) frame coordinates of the crop's corners."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        half = 0.5 * self.size
        local = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
        return local @ np.array([[c, s], [-s, c]]) + [self.cx, self.cy]


def eye_angle(right_eye: np.ndarray, left_eye: np.ndarray) -> float:
    """Roll of the face: angle of the vector from the subject's right eye
    (image left) to the left eye."""
    d = np.asarray(left_eye, np.float64) - np.asarray(right_eye, np.float64)
    return math.atan2(d[1], d[0])


def roi_from_detection(det: Detection, scale: float = ROI_SCALE) -> FaceRoi:
    """Crop around a BlazeFace box, rolled by its eye keypoints (0, 1).

    Eyes closer than a quarter of the box width are not trusted: on faces
    at the low end of the full-range model (~10 px in its input) the eye
    keypoints can collapse onto each other and give a random roll, which
    makes FaceMesh miss the face. The crop is then left upright.
    """
    angle = 0.0
    if len(det.keypoints) >= 2:
        eyes = det.keypoints[1] - det.keypoints[0]
        if np.hypot(*eyes) >= _MIN_EYE_DISTANCE * det.width:
            angle = eye_angle(det.keypoints[0], det.keypoints[1])
        else:
            log.debug("eye keypoints %.1f px apart on a %.0f px box: upright crop", np.hypot(*eyes), det.width)
    cx, cy = det.center
    return FaceRoi(cx, cy, scale * max(det.width, det.height), angle)


def roi_from_points(xy: np.ndarray, scale: float = ROI_SCALE) -> FaceRoi:
    """Crop around previous FaceMesh points, rolled by the outer eye corners.

    The box is taken in the rolled frame rather than axis-aligned, so the
    crop size does not breathe when the head rolls.
    """
    xy = np.asarray(xy, np.float64)[:, :2]
    angle = eye_angle(xy[RIGHT_EYE_OUTER], xy[LEFT_EYE_OUTER])
    c, s = math.cos(angle), math.sin(angle)
    to_local = np.array([[c, s], [-s, c]])
    local = xy @ to_local.T
    lo, hi = local.min(axis=0), local.max(axis=0)
    centre = to_local.T @ (0.5 * (lo + hi))
    return FaceRoi(float(centre[0]), float(centre[1]), scale * float(max(hi - lo)), angle)


def unproject(crop_points: np.ndarray, roi: FaceRoi, out_size: int = INPUT_SIZE) -> np.ndarray:
    """Model output (N, 3) in crop pixels -> (N, 3) in frame pixels.

    Model x/y are continuous crop coordinates (pixel edges on integers),
    hence the half-pixel shift before applying the pixel-centre matrix.
    """
    m = roi.crop_to_frame(out_size)
    xy = (crop_points[:, :2] - 0.5) @ m[:, :2].T + m[:, 2]
    z = crop_points[:, 2:3] * (roi.size / out_size)
    return np.hstack([xy, z])


def warp_crop(frame: np.ndarray, roi: FaceRoi, out_size: int = INPUT_SIZE) -> np.ndarray:
    """Upright out_size x out_size crop of `roi`.

    Outside the frame the edge pixels are repeated: on a face cut by the
    frame border this keeps landmarks near the edge closer to the truth
    (measured on the synthetic clip) than black fill does.
    """
    return _warp_plane(frame, roi.crop_to_frame(out_size), roi.corners(), out_size, roi.size / out_size)


# crop chroma sample k sits at crop pixel 2k + 0.5; frame pixel x at chroma sample (x - 0.5) / 2
_CHROMA_TO_CROP = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])
_FRAME_TO_CHROMA = np.array([[0.5, 0.0, -0.25], [0.0, 0.5, -0.25]])


def warp_crop_i420(planes: tuple[np.ndarray, np.ndarray, np.ndarray], roi: FaceRoi,
                   out_size: int = INPUT_SIZE) -> np.ndarray:
    """The crop of `warp_crop` made from a 4:2:0 picture's Y, U, V planes.

    Each plane is resampled at its own resolution (chroma to half the crop
    size, as 4:2:0 stores it) and only the small crop is converted to RGB,
    with the same converter as `Frame.rgb`, instead of converting and
    low-passing the whole face region in RGB first.
    """
    luma, blue, red = planes
    c2f = roi.crop_to_frame(out_size)
    shrink = roi.size / out_size
    corners = roi.corners()
    half = out_size // 2
    c2c = _FRAME_TO_CHROMA @ np.vstack([c2f, [0.0, 0.0, 1.0]]) @ _CHROMA_TO_CROP
    chroma_corners = 0.5 * corners - 0.25
    packed = np.empty((out_size * 3 // 2, out_size), np.uint8)
    packed[:out_size] = _warp_plane(luma, c2f, corners, out_size, shrink)
    rest = packed[out_size:].reshape(2, half, half)
    rest[0] = _warp_plane(blue, c2c, chroma_corners, half, shrink)
    rest[1] = _warp_plane(red, c2c, chroma_corners, half, shrink)
    return cv2.cvtColor(packed, cv2.COLOR_YUV2RGB_I420)


def _warp_plane(image: np.ndarray, c2p: np.ndarray, corners: np.ndarray, out_size: int, shrink: float) -> np.ndarray:
    """Resample `image` through `c2p` (crop pixel -> image pixel) to out_size^2, low-passed first if it shrinks."""
    if shrink > _PREFILTER_MIN_SHRINK:
        image, c2p = _prefilter(image, corners, c2p, shrink)
    return cv2.warpAffine(image, c2p, (out_size, out_size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _prefilter(image: np.ndarray, corners: np.ndarray, c2p: np.ndarray, shrink: float) -> tuple[np.ndarray, np.ndarray]:
    """Low-pass the region inside `corners` (image pixels) before a shrinking warp.

    A bare bilinear warp of a large face aliases fine texture (skin, hair)
    and doubles lip-landmark jitter on HD footage (measured with a textured
    synthetic face at 3-5x the clip scale). Large shrinks first average
    whole pixel blocks aligned to the image grid (cheap, and the result does
    not shift as the ROI moves); a Gaussian then removes the rest. Returns
    the filtered region and the crop->region matrix.
    """
    h, w = image.shape[:2]
    block = max(int(shrink), 1)
    x0, y0 = np.maximum(np.floor(corners.min(axis=0) / block).astype(int) - 2, 0) * block
    x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 2 * block, [w, h])
    bw, bh = (x1 - x0) // block, (y1 - y0) // block
    if bw < 2 or bh < 2:
        return image, c2p
    region = image[y0:y0 + bh * block, x0:x0 + bw * block]
    if block > 1:
        region = cv2.resize(region, (bw, bh), interpolation=cv2.INTER_AREA)
    rest = shrink / block
    if rest > 1.0:
        region = cv2.GaussianBlur(region, (0, 0), 0.5 * math.sqrt(rest * rest - 1.0))
    # image pixel centre x maps to block coordinate (x - x0 + 0.5) / block - 0.5
    to_region = np.array([[1.0 / block, 0.0, (0.5 - x0) / block - 0.5],
                          [0.0, 1.0 / block, (0.5 - y0) / block - 0.5]])
    return region, to_region @ np.vstack([c2p, [0.0, 0.0, 1.0]])


# ----------------------------------------------------------- interpreter I/O

RoiLike = Union[Detection, Landmarks, FaceRoi]


class FaceMesh:
    """MediaPipe FaceMesh (468 points) implementing `LandmarkModel`.

    Tracking: feed each frame's result back as the next frame's `roi` and
    re-detect when `presence` drops (below ~0.5). One instance holds one
    interpreter: do not share it between threads.
    """

    def __init__(self, num_threads: int = 1, roi_scale: float = ROI_SCALE) -> None:
        self.roi_scale = roi_scale
        self._interp = open_asset_interpreter("face_landmark.tflite", num_threads)
        (inp,) = self._interp.get_input_details()
        if tuple(inp["shape"]) != (1, INPUT_SIZE, INPUT_SIZE, 3):
            raise RuntimeError(f"face_landmark.tflite: unexpected input shape {inp['shape']}")
        self._input_index = inp["index"]
        outs = {int(np.prod(d["shape"])): d["index"] for d in self._interp.get_output_details()}
        self._points_index = outs[3 * NUM_LANDMARKS]
        self._flag_index = outs[1]

    def roi(self, region: RoiLike) -> FaceRoi:
        """The crop FaceMesh would use for a detection / previous landmarks."""
        if isinstance(region, FaceRoi):
            return region
        if isinstance(region, Detection):
            return roi_from_detection(region, self.roi_scale)
        if isinstance(region, Landmarks):
            return roi_from_points(region.xy, self.roi_scale)
        raise TypeError(f"unsupported ROI type {type(region).__name__}")

    def landmarks(self, frame: np.ndarray, roi: RoiLike) -> Landmarks:
        """468 landmarks of the face in `roi` (see module docstring)."""
        return self.run(frame, self.roi(roi))

    def run(self, frame: np.ndarray, roi: FaceRoi) -> Landmarks:
        """Landmarks for an explicit crop, e.g. one smoothed by a tracker."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}")
        if not roi.size > 1.0:
            return Landmarks(np.zeros((NUM_LANDMARKS, 3)), 0.0)
        return self.infer(warp_crop(frame, roi), roi)

    def infer(self, crop: np.ndarray, roi: FaceRoi) -> Landmarks:
        """Landmarks from a crop already made for `roi` (`warp_crop` or `warp_crop_i420`), in frame pixels."""
        if crop.shape != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"expected a {INPUT_SIZE}x{INPUT_SIZE} RGB crop, got {crop.shape}")
        self._interp.set_tensor(self._input_index, (crop.astype(np.float32) * (1.0 / 255.0))[None])
        self._interp.invoke()
        raw = self._interp.get_tensor(self._points_index).reshape(NUM_LANDMARKS, 3)
        flag = float(self._interp.get_tensor(self._flag_index).reshape(()))
        return Landmarks(unproject(raw.astype(np.float64), roi), float(sigmoid(flag)))
