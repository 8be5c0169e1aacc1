"""Where a job's segments go: one continuous stream (pipes, fragments), or segment files joined at the end (files).

Both are driven the same way by `segmented.run_segments`; every method but
`skip` blocks (it encodes or touches files) and runs on a worker thread.
"""

from __future__ import annotations

import logging
import threading
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Protocol, Sequence

from lipstream.config import EncodeConfig
from lipstream.stream.audio import AudioInput
from lipstream.stream.encoding import VideoTraits
from lipstream.stream.frames import Frame
from lipstream.stream.join import join_segments
from lipstream.stream.partials import StateLock, output_error, remove_stale_partials
from lipstream.stream.sink import Sink

from .segments import DoneSegment, Journal, Segment

log = logging.getLogger(__name__)

JOURNAL = "journal.json"


class Output(Protocol):
    notes: tuple[str, ...]

    def skip(self, index: int) -> bool: ...
    def skipped(self, index: int) -> DoneSegment | None: ...
    def begin(self, segment: Segment) -> None: ...
    def write(self, frames: Sequence[Frame], faces: int, edited: int) -> bytes: ...
    def end_segment(self, segment: Segment, end: Fraction, report: dict[str, object]) -> None: ...
    def finish(self, video_end: Fraction, audio_end: Fraction, stop: threading.Event) -> bytes: ...
    def abort(self) -> None: ...


class StreamOutput:
    """All segments into one continuous container: stdout, or bytes handed to a fragment consumer."""

    def __init__(self, target: BinaryIO | None, audio: AudioInput, encode: EncodeConfig, *, rate: Fraction, traits: VideoTraits) -> None:
        self.sink = Sink(target, audio, encode, rate=rate, traits=traits)

    @property
    def notes(self) -> tuple[str, ...]:
        return self.sink.notes

    def skip(self, index: int) -> bool:
        return False

    def skipped(self, index: int) -> DoneSegment | None:
        return None

    def begin(self, segment: Segment) -> None:
        pass

    def write(self, frames: Sequence[Frame], faces: int, edited: int) -> bytes:
        return self.sink.write(frames)

    def end_segment(self, segment: Segment, end: Fraction, report: dict[str, object]) -> None:
        pass

    def finish(self, video_end: Fraction, audio_end: Fraction, stop: threading.Event) -> bytes:
        return self.sink.close(video_end, audio_end)

    def abort(self) -> None:
        self.sink.abort()


class SegmentFiles:
    """A file output: each segment encoded to its own file in `.OUT.lipstream/`, journaled, joined when all are done.

    `open` takes the folder's lock (one run per OUT), removes what killed runs
    left (partials of OUT, unfinished segments), and with `resume` keeps the
    finished segments of an earlier run with the same key.
    """

    def __init__(
        self,
        final: Path,
        audio: AudioInput,
        encode: EncodeConfig,
        *,
        rate: Fraction,
        traits: VideoTraits,
        key: str,
        resume: bool,
    ) -> None:
        self.final = final
        self.audio = audio
        self.encode = encode
        self.rate = rate
        self.traits = traits
        self.resume = resume
        self.lock = StateLock(final)
        self.folder = self.lock.folder
        self.journal = Journal(key, "")
        self.resumed = 0  # finished segments taken over from an earlier run
        self.restarted = False  # an earlier run's segments were there but not usable (other inputs or options)
        self._sink: Sink | None = None
        self._first_pts = self._last_pts = 0
        self._faces = self._edited = 0

    @property
    def notes(self) -> tuple[str, ...]:
        return self.journal.notes

    def open(self) -> None:
        self.lock.acquire()
        try:
            remove_stale_partials(self.final)
            previous = Journal.load(self.folder / JOURNAL, self.journal.key) if self.resume else None
            if previous is not None:
                self.journal = previous
                self.resumed = sum(1 for index in previous.segments if previous.done(index, self.folder))
            elif self.resume and (self.folder / JOURNAL).exists():
                log.info("the unfinished run for %s had other inputs or options; starting over", self.final)
                self.restarted = True
            keep = {entry.file for entry in self.journal.segments.values()} | {"lock"} | ({JOURNAL} if previous else set())
            for path in self.folder.iterdir():
                if path.name not in keep and path.is_file():  # unfinished segments, earlier runs' files: no writer holds them
                    path.unlink()
        except OSError as exc:
            self.close(success=False)
            raise output_error(exc, self.final) from None
        except BaseException:
            self.close(success=False)
            raise

    def skip(self, index: int) -> bool:
        return self.journal.done(index, self.folder)

    def skipped(self, index: int) -> DoneSegment | None:
        return self.journal.segments.get(index)

    def begin(self, segment: Segment) -> None:
        path = self.folder / f"seg-{segment.index:06d}.mp4"
        self._sink = Sink(path, None, self.encode, rate=self.rate, traits=self.traits, muxer="mp4", durable=True, part_of=self.final)
        self._faces = self._edited = 0

    def write(self, frames: Sequence[Frame], faces: int, edited: int) -> bytes:
        assert self._sink is not None
        if frames:
            if self._sink.encoding is None:
                self._first_pts = frames[0].pts
                if not self.journal.time_base:  # the journal's timestamps are output pts in the frames' time base
                    self.journal.time_base = str(frames[0].time_base)
            self._last_pts = frames[-1].pts
        self._faces += faces
        self._edited += edited
        return self._sink.write(frames)

    def end_segment(self, segment: Segment, end: Fraction, report: dict[str, object]) -> None:
        sink, self._sink = self._sink, None
        assert sink is not None
        sink.close(end, end)
        if not self.journal.notes and sink.notes:
            self.journal.notes = sink.notes
        path = self.folder / f"seg-{segment.index:06d}.mp4"
        entry = DoneSegment(
            segment.index, path.name, segment.own, self._first_pts, self._last_pts, path.stat().st_size, self._faces, self._edited, report
        )
        self.journal.segments[segment.index] = entry
        try:
            self.journal.save(self.folder / JOURNAL)
        except OSError as exc:
            raise output_error(exc, self.final) from None

    def finish(self, video_end: Fraction, audio_end: Fraction, stop: threading.Event) -> bytes:
        paths = [self.folder / entry.file for _, entry in sorted(self.journal.segments.items())]
        join_segments(paths, self.final, self.audio, self.encode, video_end=video_end, audio_end=audio_end, stop=stop)
        return b""

    def abort(self) -> None:
        if self._sink is not None:
            self._sink.abort()
            self._sink = None

    def close(self, success: bool) -> None:
        """Release the folder: removed after success, and after a failure unless the run is resumable."""
        self.lock.release(remove=success or not self.resume)
