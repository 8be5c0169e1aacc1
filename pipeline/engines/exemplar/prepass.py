"""The exemplar pre-pass: mouths from frames spread over a whole file, before the job starts."""

from __future__ import annotations

import math
from pathlib import Path

from lipstream.config import FaceConfig
from lipstream.stream.frames import Frame
from lipstream.stream.source import VideoSource

from ...faces.stage import FaceTracker
from .bank import MouthBank, learn_frame

__all__ = ["learn_file"]


def learn_file(video: Path, face: FaceConfig, bank: MouthBank, count: int) -> int:
    """Add the mouths of about `count` frames spread over `video` to `bank`; returns how many were kept.

    Only frames no other frame depends on are decoded (half the work), and
    of those every k-th; the target is found as the face stage finds it,
    afresh on each frame (they are far apart), so a `--target` holds here too.
    """
    tracker = FaceTracker(face)
    added = 0
    with VideoSource(video) as source:
        frames = math.ceil(source.duration * source.average_rate) if source.duration else 4 * count
        step = max(1, frames // (2 * count))  # about half the frames are skimmed
        for index, pts, decoded in source.skim(step):
            frame = Frame(index, pts, source.time_base, index, decoded, source.rotation)
            found = tracker.observe(frame)
            if found is not None and learn_frame(bank, frame, found.points, index):
                added += 1
    return added
