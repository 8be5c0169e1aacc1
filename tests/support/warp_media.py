"""The bundled sample as material for the warp engine's tests: frames, faces, audio, windows.

Faces are built here with BlazeFace + FaceMesh directly (not the face
stage), so these tests exercise the engine against plain landmarks.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import av
import numpy as np

from lipstream.models.blazeface import BlazeFace
from lipstream.models.face_types import Detection, Landmarks
from lipstream.models.facemesh import FaceMesh
from lipstream.pipeline.metrics.lipsync_metric import read_audio
from lipstream.stream.frames import AudioSpan, Face, Frame, Window
from lipstream.stream.windows import plan_windows
from media import SAMPLE_AUDIO, SAMPLE_VIDEO

RATE = 16000
FPS = 25
CROP_MARGIN = 0.4  # of the face size on each side, like the face stage's crop


@lru_cache(maxsize=None)
def sample_frames() -> tuple[np.ndarray, ...]:
    """The 100 RGB frames of tests/data/sample.mp4 (540x960, a real face)."""
    with av.open(str(SAMPLE_VIDEO)) as container:
        return tuple(f.to_ndarray(format="rgb24") for f in container.decode(video=0))


@lru_cache(maxsize=None)
def sample_audio() -> np.ndarray:
    """The new speech for the sample (16 kHz mono float32)."""
    return read_audio(SAMPLE_AUDIO, RATE)


def track_faces(frames: tuple[np.ndarray, ...] | list[np.ndarray]) -> list[Face | None]:
    """A `Face` per frame from FaceMesh tracking (detector on the first frame and when lost)."""
    detector, mesh = BlazeFace(), FaceMesh()
    roi: Detection | Landmarks | None = None
    faces: list[Face | None] = []
    for rgb in frames:
        if roi is None:
            found = detector.detect_frame(rgb)
            roi = found[0] if found else None
        marks = mesh.landmarks(rgb, roi) if roi is not None else None
        if marks is None or marks.presence < 0.5:
            roi = None
            faces.append(None)
            continue
        roi = marks
        (x0, y0), (x1, y1) = marks.xy.min(axis=0), marks.xy.max(axis=0)
        mx, my = CROP_MARGIN * (x1 - x0), CROP_MARGIN * (y1 - y0)
        height, width = rgb.shape[:2]
        crop = (max(int(x0 - mx), 0), max(int(y0 - my), 0), min(int(x1 + mx) + 1, width), min(int(y1 + my) + 1, height))
        faces.append(Face((x0, y0, x1, y1), np.array(marks.points), marks.presence, crop))
    return faces


@lru_cache(maxsize=None)
def sample_faces() -> tuple[Face | None, ...]:
    return tuple(track_faces(sample_frames()))


def sample_frame_objects(faces: tuple[Face | None, ...] | list[Face | None] | None = None) -> list[Frame]:
    """Pipeline frames of the sample (25 fps, pts in 1/25 s) carrying `faces` (the tracked ones by default)."""
    faces = sample_faces() if faces is None else faces
    return [Frame(i, i, Fraction(1, FPS), i, image=rgb, face=face) for i, (rgb, face) in enumerate(zip(sample_frames(), faces))]


def windows(frames: list[Frame], audio: np.ndarray, size: int = 24, overlap: int = 8, margin: float = 0.5) -> list[Window]:
    """Windows as the job builds them: overlapping frames, audio spanning the window plus `margin`."""
    out = []
    m = Fraction(margin).limit_denominator(1000)
    for n, (items, lo, hi) in enumerate(plan_windows(frames, size, overlap)):
        first = int(np.floor((items[0].time - m) * RATE))
        stop = int(np.ceil((items[-1].time + m) * RATE))
        span = np.zeros(stop - first, np.float32)
        a, b = max(first, 0), min(stop, len(audio))
        if b > a:
            span[a - first : b - first] = audio[a:b]
        out.append(Window(n, tuple(items), lo, hi, AudioSpan(Fraction(first, RATE), RATE, span)))
    return out


def run_stage(stage, windows_: list[Window]) -> list[Frame]:
    """Owned frames in output order, as the sink would receive them."""
    return [frame for window in windows_ for frame in stage(window).owned]
