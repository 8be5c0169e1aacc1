"""Fragmented MP4 for a live stream, ready for a `<video>` element through Media Source Extensions.

A live stream has no end and no file: each frame is encoded as it is made
and the bytes the muxer produced are handed back at once. Video and audio
are two fragmented MP4 streams (one track each), because one muxer holding
both waits to interleave them and then cuts fragments with the wrong
durations; a player gives each its own SourceBuffer of one MediaSource.

- video: H.264 constrained baseline, no B-frames, x264's zero-latency
  tuning, one fragment per frame, a keyframe every second (a player can
  join or recover there);
- audio: Opus, 20 ms frames, a fragment per frame too; encoded at 48 kHz
  (the input resampled), the only rate browsers accept in MP4.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from .sink import _Collector

__all__ = ["LiveMuxer"]

_OPUS_RATE = 48000
_FRAGMENTS = {"movflags": "frag_every_frame+empty_moov+default_base_moof", "avoid_negative_ts": "disabled"}


class LiveMuxer:
    """Encodes the frames of a live stream, with their audio, into two fragmented MP4 byte streams."""

    def __init__(self, width: int, height: int, fps: int, rate: int = 16000, *, crf: int = 23, keyframe_seconds: float = 1.0) -> None:
        self.fps = fps
        self.rate = rate
        self._video_bytes, self._audio_bytes = _Collector(), _Collector()
        self._video_out = av.open(self._video_bytes, "w", format="mp4", options=dict(_FRAGMENTS))
        self._audio_out = av.open(self._audio_bytes, "w", format="mp4", options=dict(_FRAGMENTS))
        video = self._video_out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = video.codec_context.time_base = Fraction(1, fps)
        video.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "crf": str(crf),
            "g": str(max(1, round(keyframe_seconds * fps))),
            "threads": "1",
        }
        audio = self._audio_out.add_stream("libopus", rate=_OPUS_RATE, layout="mono")
        audio.bit_rate = 32000
        audio.time_base = Fraction(1, _OPUS_RATE)
        audio.options = {"application": "lowdelay", "frame_duration": "20"}
        self._video, self._audio = video, audio
        self._fifo = av.AudioFifo()
        self._audio_next: int | None = None  # sample position of the next audio frame to encode
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=_OPUS_RATE)
        self._frame_size = audio.codec_context.frame_size or _OPUS_RATE // 50
        self._keyframe = False

    @property
    def video_mime(self) -> str:
        """For `MediaSource.isTypeSupported` / `addSourceBuffer` (exact after the first write)."""
        extra = self._video.codec_context.extradata or b""
        avc = f"avc1.{extra[1]:02X}{extra[2]:02X}{extra[3]:02X}" if len(extra) > 3 and extra[0] == 1 else "avc1.42E01F"
        return f'video/mp4; codecs="{avc}"'

    @property
    def audio_mime(self) -> str:
        return 'audio/mp4; codecs="opus"'

    def keyframe(self) -> None:
        """Make the next frame a keyframe (after frames were dropped, a player can resume there)."""
        self._keyframe = True

    def write(self, tick: int, picture: np.ndarray, audio: np.ndarray) -> tuple[bytes, bytes]:
        """Encode frame `tick` (packed I420) and its audio (int16 mono, starting at the frame's time).

        Returns the (video, audio) bytes produced; the first call's carry the init segments.
        """
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        frame.pts = tick
        frame.time_base = Fraction(1, self.fps)
        if self._keyframe:
            frame.pict_type = av.video.frame.PictureType.I
            self._keyframe = False
        self._mux_video(self._video.encode(frame))
        if len(audio):
            start = tick * _OPUS_RATE // self.fps
            if self._audio_next is None or start > self._audio_next + self._fifo.samples + self._frame_size:
                self._fifo = av.AudioFifo()  # the first audio, or frames were dropped: restart at this frame's time
                self._audio_next = start
            chunk = av.AudioFrame.from_ndarray(audio.reshape(1, -1).astype(np.int16), format="s16", layout="mono")
            chunk.sample_rate = self.rate
            for resampled in self._resampler.resample(chunk):
                resampled.pts = None
                self._fifo.write(resampled)
            while self._fifo.samples >= self._frame_size:
                self._encode(self._fifo.read(self._frame_size))
        return self._video_bytes.take(), self._audio_bytes.take()

    def close(self) -> tuple[bytes, bytes]:
        """Flush the encoders and the muxers: the last bytes of both streams."""
        try:
            if self._fifo.samples:
                self._encode(self._fifo.read(self._fifo.samples))
            self._mux_video(self._video.encode(None))
            for packet in self._audio.encode(None):
                self._audio_out.mux(packet)
            self._video_out.close()
            self._audio_out.close()
        except (av.error.FFmpegError, ValueError):
            pass
        return self._video_bytes.take(), self._audio_bytes.take()

    def _mux_video(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            # a fragment ends with this sample: without its duration the muxer guesses it
            packet.duration = round(Fraction(1, self.fps) / packet.time_base)
            self._video_out.mux(packet)

    def _encode(self, frame: av.AudioFrame) -> None:
        assert self._audio_next is not None
        frame.pts = self._audio_next
        frame.time_base = Fraction(1, _OPUS_RATE)
        self._audio_next += frame.samples
        for packet in self._audio.encode(frame):
            self._audio_out.mux(packet)
