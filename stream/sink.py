"""Encode and mux the output incrementally: a file, a pipe or fragment callbacks.

A file is written beside its destination under a temporary name and renamed
only when complete, so OUT is never half-written. Pipes and fragment
consumers get a container that never seeks (fragmented MP4 or Matroska).
The new audio is encoded as AAC in step with the video (never past the last
video frame, whose end is only known at the close) so the output is
interleaved at every point and ends exactly when the audio should.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import os
import sys
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

import av
import numpy as np

from lipstream.config import EncodeConfig
from lipstream.errors import InputError, MediaError, OutputError, ReaderGone

from .audio import AudioInput
from .encoding import Encoding, VideoTraits, choose_encoding, output_time_base
from .frames import I420, Frame, Patch, plane_view, rgb_to_i420
from .partials import output_error, partial_path

log = logging.getLogger(__name__)

FILE_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".ts": "mpegts"}
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


def file_format(path: Path) -> str:
    """The muxer for an output path, or an InputError naming the supported endings."""
    fmt = FILE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"cannot write {path.name}: unknown output type {path.suffix or '(none)'}; use .mp4, .mov, .mkv or .ts")
    return fmt


def check_output(output: Path, *inputs: str | Path | BinaryIO) -> None:
    """Refuse outputs that would overwrite an input or that cannot be written."""
    if output.is_dir():
        raise OutputError(f"the output {output} is a folder; name a file, e.g. {output / 'out.mp4'}")
    file_format(output)
    for source in inputs:
        if isinstance(source, (str, Path)) and Path(source).exists() and output.exists() and output.samefile(source):
            raise InputError(f"the output {output} is one of the inputs; choose another output path")
    if not output.parent.exists():
        raise InputError(f"the output folder {output.parent} does not exist; create it or choose another path")


class _Collector:
    """A write-only byte sink: the muxer cannot seek, and bytes are taken out as they come."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class Sink:
    """Owns the output container; `write` is called with frames in output order."""

    def __init__(
        self,
        target: Path | BinaryIO | None,
        audio: AudioInput | None,
        config: EncodeConfig = EncodeConfig(),
        *,
        rate: Fraction = Fraction(25),
        traits: VideoTraits = VideoTraits(),
        muxer: str | None = None,
        durable: bool = False,
        part_of: Path | None = None,
    ) -> None:
        """`target`: a path, a binary pipe (stdout), or None to hand bytes back from `write`.

        `traits` describe the input so the output can follow it; `muxer` forces
        a container format for a path; `durable` syncs the file to disk before
        it is renamed into place (segments that must survive a crash);
        `part_of` is the output errors name when `target` is a piece of it.
        """
        self.config = config
        self._rate = rate
        self._traits = traits
        self._durable = durable
        self._part_of = part_of
        self._path: Path | None = None
        self._tmp: Path | None = None
        self._pipe: BinaryIO | None = None
        self._collector: _Collector | None = None
        if isinstance(target, Path):
            fmt = muxer or file_format(target)
            self._path = target
            self._tmp = partial_path(target)
            options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") and muxer is None else {}
            try:
                self._container = av.open(str(self._tmp), "w", format=fmt, options=options)
            except OSError as exc:
                raise output_error(exc, part_of or target) from None
        else:
            self._collector = _Collector()
            self._pipe = target
            if config.container == "mkv":
                fmt, options = "matroska", {}
            else:
                fmt = "mp4"
                options = {
                    # delay_moov lets the init segment carry the AAC priming as an
                    # edit list; without it audio plays 1024 samples late.
                    "movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof",
                    "frag_duration": str(int(config.fragment_seconds * 1_000_000)),
                }
            options["avoid_negative_ts"] = "disabled"
            self._container = av.open(self._collector, "w", format=fmt, options=options)
        self.format = fmt
        self.encoding: Encoding | None = None
        self._video: av.VideoStream | None = None
        self._packets: VideoPackets | None = None
        self._canvas: av.VideoFrame | None = None  # the edited frames' picture, reused (see _patched)
        self._size: tuple[int, int] | None = None
        self._audio_input = audio
        self._audio: AudioTrack | None = None
        self.end_time = Fraction(0)
        self._closed = False

    @property
    def notes(self) -> tuple[str, ...]:
        """What the output changed about the picture (size, pixel format), one line each."""
        return self.encoding.notes if self.encoding is not None else ()

    def write(self, frames: Sequence[Frame]) -> bytes:
        """Encode `frames`, mux the audio up to them; return bytes for a fragment consumer."""
        try:
            for frame in frames:
                if self._video is None:
                    self._open_video(frame)
                assert self._packets is not None
                packet_frame = self._to_yuv(frame)
                packet_frame.pts = self._packets.ticks(frame.pts, frame.time_base)
                packet_frame.time_base = self._packets.time_base
                # A decoded frame keeps its source picture type, which x264 obeys (I forces a
                # keyframe); the encoder chooses, so edited and untouched frames code alike.
                packet_frame.pict_type = av.video.frame.PictureType.NONE
                self._packets.add(self._video.encode(packet_frame))
                self.end_time = frame.time
            if frames and self._audio is not None:
                self._audio.write_until(self.end_time)
            return self._drain()
        except OSError as exc:
            raise self._error(exc) from None

    def close(self, video_end: Fraction, audio_end: Fraction) -> bytes:
        """Flush everything, end the video at `video_end` and the audio at `audio_end`, and publish the file."""
        if self._video is None or self._packets is None:
            raise MediaError("no video frames were produced; the input video may be empty")
        try:
            self._packets.add(self._video.encode(None))
            self._packets.finish(video_end)
            if self._audio is not None:
                self._audio.write_until(audio_end, final=True)
            self._container.close()
            self._closed = True
            self.end_time = video_end
            if self._tmp is not None and self._path is not None:
                if self._durable:
                    sync_path(self._tmp)
                os.replace(self._tmp, self._path)
                if self._durable:
                    sync_path(self._path.parent)
            return self._drain()
        except OSError as exc:
            raise self._error(exc) from None

    def abort(self) -> None:
        """Drop the output: close quietly and remove the temporary file."""
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
            except Exception:  # the container may be half-initialised; nothing to keep
                log.debug("closing an aborted output failed", exc_info=True)
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def _error(self, exc: OSError) -> Exception:
        if self._path is not None:
            return output_error(exc, self._part_of or self._path)
        return pipe_error(exc)

    def _open_video(self, frame: Frame) -> None:
        width, height = frame.size
        if min(width - width % 2, height - height % 2) < 2:
            raise MediaError(f"the video is {width}x{height}; at least 2x2 pixels are needed")
        encoding = choose_encoding(self.config, self._traits, (width, height))
        for note in encoding.notes:
            log.info("%s", note)
        stream = self._container.add_stream(encoding.encoder, rate=self._rate)
        stream.width, stream.height = encoding.width, encoding.height
        stream.pix_fmt = encoding.pix_fmt
        time_base = output_time_base(frame.time_base)
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.codec_context.thread_type = "AUTO"
        if encoding.threads:
            stream.codec_context.thread_count = encoding.threads
        stream.options = dict(encoding.options)
        if self.format in ("mp4", "mov"):  # edit lists in the track's own ticks: exact, not rounded to ms
            self._container.options["movie_timescale"] = str(time_base.denominator)
        self.encoding = encoding
        self._video = stream
        self._packets = VideoPackets(self._container, time_base)
        self._size = (encoding.width, encoding.height)
        if self._audio_input is not None:  # after the video, so video is stream 0
            self._audio = AudioTrack(self._container, self._audio_input, self.config)

    def _to_yuv(self, frame: Frame) -> av.VideoFrame:
        assert self._size is not None
        width, height = self._size
        decoded = frame.decoded
        plain = frame.image is None and not frame.rotation and decoded is not None and (decoded.width, decoded.height) == (width, height)
        if plain and frame.patch is None:
            return decoded if decoded.format.name == "yuv420p" else decoded.reformat(format="yuv420p")
        if plain and frame.patch is not None and decoded.format.name in I420:
            if self._canvas is None or (self._canvas.width, self._canvas.height) != (decoded.width, decoded.height):
                self._canvas = av.VideoFrame(decoded.width, decoded.height, "yuv420p")
            return patched_picture(decoded, frame.patch, self._canvas)
        rgb = frame.rgb()
        if rgb.shape[:2] != (height, width):
            rgb = rgb[:height, :width] if rgb.shape[0] >= height and rgb.shape[1] >= width else _fit(rgb, width, height)
        return av.VideoFrame.from_ndarray(rgb_to_i420(rgb), format="yuv420p")

    def _drain(self) -> bytes:
        if self._collector is None:
            return b""
        data = self._collector.take()
        if self._pipe is not None and data:
            self._pipe.write(data)
            self._pipe.flush()
            return b""
        return data


