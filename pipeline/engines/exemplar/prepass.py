"""The exemplar pre-pass: mouths from frames spread over a long file, before the job starts."""

from __future__ import annotations

import math
from pathlib import Path

from lipstream.config import FaceConfig
from lipstream.stream.frames import Frame
from lipstream.stream.source import VideoSource

from ...faces.stage import FaceTracker
from .bank import MouthBank, learn_frame

__all__ = ["learn_file"]


def learn_file(video: Path, face: FaceConfig, bank: MouthBank, count: int, min_seconds: float = 60.0) -> int:
    """Add the mouths of up to `count` keyframes spread over `video` to `bank`; returns how many were kept.

    Only keyframes are decoded (typically one every few seconds: next to
    nothing next to the job), so this pays on long files, where waiting for
    the stream to show the speaker's range would leave minutes to the warp
    mouth. Files shorter than `min_seconds` are not looked over: there the
    stage's own look-ahead fills the bank within a window (measured on the
    demos: 97-99% coverage either way). The target is found as the face
    stage finds it, afresh on each frame (they are far apart), so a
    `--target` holds here too.
    """
    tracker = FaceTracker(face)
    added = 0
    with VideoSource(video) as source:
        if source.duration is None or source.duration < min_seconds:
            return 0
        keys = max(1, math.ceil(source.duration / 2))  # a generous guess: a keyframe every 2 s
        for index, pts, decoded in source.skim(max(1, keys // count), keys=True):
            frame = Frame(index, pts, source.time_base, index, decoded, source.rotation)
            found = tracker.observe(frame)
            if found is not None and learn_frame(bank, frame, found.points, index):
                added += 1
    return added
