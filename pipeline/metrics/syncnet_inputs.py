"""SyncNet_color's inputs, streamed from media: mel windows and lower-face windows at 25 fps.

Audio: grid frame j gets the 16-column Wav2Lip mel window starting at
column int(80 j / 25), as Wav2Lip inference cuts it, computed on spans of the
rolling 16 kHz feed exactly as the engines compute theirs. Video: frames are sampled at 25 fps (nearest
decoded frame), the target is followed by the pipeline's FaceTracker and cut
as Wav2Lip crops faces: the landmarks' box (forehead to chin, cheek to cheek), resized to
96x96, BGR, rows 48..95 kept; five consecutive crops make one window.
Everything is a generator holding a few frames or seconds at most.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING
from fractions import Fraction

import cv2
import numpy as np

from lipstream.config import FaceConfig
from lipstream.models.wav2lip_mel import HOP, MEL_STEP
from lipstream.stream.audio import FEATURE_RATE, AudioFeed, AudioInput
from lipstream.stream.frames import Frame
from lipstream.stream.source import VideoSource

from lipstream.pipeline.engines.shared.mel import mel_column, mel_windows

if TYPE_CHECKING:
    from lipstream.pipeline.faces.models import FaceModels

__all__ = [
    "GRID_RATE",
    "WINDOW",
    "LowerFaceTracker",
    "audio_windows",
    "grid_frames",
    "lower_face",
    "lower_half",
    "video_windows",
]

GRID_RATE = 25
"""Frames per second of the sampled video: SyncNet_color's training rate (5 frames = 16 mel columns)."""
WINDOW = 5
"""Frames per video window (syncnet_T in Wav2Lip)."""
FACE_SIZE = 96


# ------------------------------------------------------------------ audio


def audio_windows(audio: AudioInput, block: int = 250) -> Iterator[tuple[int, np.ndarray]]:
    """(j, mel (80, 16)) for every grid frame j whose whole mel window lies in the audio.

    The windows are cut like the engines' (`_mel_stream.mel_windows` on spans
    of the rolling 16 kHz feed), so they equal Wav2Lip's whole-signal columns
    except the first three, where Wav2Lip reflects the signal and we hear silence.
    """
    feed = AudioFeed(audio)
    columns = 1 + round(audio.duration * FEATURE_RATE) // HOP  # columns of the whole-signal spectrogram
    count = 0
    while mel_column(Fraction(count, GRID_RATE)) + MEL_STEP <= columns:
        count += 1
    for first in range(0, count, block):
        times = [Fraction(j, GRID_RATE) for j in range(first, min(first + block, count))]
        span = feed.span(times[0] - Fraction(1, 10), times[-1] + Fraction(1, 2))
        yield from zip(range(first, first + len(times)), mel_windows(span, times))


# ------------------------------------------------------------------ faces


def lower_half(face: np.ndarray) -> np.ndarray:
    """Rows 48..95 of a face picture (RGB) resized to 96x96 BGR, as SyncNet_color takes it."""
    bgr = np.ascontiguousarray(face[:, :, ::-1])  # BGR, as cv2 reads frames in Wav2Lip
    shrink = face.shape[1] > FACE_SIZE or face.shape[0] > FACE_SIZE
    small = cv2.resize(bgr, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return small[FACE_SIZE // 2 :]


def lower_face(rgb: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """`lower_half` of the landmarks' box, or None if the box is degenerate.

    The box spans the landmarks (forehead to chin, cheek to cheek), close to
    the S3FD boxes Wav2Lip's crops come from; it is clamped to the frame.
    """
    height, width = rgb.shape[:2]
    x0, y0 = np.floor(points[:, :2].min(axis=0)).astype(int)
    x1, y1 = np.ceil(points[:, :2].max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return lower_half(rgb[y0:y1, x0:x1])


class LowerFaceTracker:
    """Lower-face crop per grid frame, from the same target tracker the sync pipeline uses."""

    def __init__(self, config: FaceConfig = FaceConfig(), models: FaceModels | None = None) -> None:
        from lipstream.pipeline.faces.stage import FaceTracker

        self._tracker = FaceTracker(config, models)
        self._last: tuple[int, np.ndarray | None] = (-1, None)

    def __call__(self, k: int, frame: Frame) -> np.ndarray | None:
        if frame.source_index != self._last[0]:  # slow videos repeat frames on the grid: track each once
            found = self._tracker.observe(frame)
            self._last = (frame.source_index, None if found is None else lower_face(frame.rgb(), found.points))
        return self._last[1]


def grid_frames(source: VideoSource, rate: int = GRID_RATE) -> Iterator[tuple[int, Frame]]:
    """(k, frame shown at time k / rate): the nearest decoded frame, in one forward pass."""
    k = 0
    previous: Frame | None = None
    for index, pts, decoded in source.forward():
        frame = Frame(index, pts, source.time_base, index, decoded, source.rotation)
        if previous is None:
            previous = frame
            continue
        middle = (previous.time + frame.time) / 2
        while Fraction(k, rate) < middle:
            yield k, previous
            k += 1
        previous = frame
    if previous is not None:
        end = previous.time + 1 / source.average_rate
        while Fraction(k, rate) < end - Fraction(1, 2 * rate):
            yield k, previous
            k += 1


def video_windows(source: VideoSource, crops: Callable[[int, Frame], np.ndarray | None]) -> Iterator[tuple[int, np.ndarray | None]]:
    """(i, (15, 48, 96) float32 in [0, 1] or None) for windows of 5 grid frames starting at i.

    `crops(k, frame)` gives grid frame k's lower face (None: no face there).
    """
    recent: deque[np.ndarray | None] = deque(maxlen=WINDOW)
    for k, frame in grid_frames(source):
        recent.append(crops(k, frame))
        if len(recent) == WINDOW:
            if any(c is None for c in recent):
                yield k - WINDOW + 1, None
            else:
                stacked = np.concatenate([c.transpose(2, 0, 1) for c in recent], axis=0)  # type: ignore[union-attr]
                yield k - WINDOW + 1, stacked.astype(np.float32) / 255.0