class VideoPackets:
    """Muxes encoded video, holding back the last few packets so the last frame ends exactly at the output's end.

    Containers take a track's end from its last packets' durations, which the
    encoder sets from the frame rate, so a frame cut short by the audio
    (29.97 fps) or held across a gap in a variable-rate input would end early
    or late. At the end the latest-shown packet and the last-decoded one
    (with B-frames they differ) get the duration that ends the track on time.
    """

    HOLD = 32  # more than any encoder's reordering depth

    def __init__(self, container: av.container.OutputContainer, time_base: Fraction) -> None:
        self._container = container
        self.time_base = time_base
        self._held: deque[av.Packet] = deque()

    def ticks(self, pts: int, time_base: Fraction) -> int:
        """`pts` in `time_base` as a whole number of this stream's ticks (exact: see output_time_base)."""
        return round(pts * time_base / self.time_base)

    def add(self, packets: Sequence[av.Packet]) -> None:
        for packet in packets:
            self._held.append(packet)
            if len(self._held) > self.HOLD:
                self._container.mux(self._held.popleft())

    def finish(self, end: Fraction) -> None:
        """Mux the held packets, the track ending at `end` seconds."""
        timed = [p for p in self._held if p.pts is not None]
        if timed:
            latest = max(timed, key=lambda p: p.pts)
            duration = max(1, round(end / self.time_base) - latest.pts)
            latest.duration = duration
            self._held[-1].duration = duration
        while self._held:
            self._container.mux(self._held.popleft())


