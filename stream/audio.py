"""The new audio: exact length, a 16 kHz mono feed for features, chunks for muxing.

Audio is decoded from the start every time a reader needs it (a count pass,
the feature feed, the muxer): decoding audio is hundreds of times faster than
real time and re-reading keeps memory flat. A pipe is spooled to a temporary
file first so it can be read more than once.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterator

import av
import numpy as np

from lipstream.errors import MediaError

from .frames import AudioSpan
from .inputs import Spool, describe, open_container

log = logging.getLogger(__name__)

FEATURE_RATE = 16000


class AudioInput:
    """The first audio stream of a file (or of a spooled pipe)."""

    def __init__(self, source: str | Path | BinaryIO) -> None:
        self.name = describe(source)
        self._spooled: Spool | None = None
        if not isinstance(source, (str, Path)):
            self._spooled = Spool(source, "the audio")
            source = self._spooled.path
        self.path = Path(source)
        try:
            with self._open() as container:
                stream = container.streams.audio[0]
                self.rate: int = stream.codec_context.sample_rate or stream.rate
                self.channels: int = stream.codec_context.channels or 1
            self.samples = self._count()
            if self.samples == 0:
                raise MediaError(f"{self.name}: the audio stream decodes to no samples; pass a non-empty audio file")
        except BaseException:
            self.close()  # a spooled pipe must not outlive a failed start
            raise

    @property
    def duration(self) -> Fraction:
        return Fraction(self.samples, self.rate)

    def close(self) -> None:
        if self._spooled is not None:
            self._spooled.close()
            self._spooled = None

    def chunks(self, rate: int, layout: str = "mono", fmt: str = "flt") -> Iterator[av.AudioFrame]:
        """Resampled frames from the start, ending exactly after `self.duration` seconds."""
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        remaining = round(self.duration * rate)
        with self._open() as container:
            for frame in self._decode(container):
                for out in resampler.resample(frame):
                    if remaining <= 0:
                        return
                    out, remaining = _trim(out, remaining)
                    yield out
            for out in resampler.resample(None):
                if remaining <= 0:
                    return
                out, remaining = _trim(out, remaining)
                yield out

    def _open(self) -> av.container.InputContainer:
        container = open_container(self.path, "audio", self.name)
        if not container.streams.audio:
            container.close()
            raise MediaError(f"{self.name} has no audio stream; pass the new speech as AUDIO (wav, mp3, m4a, ...)")
        return container

    def _decode(self, container: av.container.InputContainer) -> Iterator[av.AudioFrame]:
        try:
            yield from container.decode(container.streams.audio[0])
        except av.error.FFmpegError as exc:
            raise MediaError(f"cannot decode audio from {self.name} ({exc}); convert it to wav or pass another file") from None

    def _count(self) -> int:
        with self._open() as container:
            return sum(frame.samples for frame in self._decode(container))


def _trim(frame: av.AudioFrame, remaining: int) -> tuple[av.AudioFrame, int]:
    if frame.samples <= remaining:
        return frame, remaining - frame.samples
    data = frame.to_ndarray()[..., :remaining]
    cut = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=frame.format.name, layout=frame.layout.name)
    cut.sample_rate = frame.sample_rate
    return cut, 0


class AudioFeed:
    """A rolling 16 kHz mono float32 view of the audio, for stages that need sound.

    Samples more than `history` seconds before the last request's start are
    dropped, so memory is bounded by the longest requested span plus the
    history. A request reaching further back (a segment's warm-up) decodes
    again from the start: slower, but the samples are the same either way.
    """

    def __init__(self, audio: AudioInput, rate: int = FEATURE_RATE, history: float = 0.0) -> None:
        self.rate = rate
        self._audio = audio
        self._history = int(round(history * rate))
        self._restart()

    def _restart(self) -> None:
        self._chunks = (f.to_ndarray().reshape(-1) for f in self._audio.chunks(self.rate, "mono", "flt"))
        self._buffer = np.zeros(0, np.float32)
        self._offset = 0  # sample index of self._buffer[0]
        self._ended = False

    def span(self, start: Fraction, end: Fraction) -> AudioSpan:
        """Samples for output times [start, end), zero outside the audio."""
        first = int(np.floor(start * self.rate))
        stop = int(np.ceil(end * self.rate))
        if min(first, stop) < self._offset:
            self._restart()
        keep = max(0, min(first, stop) - self._history)
        while not self._ended and self._offset + len(self._buffer) < stop:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._ended = True
            else:
                self._buffer = np.concatenate([self._buffer, chunk.astype(np.float32, copy=False)])
                self._drop_before(keep)
        self._drop_before(keep)
        out = np.zeros(max(stop - first, 0), np.float32)
        lo, hi = max(first, self._offset), min(stop, self._offset + len(self._buffer))
        if hi > lo:
            out[lo - first : hi - first] = self._buffer[lo - self._offset : hi - self._offset]
        return AudioSpan(Fraction(first, self.rate), self.rate, out)

    def _drop_before(self, sample: int) -> None:
        drop = max(0, sample - self._offset)
        if drop:
            drop = min(drop, len(self._buffer))
            self._buffer = self._buffer[drop:]
            self._offset += drop
