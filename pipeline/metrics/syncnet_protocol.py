"""The published lip-sync evaluation's face tracks: S3FD detections linked into tracks, cropped as its scripts crop.

LSE-C/LSE-D in papers (Wav2Lip and those that compare with it) come from the
SyncNet authors' pipeline (joonson/syncnet_python `run_pipeline.py`): the
video at 25 fps, S3FD on each frame shrunk to a quarter, detections above
0.9 linked into tracks by box overlap (IoU > 0.5, up to 25 missed frames,
boxes interpolated across the misses), tracks kept when long enough and
with faces over 100 px on average; each track's box centre and half-size
median-filtered over 13 frames and cropped from the picture padded with
grey 110: from one half-size above the centre to 1.8 below it and 1.4 to
either side (crop scale 0.4), resized to 224x224. Scene cuts are not
detected here (the reference splits tracks at cuts): a cut inside a track
shows as a jump, which the IoU link already breaks when the face moves.

Everything here but `detect_grid` is pure and works on boxes: the detection
pass keeps only boxes per frame, and the crops are taken in a second pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import cv2
import numpy as np

from lipstream.models.face_types import FaceDetector
from lipstream.stream.source import VideoSource

from .syncnet_inputs import grid_frames

__all__ = ["ProtocolConfig", "Track", "crop_face", "detect_grid", "link_tracks", "track_crops"]


@dataclass(frozen=True)
class ProtocolConfig:
    """The reference pipeline's settings (`run_pipeline.py` options), except `min_track` (frames)."""

    detect_scale: float = 0.25
    min_score: float = 0.9
    min_iou: float = 0.5
    max_missed: int = 25
    min_track: int = 50
    min_face: float = 100.0
    crop_scale: float = 0.4
    smooth: int = 13
    size: int = 224
    pad_value: int = 110


@dataclass(frozen=True)
class Track:
    """A face track on the 25 fps grid: consecutive frames and a box (x0, y0, x1, y1) for each."""

    frames: np.ndarray  # (N,) grid indices, consecutive
    boxes: np.ndarray  # (N, 4)


def detect_grid(source: VideoSource, detector: FaceDetector, config: ProtocolConfig = ProtocolConfig()) -> Iterator[np.ndarray]:
    """(K, 4) boxes above the score threshold for every frame of the 25 fps grid, in frame pixels."""
    for _, frame in grid_frames(source):
        rgb = frame.rgb()
        small = cv2.resize(rgb, None, fx=config.detect_scale, fy=config.detect_scale, interpolation=cv2.INTER_LINEAR)
        (found,) = detector.detect([small])
        boxes = [d.box / config.detect_scale for d in found if d.score >= config.min_score]
        yield np.array(boxes, np.float64).reshape(-1, 4)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def link_tracks(detections: Sequence[np.ndarray], config: ProtocolConfig = ProtocolConfig()) -> list[Track]:
    """Greedy tracks as the reference builds them: each one grows from the first box left,
    taking in frame order the box that overlaps its last one, until a gap longer than `max_missed`."""
    left = [list(map(np.asarray, boxes)) for boxes in detections]
    tracks: list[Track] = []
    while True:
        frames: list[int] = []
        boxes: list[np.ndarray] = []
        for index, candidates in enumerate(left):
            if frames and index - frames[-1] > config.max_missed:
                break
            for k, box in enumerate(candidates):
                if not frames or _iou(box, boxes[-1]) > config.min_iou:
                    frames.append(index)
                    boxes.append(box)
                    del candidates[k]
                    break
        if not frames:
            return tracks
        if len(frames) < config.min_track:
            continue
        grid = np.arange(frames[0], frames[-1] + 1)
        stacked = np.stack(boxes)
        filled = np.stack([np.interp(grid, frames, stacked[:, j]) for j in range(4)], axis=1)
        if max(np.mean(filled[:, 2] - filled[:, 0]), np.mean(filled[:, 3] - filled[:, 1])) > config.min_face:
            tracks.append(Track(grid, filled))


def _median(values: np.ndarray, kernel: int) -> np.ndarray:
    """Median filter with zero padding at the ends (what scipy.signal.medfilt does)."""
    half = kernel // 2
    padded = np.concatenate([np.zeros(half), values, np.zeros(half)])
    return np.array([np.median(padded[i : i + kernel]) for i in range(len(values))])


def track_crops(track: Track, config: ProtocolConfig = ProtocolConfig()) -> np.ndarray:
    """(N, 3): the smoothed centre x, centre y and half-size of each frame's crop."""
    boxes = track.boxes
    half = np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return np.stack([_median(v, config.smooth) for v in (cx, cy, half)], axis=1)


def crop_face(rgb: np.ndarray, centre_x: float, centre_y: float, half: float, config: ProtocolConfig = ProtocolConfig()) -> np.ndarray:
    """The `size` x `size` crop of one frame: above the centre by `half`, below by half x (1 + 2 cs), sideways half x (1 + cs)."""
    cs = config.crop_scale
    pad = int(half * (1 + 2 * cs))
    padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(config.pad_value,) * 3)
    my, mx = centre_y + pad, centre_x + pad
    face = padded[int(my - half) : int(my + half * (1 + 2 * cs)), int(mx - half * (1 + cs)) : int(mx + half * (1 + cs))]
    if face.size == 0:
        face = np.full((config.size, config.size, 3), config.pad_value, np.uint8)
    return cv2.resize(face, (config.size, config.size))
