"""Decode a video stream into frames with exact timing, forwards or backwards.

Timing is kept as integer pts in the stream's time base relative to the
stream's start, so variable frame rate survives untouched. Backward reading
(ping-pong) decodes short forward runs after a seek and reverses them, so it
holds at most one run of frames.

Damaged input does not stop the run: packets the decoder rejects are
counted and skipped, and `damaged` adds the frames an index promised but a
truncated file no longer holds, so the job can say how much was lost.
"""

from __future__ import annotations

import bisect
import logging
from array import array
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterator

import av

from lipstream.errors import MediaError

from .encoding import VideoTraits
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
        self._index: list[int] | None = None  # from the packets: [] when not trustworthy (see frame_index)
        self._keyframes: list[int] = []  # frame numbers of the keyframes, with the index
        duration = self._stream.duration
        self.duration: Fraction | None = duration * self.time_base if duration else (
            Fraction(self._container.duration, av.time_base) if self._container.duration else None
        )
        # The video track's own length from an index (MP4/MOV), the yardstick for truncation;
        # a container's duration may be the audio's, so it is not used here.
        self.declared_duration: Fraction | None = duration * self.time_base if duration else None
        self.declared_frames: int = self._stream.frames or 0
        self.traits = VideoTraits(ctx.name, self._video_bit_rate(), ctx.format.name if ctx.format else None)
        self.rejected = 0  # packets the decoder refused going forward
        self.reached_end = False  # the forward pass decoded the whole stream

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

    @property
    def damaged(self) -> int:
        """Frames lost to damage so far: refused packets, or frames an index promised that never came."""
        missing = self.declared_frames - self.frames_seen if self.reached_end and self.declared_frames else 0
        return max(self.rejected, missing)

    def _video_bit_rate(self) -> int | None:
        """The video stream's bits/s: declared, or the container's minus its audio, or the file's size over its length."""
        if self._stream.bit_rate:
            return int(self._stream.bit_rate)
        audio = sum(a.bit_rate or 0 for a in self._container.streams.audio)
        total = self._container.bit_rate
        if not total and self.seekable and self.duration:
            total = int(Path(self._source).stat().st_size * 8 / self.duration)  # type: ignore[arg-type]
        return int(total - audio) if total and total > audio else None

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frame_index(self) -> list[int] | None:
        """Every frame's pts in presentation order, from the packets alone (no decoding), or None when
        they cannot be trusted to match what decoding gives (a pipe, packets without or with repeated
        pts, fewer packets than the index declares): then only decoding from the start is exact."""
        if not self.seekable:
            return None
        if self._index is not None:
            return self._index or None
        found: list[int] = []
        keys: list[int] = []
        try:
            with open_container(self._source, "video") as container:
                stream = container.streams.video[0]
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue
                    if packet.pts is None:
                        found = []
                        break
                    found.append(packet.pts)
                    if packet.is_keyframe:
                        keys.append(packet.pts)
        except (av.error.FFmpegError, MediaError):
            found = []
        found.sort()
        position = {pts: k for k, pts in enumerate(found)}
        self._keyframes = sorted(position[pts] for pts in keys if pts in position)
        if self._start is None and found:
            self._start = found[0]  # what the first decoded frame would have set
        start = self._start if self._start is not None else 0
        clean = bool(found) and len(set(found)) == len(found) and (not self.declared_frames or len(found) == self.declared_frames)
        self._index = [pts - start for pts in found] if clean else []
        return self._index or None

    def keyframe_before(self, index: int) -> int:
        """The number of the last keyframe at or before frame `index` (where decoding after a seek to it begins)."""
        self.frame_index()
        return self._keyframes[bisect.bisect_right(self._keyframes, index) - 1] if self._keyframes and index >= self._keyframes[0] else 0

    def forward(self, start: int = 0) -> Iterator[DecodedFrame]:
        """Every frame once, in presentation order; from frame `start` on, after a seek, when `frame_index()` holds.

        Seeking lands on the keyframe at or before the frame and decodes up to it, so the frames
        from `start` on are the ones decoding from the beginning gives (the index tells their number).
        """
        index = 0
        last_pts: int | None = None
        first = True
        known = self.frame_index() if start > 0 else None
        if known is not None and start < len(known):
            self._pts = array("q", known[:start])
            index, last_pts = start, known[start - 1]
            self._container.seek(self._absolute(known[start]), stream=self._stream, backward=True, any_frame=False)
        else:
            known = None  # from the beginning: nothing to check against
        for frame in self._decode(forward=True):
            pts = self._relative_pts(frame, last_pts)
            if last_pts is not None and pts <= last_pts:
                log.debug("dropping frame with non-increasing pts %s after %s", pts, last_pts)
                continue
            if known is not None and (index >= len(known) or pts != known[index]):
                raise MediaError(f"{self.name}: frame {index} decoded after a seek is not the one the index names; re-encode the file")
            if first:
                self.rotation = int(frame.rotation or 0) % 360
                first = False
            self._pts.append(pts)
            last_pts = pts
            yield index, pts, frame
            index += 1
        if index == 0:
            raise MediaError(f"{self.name}: the video stream has no decodable frames")
        self.reached_end = True

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

    def _decode(self, forward: bool = False) -> Iterator[av.VideoFrame]:
        """Decoded frames; a packet the decoder refuses is skipped (and counted going `forward`)."""
        first = True
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError as exc:  # the container itself is cut or broken here: nothing more to read
                if first and not self.seekable and isinstance(exc, av.error.InvalidDataError):
                    raise MediaError(f"cannot decode video from {self.name}: {_MOOV_HINT}") from None
                log.info("%s: reading stopped early (%s)", self.name, exc)
                if forward:
                    self.rejected += 1
                return
            try:
                frames = packet.decode()
            except av.error.InvalidDataError as exc:
                if first and not self.seekable:
                    raise MediaError(f"cannot decode video from {self.name}: {_MOOV_HINT}") from None
                log.debug("%s: skipped a damaged packet at pts %s (%s)", self.name, packet.pts, exc)
                if forward:
                    self.rejected += 1
                continue
            except av.error.FFmpegError as exc:
                raise MediaError(f"{self.name}: video decoding failed ({exc})") from None
            for frame in frames:
                first = False
                yield frame

    def _relative_pts(self, frame: av.VideoFrame, previous: int | None) -> int:
        pts = frame.pts
        if pts is None:
            return 0 if previous is None else previous + self.nominal_step
        if self._start is None:
            self._start = pts
        return pts - self._start

    def _absolute(self, pts: int) -> int:
        return pts + (self._start or 0)
