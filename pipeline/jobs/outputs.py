"""Where a job's segments go: one continuous stream (pipes, fragments), or segment files joined at the end (files).

Both are driven the same way by `segmented.run_segments`; every method but
`skip` blocks (it encodes or touches files) and runs on a worker thread.
"""

from __future__ import annotations

import logging
import threading
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Callable, Protocol, Sequence

from lipstream.config import EncodeConfig
from lipstream.stream.audio import AudioInput
from lipstream.stream.encoding import VideoTraits
from lipstream.stream.frames import Frame
from lipstream.stream.join import join_segments
from lipstream.stream.partials import StateLock, output_error, remove_stale_partials, state_folder
from lipstream.stream.sink import Sink, release_freed_memory

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


class SegmentEncoder:
    """Each segment encoded to its own file `seg-NNNNNN.mp4` in `folder`; `record` says what becomes of a finished one.

    Shared by the journaled file output of a whole run (`SegmentFiles`) and by
    a worker that encodes some of its segments (`SegmentRange`), so both write
    the same bytes.
    """

    def __init__(self, final: Path, folder: Path, encode: EncodeConfig, *, rate: Fraction, traits: VideoTraits) -> None:
        self.final = final
        self.folder = folder
        self.encode = encode
        self.rate = rate
        self.traits = traits
        self.time_base = ""  # of the frames (and so of the recorded pts), once one was written
        self.segment_notes: tuple[str, ...] = ()
        self._sink: Sink | None = None
        self._first_pts = self._last_pts = 0
        self._faces = self._edited = 0

    def begin(self, segment: Segment) -> None:
        self._sink = Sink(self._path(segment.index), None, self.encode, rate=self.rate, traits=self.traits, muxer="mp4", durable=True, part_of=self.final)
        self._faces = self._edited = 0

    def write(self, frames: Sequence[Frame], faces: int, edited: int) -> bytes:
        assert self._sink is not None
        if frames:
            if self._sink.encoding is None:
                self._first_pts = frames[0].pts
                self.time_base = self.time_base or str(frames[0].time_base)
            self._last_pts = frames[-1].pts
        self._faces += faces
        self._edited += edited
        return self._sink.write(frames)

    def end_segment(self, segment: Segment, end: Fraction, report: dict[str, object]) -> None:
        sink, self._sink = self._sink, None
        assert sink is not None
        sink.close(end, end)
        self.segment_notes = self.segment_notes or sink.notes
        del sink  # its encoder with it, before the memory it freed is handed back
        release_freed_memory()
        path = self._path(segment.index)
        entry = DoneSegment(
            segment.index, path.name, segment.own, self._first_pts, self._last_pts, path.stat().st_size, self._faces, self._edited, report
        )
        self.record(entry)

    def record(self, entry: DoneSegment) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        if self._sink is not None:
            self._sink.abort()
            self._sink = None

    def _path(self, index: int) -> Path:
        return self.folder / f"seg-{index:06d}.mp4"


class SegmentFiles(SegmentEncoder):
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
        self.lock = StateLock(final)
        super().__init__(final, self.lock.folder, encode, rate=rate, traits=traits)
        self.audio = audio
        self.resume = resume
        self.journal = Journal(key, "")
        self.resumed = 0  # finished segments taken over from an earlier run
        self.restarted = False  # an earlier run's segments were there but not usable (other inputs or options)

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

    def record(self, entry: DoneSegment, time_base: str = "", notes: tuple[str, ...] = ()) -> None:
        """Journal a finished segment (this run's, or one a worker wrote into the folder with its time base and notes)."""
        if not self.journal.time_base:  # the journal's timestamps are output pts in the frames' time base
            self.journal.time_base = time_base or self.time_base
        if not self.journal.notes:
            self.journal.notes = notes or self.segment_notes
        self.journal.segments[entry.index] = entry
        try:
            self.journal.save(self.folder / JOURNAL)
        except OSError as exc:
            raise output_error(exc, self.final) from None

    def finish(self, video_end: Fraction, audio_end: Fraction, stop: threading.Event) -> bytes:
        paths = [self.folder / entry.file for _, entry in sorted(self.journal.segments.items())]
        join_segments(paths, self.final, self.audio, self.encode, video_end=video_end, audio_end=audio_end, stop=stop)
        return b""

    def close(self, success: bool) -> None:
        """Release the folder: removed after success, and after a failure unless the run is resumable."""
        self.lock.release(remove=success or not self.resume)


class SegmentRange(SegmentEncoder):
    """Some segments of a file output, encoded by a worker into the state folder of a run that holds its lock.

    Only the segments in `indices` are processed; the others are decoded
    through (so each one starts from the same frames as in a one-process
    run). Finished ones are kept in `done` for the run to journal; `finish`
    joins nothing.
    """

    def __init__(
        self,
        final: Path,
        indices: Sequence[int],
        encode: EncodeConfig,
        *,
        rate: Fraction,
        traits: VideoTraits,
        on_begin: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(final, state_folder(final), encode, rate=rate, traits=traits)
        self.indices = frozenset(indices)
        self.done: list[DoneSegment] = []
        self._on_begin = on_begin

    def begin(self, segment: Segment) -> None:
        if self._on_begin is not None:
            self._on_begin(segment.index)
        super().begin(segment)

    @property
    def notes(self) -> tuple[str, ...]:
        return self.segment_notes

    def skip(self, index: int) -> bool:
        return index not in self.indices

    def skipped(self, index: int) -> DoneSegment | None:
        return None

    def record(self, entry: DoneSegment) -> None:
        self.done.append(entry)

    def finish(self, video_end: Fraction, audio_end: Fraction, stop: threading.Event) -> bytes:
        return b""
