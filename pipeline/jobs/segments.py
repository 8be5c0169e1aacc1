"""Segments: the output cut into independent units that a killed run can resume (pure: no I/O but the journal's file).

    output time ─┬──── segment 0 ────┬──── segment 1 ────┬──── segment 2 ──
                 0 s                 10 s                20 s
    segment 1 runs:        [warm-up][ own frames (written) ][lookahead]
                            processed, not written           processed, not written

A segment owns the output frames whose time falls in [k*S, (k+1)*S). Its
stages start fresh `warmup` frames before its first frame and read
`lookahead` frames past its last one (the context they read around any
frame), so what a segment writes depends only on the input: the same
whether the run before it was interrupted or not. Each segment is encoded
on its own (it starts with a keyframe) and kept as a file; the journal
beside the output records which are finished. A resumed run decodes
through the finished ones without processing them.

`SegmentSplitter` hands out each segment's frames from the one stream of
output frames, holding at most `warmup + lookahead + 1` frames; a later
runner (segments on other workers) can reuse the plan and the journal.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import deque
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

from lipstream.stream.frames import Frame

JOURNAL_VERSION = 1


@dataclass(frozen=True)
class SegmentPlan:
    """Where segments begin and how much context each one processes around its own frames."""

    seconds: Fraction
    warmup: int = 0  # frames before a segment's first frame that its stages process first
    lookahead: int = 0  # frames after its last frame that its stages read as context

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.warmup < 0 or self.lookahead < 0:
            raise ValueError(f"need seconds > 0 and warm-up, lookahead >= 0, got {self}")

    def index_of(self, time: Fraction) -> int:
        """The segment an output time belongs to."""
        return math.floor(Fraction(time) / self.seconds)

    def start_of(self, index: int) -> Fraction:
        return index * self.seconds


@dataclass
class Segment:
    """One segment's work: `frames` yields warm-up, own and lookahead frames in order (consume it once)."""

    index: int
    first: int  # output index of its first own frame
    frames: Iterator[Frame]
    own: int = 0  # own frames handed out so far
    next_time: Fraction | None = None  # time of the first frame after it; None when the output ends with it
    ended: bool = False  # set once `frames` is exhausted

    def owns(self, frame: Frame, plan: SegmentPlan) -> bool:
        return plan.index_of(frame.time) == self.index


class SegmentSplitter:
    """Cuts one iterator of output frames into segments, skipping those `skip(index)` says are done."""

    def __init__(
        self,
        frames: Iterator[Frame],
        plan: SegmentPlan,
        skip: Callable[[int], bool] = lambda index: False,
        stop: Callable[[], bool] = lambda: False,
        until: int | None = None,
    ) -> None:
        """`skip(index)`: that segment is finished already; `stop()`: give up decoding through finished ones (a cancel);
        `until`: the last segment wanted (a worker's share ends there: nothing after it is decoded)."""
        self.plan = plan
        self._until = until
        self._source = frames
        self._skip = skip
        self._stop = stop
        self._ahead: deque[Frame] = deque()  # read from the source, not handed out as own frames yet
        self._history: deque[Frame] = deque(maxlen=max(plan.warmup, 1))  # the last frames handed out or skipped
        self._exhausted = False
        self.skipped: list[tuple[int, int]] = []  # (segment index, frames) passed over, for the caller to take
        self.skipped_segments = 0
        self.last_time: Fraction | None = None  # time of the last frame handed out or passed over

    def next_segment(self) -> Segment | None:
        """The next segment to process, decoding through finished ones; None at the end of the output."""
        while True:
            first = self._peek(0)
            if first is None:
                return None
            index = self.plan.index_of(first.time)
            if self._until is not None and index > self._until:
                return None
            if not self._skip(index):
                segment = Segment(index, first.index, iter(()))
                segment.frames = self._frames(segment)
                return segment
            count = 0
            while (frame := self._peek(0)) is not None and self.plan.index_of(frame.time) == index:
                if self._stop():
                    return None
                self._pass()
                count += 1
            self.skipped.append((index, count))
            self.skipped_segments += 1

    def _frames(self, segment: Segment) -> Iterator[Frame]:
        warmup = list(self._history)[-self.plan.warmup :] if self.plan.warmup else []
        yield from warmup
        while (frame := self._peek(0)) is not None and self.plan.index_of(frame.time) == segment.index:
            self._pass()
            segment.own += 1
            yield frame
        following = self._peek(0)
        segment.next_time = None if following is None else following.time
        for k in range(self.plan.lookahead):
            frame = self._peek(k)
            if frame is None:
                break
            yield frame
        segment.ended = True

    def _peek(self, k: int) -> Frame | None:
        while len(self._ahead) <= k and not self._exhausted:
            frame = next(self._source, None)
            if frame is None:
                self._exhausted = True
            else:
                self._ahead.append(frame)
        return self._ahead[k] if k < len(self._ahead) else None

    def _pass(self) -> None:
        frame = self._ahead.popleft()
        self._history.append(frame)
        self.last_time = frame.time


@dataclass(frozen=True)
class DoneSegment:
    """A finished segment as the journal records it."""

    index: int
    file: str  # name inside the state folder
    frames: int
    first_pts: int  # output pts of its first and last frame, in the journal's time base
    last_pts: int
    bytes: int
    faces: int = 0  # frames with a target face
    edited: int = 0  # frames whose pixels an engine changed
    report: dict[str, Any] = field(default_factory=dict)  # what its stages reported (see segmented.combine_reports)


@dataclass
class Journal:
    """What a resumable run has finished: written beside the output after each segment."""

    key: str  # hash of everything the output depends on (see run_key)
    time_base: str
    segments: dict[int, DoneSegment] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    version: int = JOURNAL_VERSION

    def done(self, index: int, folder: Path) -> bool:
        """Finished and still on disk at the recorded size."""
        entry = self.segments.get(index)
        if entry is None:
            return False
        try:
            return (folder / entry.file).stat().st_size == entry.bytes
        except OSError:
            return False

    def to_json(self) -> str:
        data = {
            "version": self.version,
            "key": self.key,
            "time_base": self.time_base,
            "notes": list(self.notes),
            "segments": [asdict(s) for s in sorted(self.segments.values(), key=lambda s: s.index)],
        }
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Journal:
        data = json.loads(text)
        if data.get("version") != JOURNAL_VERSION:
            raise ValueError(f"journal version {data.get('version')} is not {JOURNAL_VERSION}")
        segments = {int(s["index"]): DoneSegment(**s) for s in data["segments"]}
        return cls(str(data["key"]), str(data["time_base"]), segments, tuple(data.get("notes", ())))

    @classmethod
    def load(cls, path: Path, key: str) -> Journal | None:
        """The journal at `path` if it belongs to a run with this `key`; None when absent, unreadable or another run's."""
        try:
            journal = cls.from_json(path.read_text())
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return journal if journal.key == key else None

    def save(self, path: Path) -> None:
        """Replace the journal atomically and durably (written, synced, renamed, folder synced)."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as file:
            file.write(self.to_json())
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def run_key(parts: dict[str, Any]) -> str:
    """A stable hash of what a run's output depends on (inputs, engine, checkpoints, options, versions)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def file_identity(path: Path) -> dict[str, Any]:
    """A file as the key sees it: where it is, how big, when it last changed."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
