"""The exemplar pre-pass: mouths from frames spread over a whole file, before the job starts."""

from __future__ import annotations

import math
from pathlib import Path

from lipstream.config import FaceConfig
from lipstream.stream.frames import Frame
from lipstream.stream.source import VideoSource

from ...faces.stage import FaceTracker
from .bank import BankConfig, Exemplar, MouthBank

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


def learn_file(video: Path, face: FaceConfig, bank: MouthBank, count: int) -> int:
    """Add the mouths of about `count` frames spread over `video` to `bank`; returns how many were kept.

    Only frames no other frame depends on are decoded (half the work), and
    of those every k-th; the target is found as the face stage finds it,
    afresh on each frame (they are far apart), so a `--target` holds here too.
    """
    from .stage import learn_frame

    global _last
    stat = Path(video).stat()
    key = repr((str(Path(video).resolve()), stat.st_size, stat.st_mtime_ns, face, count, bank.config))
    if _last is not None and _last[0] == key:
        return sum(1 for exemplar in _last[1] if bank.add(exemplar))
    recorder = _Offered(bank)
    tracker = FaceTracker(face)
    added = 0
    with VideoSource(video) as source:
        frames = math.ceil(source.duration * source.average_rate) if source.duration else 4 * count
        step = max(1, frames // (2 * count))  # about half the frames are skimmed
        for index, pts, decoded in source.skim(step):
            frame = Frame(index, pts, source.time_base, index, decoded, source.rotation)
            found = tracker.observe(frame)
            if found is not None and learn_frame(recorder, frame, found.points, index):  # type: ignore[arg-type]
                added += 1
    _last = (key, recorder.offered)
    return added
