"""Where arriving speech goes on a live stream's clock (pure: no threads, no wall clock of its own).

The stream never stops: frames leave at the frame rate whether anyone
speaks or not. Speech that arrives while the face idles starts `delay`
seconds after the moment it arrived (a jitter buffer: a frame must hold the
audio it reads ahead, `audio_reach`, before it is drawn); speech that
arrives while earlier speech is still queued far enough ahead follows it
without a gap, so a TTS that sends a sentence faster than real time is
played at real time, and a chunk that comes a little late leaves no hole.
Positions are sample counts from the start of the stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from lipstream.errors import InputError
from lipstream.stream.frames import AudioSpan

__all__ = ["Placed", "SpeechTimeline"]


@dataclass(frozen=True)
class Placed:
    """Where one pushed chunk went: its first and end sample positions."""

    start: int
    end: int


class SpeechTimeline:
    """The speech of a live stream: a bounded buffer of samples on the stream's clock."""

    def __init__(self, rate: int = 16000, delay: float = 0.16, max_queued: float = 30.0, keep: float = 1.0) -> None:
        """`max_queued`: seconds of speech waiting to be played before a push is refused;
        `keep`: seconds kept behind the oldest position still to be read (the articulator's look back)."""
        self.rate = rate
        self.delay = int(round(delay * rate))
        self.max_queued = int(round(max_queued * rate))
        self.keep = int(round(keep * rate))
        self._origin = 0  # position of _samples[0]
        self._samples = np.zeros(0, np.float32)
        self._end = 0  # end of the speech placed so far (positions before it hold speech or silence)

    @property
    def end(self) -> int:
        return self._end

    def push(self, samples: np.ndarray, now: int, ready: int = 0) -> Placed:
        """Place `samples` (float32 mono at `rate`) on the clock whose current position is `now`.

        Speech still queued at least `ready` samples ahead of `now` (what the
        next frame to draw reads ahead) is followed without a gap, so a chunk a
        little late does not cut the sound; otherwise the speech starts afresh,
        `delay` after now.
        """
        start = self._end if self._end > now + ready else now + self.delay
        if start + len(samples) - now > self.max_queued + self.delay:
            seconds = (self._end - now) / self.rate
            raise InputError(f"{seconds:.1f} s of speech is already waiting to be played (at most {self.max_queued / self.rate:g} s); send audio no faster than it plays")
        self._grow(start + len(samples))
        self._samples[start - self._origin : start - self._origin + len(samples)] = samples
        self._end = start + len(samples)
        return Placed(start, self._end)

    def span(self, first: int, end: int) -> AudioSpan:
        """The samples of [first, end) as an AudioSpan on the stream clock: silence where nothing was placed."""
        out = np.zeros(max(end - first, 0), np.float32)
        lo, hi = max(first, self._origin), min(end, self._origin + len(self._samples))
        if hi > lo:
            out[lo - first : hi - first] = self._samples[lo - self._origin : hi - self._origin]
        return AudioSpan(Fraction(first, self.rate), self.rate, out)

    def speaking(self, first: int, end: int) -> bool:
        """Whether any speech was placed inside [first, end)."""
        lo, hi = max(first, self._origin), min(end, self._origin + len(self._samples))
        return hi > lo and bool(np.any(self._samples[lo - self._origin : hi - self._origin]))

    def clear(self, after: int) -> None:
        """Silence everything placed from `after` on (speech cut short); later speech starts afresh."""
        lo = max(after - self._origin, 0)
        self._samples[lo:] = 0.0
        self._end = min(self._end, max(after, self._origin))

    def forget(self, before: int) -> None:
        """Drop samples older than `before - keep`: memory stays bounded on an endless stream."""
        cut = before - self.keep - self._origin
        if cut > 0:
            cut = min(cut, len(self._samples))
            self._samples = self._samples[cut:].copy()
            self._origin += cut

    def _grow(self, end: int) -> None:
        need = end - self._origin
        if need > len(self._samples):
            grown = np.zeros(max(need, 2 * len(self._samples)), np.float32)
            grown[: len(self._samples)] = self._samples
            self._samples = grown
