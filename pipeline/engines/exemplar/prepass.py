"""The exemplar pre-pass: mouths from frames spread over a long file, before the job starts."""

from __future__ import annotations

import math
from pathlib import Path

from lipstream.config import FaceConfig
from lipstream.stream.frames import Frame
from lipstream.stream.source import VideoSource

from ...faces.stage import FaceTracker
from .bank import BankConfig, Exemplar, MouthBank, learn_frame

__all__ = ["learn_file"]

# The last file's pre-pass, as the exemplars it offered in order: a job prepares
# fresh stages for each segment (jobs/segmented.py), and replaying them gives the
# same bank without decoding the file again.
_last: tuple[str, list[Exemplar]] | None = None


class _Offered:
    """Stands in for the bank during a pre-pass, recording every exemplar offered to it."""

    def __init__(self, bank: MouthBank) -> None:
        self.bank = bank
        self.config: BankConfig = bank.config
        self.offered: list[Exemplar] = []

    def add(self, exemplar: Exemplar) -> bool:
        self.offered.append(exemplar)
        return self.bank.add(exemplar)


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
    global _last
    stat = Path(video).stat()
    key = repr((str(Path(video).resolve()), stat.st_size, stat.st_mtime_ns, face, count, min_seconds, bank.config))
    if _last is not None and _last[0] == key:
        return sum(1 for exemplar in _last[1] if bank.add(exemplar))
    recorder = _Offered(bank)
    tracker = FaceTracker(face)
    added = 0
    with VideoSource(video) as source:
        if source.duration is None or source.duration < min_seconds:
            _last = (key, [])
            return 0
        keys = max(1, math.ceil(source.duration / 2))  # a generous guess: a keyframe every 2 s
        for index, pts, decoded in source.skim(max(1, keys // count), keys=True):
            frame = Frame(index, pts, source.time_base, index, decoded, source.rotation)
            found = tracker.observe(frame)
            if found is not None and learn_frame(recorder, frame, found.points, index):  # type: ignore[arg-type]
                added += 1
    _last = (key, recorder.offered)
    return added
