"""BlazeFace face detector (short- and full-range) on the embedded TFLite models.

Models: `face_detection_short_range.tflite` and
`face_detection_full_range_sparse.tflite` from the MediaPipe 0.10.21 wheel
(Google, Apache-2.0; see assets/LICENSE-mediapipe.txt). The pre- and
post-processing below is an independent implementation of the conventions
those models were trained with; it runs on `ai_edge_litert` without MediaPipe.

Contract:
  input   RGB uint8 frames (H, W, 3) of any size;
  output  per frame, a list of `Detection`s (best score first): box x0, y0,
          x1, y1 and 6 keypoints in frame pixels (OpenCV convention, pixel
          centres on integers), score in [0, 1]. Boxes are not clipped, so a
          face cut by the frame border keeps its full extent.

Model tensors (checked with the interpreter):
  short  input (1,128,128,3) float32 RGB in [-1, 1]; regressors (1,896,16),
         classificators (1,896,1) logits.
  full   input (1,192,192,3) float32 RGB in [-1, 1]; (1,2304,16), (1,2304,1).
The frame is letterboxed (aspect ratio kept, centred, black padding).
Each regressor row is: box centre dx, dy, width, height, then 6 keypoint
(x, y) pairs, all in input pixels relative to the anchor centre.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Iterator, Literal, Sequence

import cv2
import numpy as np

from .face_types import Detection

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter

log = logging.getLogger(__name__)

NUM_KEYPOINTS = 6


# ----------------------------------------------------------------- pure math


@dataclass(frozen=True)
class AnchorOptions:
    """SSD anchor layout of a BlazeFace model.

    Layers with equal stride share one feature map of ceil(input/stride)
    cells; each cell then carries one anchor per aspect ratio per layer,
    plus one "interpolated" anchor per layer when
    `interpolated_scale_aspect_ratio` > 0. With `fixed_anchor_size` every
    anchor has width = height = 1 (normalised), so min/max scale only
    matter when it is False.
    """

    input_size: int
    strides: tuple[int, ...]
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    anchor_offset: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True


# short range: 16x16 cells x 2 anchors + 8x8 cells x 6 anchors = 896.
SHORT_RANGE_ANCHORS = AnchorOptions(input_size=128, strides=(8, 16, 16, 16))
# full range: one 48x48 map, one anchor per cell = 2304.
FULL_RANGE_ANCHORS = AnchorOptions(input_size=192, strides=(4,), interpolated_scale_aspect_ratio=0.0)


def _layer_scale(opts: AnchorOptions, layer: int) -> float:
    n = len(opts.strides)
    if n == 1:
        return 0.5 * (opts.min_scale + opts.max_scale)
    return opts.min_scale + (opts.max_scale - opts.min_scale) * layer / (n - 1)


def generate_anchors(opts: AnchorOptions) -> np.ndarray:
    """Anchors as (A, 4) float32 rows cx, cy, w, h in normalised input units,
    ordered row-major over cells with a cell's anchors consecutive, which is
    the order of the model's output rows."""
    blocks = []
    n = len(opts.strides)
    layer = 0
    while layer < n:
        stride = opts.strides[layer]
        sizes: list[tuple[float, float]] = []
        while layer < n and opts.strides[layer] == stride:
            scale = _layer_scale(opts, layer)
            for ar in opts.aspect_ratios:
                sizes.append((scale * math.sqrt(ar), scale / math.sqrt(ar)))
            if opts.interpolated_scale_aspect_ratio > 0:
                nxt = 1.0 if layer == n - 1 else _layer_scale(opts, layer + 1)
                mid = math.sqrt(scale * nxt)
                ar = opts.interpolated_scale_aspect_ratio
                sizes.append((mid * math.sqrt(ar), mid / math.sqrt(ar)))
            layer += 1
        cells = math.ceil(opts.input_size / stride)
        centres = (np.arange(cells) + opts.anchor_offset) / cells
        cy, cx = np.meshgrid(centres, centres, indexing="ij")
        wh = np.ones((len(sizes), 2)) if opts.fixed_anchor_size else np.array(sizes)
        block = np.empty((cells, cells, len(sizes), 4))
        block[..., 0] = cx[..., None]
        block[..., 1] = cy[..., None]
        block[..., 2:] = wh
        blocks.append(block.reshape(-1, 4))
    return np.concatenate(blocks).astype(np.float32)


