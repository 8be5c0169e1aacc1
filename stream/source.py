"""Decode a video stream into frames with exact timing, forwards or backwards.

Timing is kept as integer pts in the stream's time base relative to the
stream's start, so variable frame rate survives untouched. Backward reading
(ping-pong) decodes short forward runs after a seek and reverses them, so it
holds at most one run of frames.
"""

from __future__ import annotations

import logging
from array import array
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterator

import av

from lipstream.errors import MediaError

from .inputs import describe, open_container

log = logging.getLogger(__name__)

DecodedFrame = tuple[int, int, av.VideoFrame]  # (source index, pts from start, frame)

_MOOV_HINT = (
    "an MP4 whose index (moov) is at the end cannot be read from a pipe; "
    "pass it as a file path, remux it with `ffmpeg -i IN -c copy -movflags +faststart OUT.mp4`, "
    "or send Matroska (mkv) instead"
)


class VideoSource:
    """The first video stream of a file or pipe."""

    BACKWARD_RUN = 16

    def __init__(self, source: str | Path | BinaryIO) -> None:
        self.name = describe(source)
        self.seekable = isinstance(source, (str, Path))
        self._source = source
        self._container = open_container(source, "video")
        if not self._container.streams.video:
            self._container.close()
            raise MediaError(f"{self.name} has no video stream; pass a video file as VIDEO")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        ctx = self._stream.codec_context
        if ctx.width <= 0 or ctx.height <= 0:
            self._container.close()
            raise MediaError(f"{self.name}: the video stream has no picture size; the file may be truncated")
        self.time_base: Fraction = self._stream.time_base or Fraction(1, 90000)
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        self.average_rate: Fraction = Fraction(rate) if rate else Fraction(25)
        self.rotation = 0  # known after the first decoded frame
        self._start: int | None = self._stream.start_time
        self._pts = array("q")  # pts of every frame seen going forward; only backward reads need it
        duration = self._stream.duration
        self.duration: Fraction | None = duration * self.time_base if duration else (
            Fraction(self._container.duration, av.time_base) if self._container.duration else None
        )

    @property
    def nominal_step(self) -> int:
        """One frame's duration in pts, from the average rate (used where no delta exists)."""
        return max(1, round(1 / (self.average_rate * self.time_base)))

    @property
    def frame_duration(self) -> Fraction:
        """`nominal_step` in seconds: how long the last frame is shown."""
        return self.nominal_step * self.time_base

    @property
    def frames_seen(self) -> int:
        return len(self._pts)

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def forward(self) -> Iterator[DecodedFrame]:
        """Every frame once, in presentation order."""
        index = 0
        last_pts: int | None = None
        for frame in self._decode():
            pts = self._relative_pts(frame, last_pts)
            if last_pts is not None and pts <= last_pts:
                log.debug("dropping frame with non-increasing pts %s after %s", pts, last_pts)
                continue
            if index == 0:
                self.rotation = int(frame.rotation or 0) % 360
            self._pts.append(pts)
            last_pts = pts
            yield index, pts, frame
            index += 1
        if index == 0:
            raise MediaError(f"{self.name}: the video stream has no decodable frames")

    def backward(self, first: int, last: int) -> Iterator[DecodedFrame]:
        """Frames `last` down to `first` (inclusive), for ping-pong; needs a seekable file."""
        if not self.seekable:
            raise MediaError(f"{self.name} is a pipe and cannot be read backwards")
        hi = last
        while hi >= first:
            lo = max(first, hi - self.BACKWARD_RUN + 1)
            wanted = {self._pts[i]: i for i in range(lo, hi + 1)}
            run: list[DecodedFrame] = []
            self._container.seek(self._absolute(self._pts[lo]), stream=self._stream, backward=True, any_frame=False)
            for frame in self._decode():
                pts = self._relative_pts(frame, None)
                if pts in wanted:
                    run.append((wanted[pts], pts, frame))
                if pts >= self._pts[hi]:
                    break
            if len(run) != hi - lo + 1:
                raise MediaError(f"{self.name}: seeking back to frame {lo} failed; re-encode the file or use --fit shortest")
            yield from reversed(run)
            hi = lo - 1

    def replay(self, first: int) -> Iterator[DecodedFrame]:
        """Frames `first` to the last one seen going forward, decoded again after a seek."""
        if not self.seekable:
            raise MediaError(f"{self.name} is a pipe and cannot be replayed")
        start = self._pts[first]
        self._container.seek(self._absolute(start), stream=self._stream, backward=True, any_frame=False)
        index = first
        for frame in self._decode():
            pts = self._relative_pts(frame, None)
            if pts < start:
                continue
            if index >= len(self._pts):
                return
            if pts != self._pts[index]:
                continue  # a frame the forward pass dropped as out of order
            yield index, pts, frame
            index += 1

    def skim(self, step: int = 1, keys: bool = False) -> Iterator[DecodedFrame]:
        """Every `step`-th of the frames other frames depend on (`keys`: of the keyframes), the rest not decoded.

        For looking over a whole file before the job: keyframes cost next to
        nothing to find (a few per minute of video), reference frames about
        half the decoding. The index is the frame's position estimated from its time.
        """
        self._stream.codec_context.skip_frame = "NONKEY" if keys else "NONREF"
        try:
            for n, frame in enumerate(self._decode()):
                if n == 0:
                    self.rotation = int(frame.rotation or 0) % 360
                if n % step == 0:
                    pts = self._relative_pts(frame, None)
                    yield round(pts * self.time_base * self.average_rate), pts, frame
        finally:
            self._stream.codec_context.skip_frame = "DEFAULT"

    def _decode(self) -> Iterator[av.VideoFrame]:
        first = True
        try:
            for frame in self._container.decode(self._stream):
                first = False
                yield frame
        except av.error.InvalidDataError as exc:
            if first and not self.seekable:
                raise MediaError(f"cannot decode video from {self.name}: {_MOOV_HINT}") from None
            raise MediaError(f"{self.name}: corrupt video data ({exc}); re-encode or repair the file") from None
        except av.error.FFmpegError as exc:
            raise MediaError(f"{self.name}: video decoding failed ({exc})") from None

    def _relative_pts(self, frame: av.VideoFrame, previous: int | None) -> int:
        pts = frame.pts
        if pts is None:
            return 0 if previous is None else previous + self.nominal_step
        if self._start is None:
            self._start = pts
        return pts - self._start

    def _absolute(self, pts: int) -> int:
        return pts + (self._start or 0)