def pipe_error(exc: OSError) -> Exception:
    """A closed reader is `ReaderGone`; any other failure of stdout is an `OutputError` naming it."""
    if isinstance(exc, BrokenPipeError) or getattr(exc, "errno", None) == errno.EPIPE:
        return ReaderGone("the reader of standard output closed the pipe before the end; the output is incomplete")
    reason = getattr(exc, "strerror", None) or str(exc)
    return OutputError(f"cannot write to standard output: {reason}; redirect it to a file or a pipe, or use -o FILE")


def sync_path(path: Path) -> None:
    """fsync a file or folder so a rename is durable across a crash (best effort where a folder cannot be synced)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        log.debug("cannot fsync %s", path, exc_info=True)
    finally:
        os.close(fd)


def release_freed_memory() -> None:
    """Hand the memory free inside glibc's arenas back to the system (elsewhere there is nothing to do).

    A closed encoder frees its buffers (x265 at 1080x1920: ~245 MB), but once
    glibc has seen blocks of a few MB freed it serves the next ones from its
    arenas rather than mapping them, and keeps what it frees there: each new
    segment's encoder then grew a 1080x1920 exemplar job by 70-100 MB, up to
    1000 MB instead of 760. One `malloc_trim` after a segment (~20 ms) keeps
    it level; holding the mapping threshold instead cost network engines
    seconds of page faults.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # a libc without it (musl) keeps nothing to trim
        return None