def sigmoid(logits: np.ndarray, clip: float = 100.0) -> np.ndarray:
    """Scores from logits; clipping keeps exp() finite on extreme values."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logits, np.float64), -clip, clip)))


def decode_boxes(raw: np.ndarray, anchors: np.ndarray, input_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Regressor rows (A, 4 + 2K) -> boxes (A, 4) x0, y0, x1, y1 and
    keypoints (A, K, 2), both normalised to the square model input."""
    a_c, a_wh = anchors[:, None, :2], anchors[:, None, 2:]
    raw = raw.reshape(raw.shape[0], -1, 2) / input_size
    centre = raw[:, 0] * a_wh[:, 0] + a_c[:, 0]
    half = 0.5 * raw[:, 1] * a_wh[:, 0]
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 2:] * a_wh + a_c
    return boxes, keypoints


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box against (N, 4) boxes."""
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, iou_threshold: float
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """Blend each cluster of overlapping candidates into one detection.

    BlazeFace fires on many neighbouring anchors; averaging their boxes and
    keypoints weighted by score is steadier over time than keeping only the
    best one. The cluster keeps its best score. Returns (box, score,
    keypoints) best first.
    """
    remaining = np.argsort(-scores, kind="stable")
    out = []
    while remaining.size:
        overlap = iou(boxes[remaining[0]], boxes[remaining]) > iou_threshold
        overlap[0] = True
        group = remaining[overlap]
        w = scores[group] / scores[group].sum()
        box = (boxes[group] * w[:, None]).sum(axis=0)
        kps = (keypoints[group] * w[:, None, None]).sum(axis=0)
        out.append((box, float(scores[remaining[0]]), kps))
        remaining = remaining[~overlap]
    return out


@dataclass(frozen=True)
class Letterbox:
    """Placement of a W x H frame inside the square model input: resized to
    `resized` (w, h) and pasted at `offset` (x, y), aspect ratio kept."""

    frame_size: tuple[int, int]
    input_size: int
    resized: tuple[int, int]
    offset: tuple[int, int]

    @classmethod
    def fit(cls, width: int, height: int, input_size: int) -> "Letterbox":
        s = input_size / max(width, height)
        rw = min(input_size, max(1, round(width * s)))
        rh = min(input_size, max(1, round(height * s)))
        return cls((width, height), input_size, (rw, rh), ((input_size - rw) // 2, (input_size - rh) // 2))

    def to_frame(self, xy: np.ndarray) -> np.ndarray:
        """Normalised input coordinates (..., 2) -> frame pixels."""
        size = self.input_size
        scale = np.array(self.frame_size, np.float64) / np.array(self.resized, np.float64)
        # model coordinates are continuous (pixel edges at integers); frame pixels are centred on integers
        return (np.asarray(xy, np.float64) * size - np.array(self.offset)) * scale - 0.5

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Resize + pad `frame` into the uint8 (S, S, 3) model image."""
        rw, rh = self.resized
        shrink = rw < frame.shape[1] or rh < frame.shape[0]
        small = cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        out = np.zeros((self.input_size, self.input_size, 3), np.uint8)
        x, y = self.offset
        out[y:y + rh, x:x + rw] = small
        return out


# ----------------------------------------------------------- interpreter I/O


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence the runtime's C++ banner ("Created TensorFlow Lite XNNPACK delegate"),
    which would otherwise break JSON-lines readers of our stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_asset_interpreter(filename: str, num_threads: int = 1) -> "Interpreter":
    """A ready `ai_edge_litert` Interpreter for a model shipped in assets/."""
    from ai_edge_litert.interpreter import Interpreter

    content = (resources.files("lipstream.models") / "assets" / filename).read_bytes()
    with _quiet_native_stderr():
        interp = Interpreter(model_content=content, num_threads=num_threads)
        interp.allocate_tensors()
    log.debug("loaded %s (%d bytes, %d threads)", filename, len(content), num_threads)
    return interp


_MODELS = {
    "short": ("face_detection_short_range.tflite", SHORT_RANGE_ANCHORS),
    "full": ("face_detection_full_range_sparse.tflite", FULL_RANGE_ANCHORS),
}


class BlazeFace:
    """MediaPipe BlazeFace detector implementing `FaceDetector`.

    `short` suits faces filling more than ~1/5 of the frame's long side
    (selfie/talking-head video); `full` finds faces down to ~1/20 of it at
    ~3x the cost. One instance holds one interpreter: do not share an
    instance between threads.
    """

    def __init__(
        self,
        model: Literal["short", "full"] = "short",
        score_threshold: float = 0.5,
        iou_threshold: float = 0.3,
        max_faces: int | None = None,
        num_threads: int = 1,
    ) -> None:
        if model not in _MODELS:
            raise ValueError(f"model must be 'short' or 'full', got {model!r}")
        filename, self.anchor_options = _MODELS[model]
        self.model = model
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.max_faces = max_faces
        self.anchors = generate_anchors(self.anchor_options)
        self._interp = open_asset_interpreter(filename, num_threads)
        (inp,) = self._interp.get_input_details()
        self._input_index = inp["index"]
        size = self.anchor_options.input_size
        if tuple(inp["shape"]) != (1, size, size, 3):
            raise RuntimeError(f"{filename}: unexpected input shape {inp['shape']}")
        outs = {int(d["shape"][-1]): d["index"] for d in self._interp.get_output_details()}
        self._boxes_index = outs[4 + 2 * NUM_KEYPOINTS]
        self._scores_index = outs[1]

    @property
    def input_size(self) -> int:
        return self.anchor_options.input_size

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces per frame, best score first."""
        return [self.detect_frame(frame) for frame in frames]

    def detect_frame(self, frame: np.ndarray) -> list[Detection]:
        """Faces in one RGB uint8 frame, best score first."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}")
        lb = Letterbox.fit(frame.shape[1], frame.shape[0], self.input_size)
        image = lb.apply(frame).astype(np.float32) * (2.0 / 255.0) - 1.0
        self._interp.set_tensor(self._input_index, image[None])
        self._interp.invoke()
        raw = self._interp.get_tensor(self._boxes_index)[0]
        scores = sigmoid(self._interp.get_tensor(self._scores_index)[0, :, 0])
        return self._postprocess(raw, scores, lb)

    def _postprocess(self, raw: np.ndarray, scores: np.ndarray, lb: Letterbox) -> list[Detection]:
        keep = scores >= self.score_threshold
        if not keep.any():
            return []
        boxes, kps = decode_boxes(raw[keep], self.anchors[keep], self.input_size)
        found = weighted_nms(boxes, scores[keep], kps, self.iou_threshold)
        if self.max_faces is not None:
            found = found[: self.max_faces]
        out = []
        for box, score, kp in found:
            (x0, y0), (x1, y1) = lb.to_frame(box.reshape(2, 2))
            out.append(Detection(x0, y0, x1, y1, score, lb.to_frame(kp)))
        return out
