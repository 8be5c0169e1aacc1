"""Encode and mux the output incrementally: a file, a pipe or fragment callbacks.

A file is written beside its destination under a temporary name and renamed
only when complete, so OUT is never half-written. Pipes and fragment
consumers get a container that never seeks (fragmented MP4 or Matroska).
The new audio is encoded as AAC in step with the video (never past the last
video frame, whose end is only known at the close) so the output is
interleaved at every point and ends exactly when the audio should.
"""

from __future__ import annotations

import logging
import os
import secrets
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Sequence

import av
import numpy as np

from lipstream.config import EncodeConfig
from lipstream.errors import InputError, MediaError

from .audio import AudioInput
from .frames import I420, Frame, Patch, plane_view, rgb_to_i420

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
    ) -> None:
        """`target`: a path, a binary pipe (stdout), or None to hand bytes back from `write`."""
        self.config = config
        self._rate = rate
        self._path: Path | None = None
        self._tmp: Path | None = None
        self._pipe: BinaryIO | None = None
        self._collector: _Collector | None = None
        if isinstance(target, Path):
            fmt = file_format(target)
            self._path = target
            self._tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
            options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
            self._container = av.open(str(self._tmp), "w", format=fmt, options=options)
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
        self._video: av.VideoStream | None = None
        self._size: tuple[int, int] | None = None
        self._audio_input = audio
        self._audio: _AudioTrack | None = None
        self.end_time = Fraction(0)
        self._closed = False

    def write(self, frames: Sequence[Frame]) -> bytes:
        """Encode `frames`, mux the audio up to them; return bytes for a fragment consumer."""
        for frame in frames:
            if self._video is None:
                self._open_video(frame)
            packet_frame = self._to_yuv(frame)
            packet_frame.pts = frame.pts
            packet_frame.time_base = frame.time_base
            # A decoded frame keeps its source picture type, which x264 obeys (I forces a
            # keyframe); the encoder chooses, so edited and untouched frames code alike.
            packet_frame.pict_type = av.video.frame.PictureType.NONE
            self._mux(self._video.encode(packet_frame))
            self.end_time = frame.time
        if frames and self._audio is not None:
            self._audio.write_until(self.end_time)
        return self._drain()

    def close(self, video_end: Fraction, audio_end: Fraction) -> bytes:
        """Flush everything, finish the audio at `audio_end`, and publish the file."""
        if self._video is None:
            raise MediaError("no video frames were produced; the input video may be empty")
        self._mux(self._video.encode(None))
        if self._audio is not None:
            self._audio.write_until(audio_end, final=True)
        self._container.close()
        self._closed = True
        self.end_time = video_end
        if self._tmp is not None and self._path is not None:
            os.replace(self._tmp, self._path)
        return self._drain()

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

    def _open_video(self, frame: Frame) -> None:
        width, height = frame.size
        even = (width - width % 2, height - height % 2)
        if min(even) < 2:
            raise MediaError(f"the video is {width}x{height}; at least 2x2 pixels are needed")
        if even != (width, height):
            log.info("output cropped from %dx%d to %dx%d (yuv420p needs even sizes)", width, height, *even)
        stream = self._container.add_stream(self.config.codec, rate=self._rate)
        stream.width, stream.height = even
        stream.pix_fmt = "yuv420p"
        stream.time_base = frame.time_base
        stream.codec_context.time_base = frame.time_base
        stream.codec_context.thread_type = "AUTO"
        options = {"crf": str(self.config.crf), "preset": self.config.preset}
        if self.config.tune:
            options["tune"] = self.config.tune
        if self.config.x264_params and self.config.codec == "libx264":
            options["x264-params"] = self.config.x264_params
        stream.options = options
        self._video = stream
        self._size = even
        if self._audio_input is not None:  # after the video, so video is stream 0
            self._audio = _AudioTrack(self._container, self._audio_input, self.config)

    def _to_yuv(self, frame: Frame) -> av.VideoFrame:
        width, height = self._size
        decoded = frame.decoded
        plain = frame.image is None and not frame.rotation and decoded is not None and (decoded.width, decoded.height) == (width, height)
        if plain and frame.patch is None:
            return decoded if decoded.format.name == "yuv420p" else decoded.reformat(format="yuv420p")
        if plain and frame.patch is not None and decoded.format.name in I420:
            return _patched(decoded, frame.patch)
        rgb = frame.rgb()
        if rgb.shape[:2] != (height, width):
            rgb = rgb[:height, :width] if rgb.shape[0] >= height and rgb.shape[1] >= width else _fit(rgb, width, height)
        return av.VideoFrame.from_ndarray(rgb_to_i420(rgb), format="yuv420p")

    def _mux(self, packets: Sequence[av.Packet]) -> None:
        for packet in packets:
            self._container.mux(packet)

    def _drain(self) -> bytes:
        if self._collector is None:
            return b""
        data = self._collector.take()
        if self._pipe is not None and data:
            self._pipe.write(data)
            self._pipe.flush()
            return b""
        return data


def _patched(decoded: av.VideoFrame, patch: Patch) -> av.VideoFrame:
    """A copy of the decoded picture with only the patch's box converted and replaced.

    The region goes through the inverse of the converter that made the
    stages' RGB, so its untouched pixels round-trip to their own values and
    no edge shows. Planes are copied buffer to buffer (one memcpy each).
    """
    x0, y0, x1, y1 = patch.box
    out = av.VideoFrame(decoded.width, decoded.height, "yuv420p")
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


class _AudioTrack:
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