def patched_picture(decoded: av.VideoFrame, patch: Patch, out: av.VideoFrame | None = None) -> av.VideoFrame:
    """A copy of the decoded picture with only the patch's box converted and replaced, in `out` (reused) or a new one.

    The region goes through the inverse of the converter that made the
    stages' RGB, so its untouched pixels round-trip to their own values and
    no edge shows. Planes are copied buffer to buffer (one memcpy each).
    The encoders copy a frame they are given, so one `out` serves every
    edited frame (`make_writable` copies it first if one kept it): a fresh
    3 MB picture per 1080x1920 frame was allocator churn for nothing.
    """
    x0, y0, x1, y1 = patch.box
    if out is None:
        out = av.VideoFrame(decoded.width, decoded.height, "yuv420p")
    out.make_writable()
    targets = [plane_view(p) for p in out.planes]
    for source, target in zip(decoded.planes, targets):
        target[...] = plane_view(source)
    h, w = y1 - y0, x1 - x0
    region = rgb_to_i420(patch.rgb).reshape(-1)
    luma, quarter = h * w, (h // 2) * (w // 2)
    targets[0][y0:y1, x0:x1] = region[:luma].reshape(h, w)
    targets[1][y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = region[luma : luma + quarter].reshape(h // 2, w // 2)
    targets[2][y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = region[luma + quarter :].reshape(h // 2, w // 2)
    return out


def _fit(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pad or crop a frame whose size changed mid-stream to the output size."""
    out = np.zeros((height, width, 3), np.uint8)
    h, w = min(height, rgb.shape[0]), min(width, rgb.shape[1])
    out[:h, :w] = rgb[:h, :w]
    return out


class AudioTrack:
    """AAC encoding of the new audio, advanced to a time on request, padded with silence past its end."""

    def __init__(self, container: av.container.OutputContainer, audio: AudioInput, config: EncodeConfig) -> None:
        self.rate = audio.rate if audio.rate in AAC_RATES else 48000
        self.layout = "mono" if audio.channels == 1 else "stereo"
        self.stream = container.add_stream("aac", rate=self.rate, layout=self.layout)
        self.stream.bit_rate = config.audio_bitrate
        self.stream.time_base = Fraction(1, self.rate)
        self._container = container
        self._source = audio.chunks(self.rate, self.layout, "fltp")
        self._fifo = av.AudioFifo()
        self._source_done = False
        self._written = 0  # samples handed to the encoder
        self._frame_size = self.stream.codec_context.frame_size or 1024

    def write_until(self, t: Fraction, final: bool = False) -> None:
        """Encode the audio up to time `t`; only whole AAC frames unless this is the end."""
        target = int(t * self.rate)
        while self._written + self._fifo.samples < target and not self._source_done:
            chunk = next(self._source, None)
            if chunk is None:
                self._source_done = True
            else:
                chunk.pts = None
                self._fifo.write(chunk)
        missing = target - self._written - self._fifo.samples
        if missing > 0:
            self._fifo.write(self._silence(missing))
        while self._written + self._frame_size <= target:
            self._encode(self._fifo.read(self._frame_size))
        if final:
            if target > self._written:
                self._encode(self._fifo.read(target - self._written))
            for packet in self.stream.encode(None):
                self._container.mux(packet)

    def _encode(self, frame: av.AudioFrame) -> None:
        frame.pts = self._written
        frame.time_base = Fraction(1, self.rate)
        self._written += frame.samples
        for packet in self.stream.encode(frame):
            self._container.mux(packet)

    def _silence(self, samples: int) -> av.AudioFrame:
        channels = 1 if self.layout == "mono" else 2
        frame = av.AudioFrame.from_ndarray(np.zeros((channels, samples), np.float32), format="fltp", layout=self.layout)
        frame.sample_rate = self.rate
        return frame
