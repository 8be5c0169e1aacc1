"""Wav2Lip mel windows for frames at exact timestamps, from a window's audio span.

Wav2Lip computes one mel spectrogram of the whole utterance (column c is
centred on sample 200 c, 80 columns per second) and gives video frame i the
16 columns starting at int(i * 80 / fps). Here audio arrives as spans around
each window, frames carry exact rational times, and the frame rate may vary,
so a frame at time t gets the 16 columns starting at global column
floor(80 t): the same column for constant frame rates, exact for any other.

The span is re-cut onto the global column grid before the spectrogram is
taken, so the columns equal the whole-utterance columns whatever sample the
span starts on (a span rarely starts on a multiple of 200 samples). Three
extra columns on each side keep the spectrogram's reflect padding and the
pre-emphasis of the first sample away from the columns used. Audio outside
the span counts as silence (`AudioSpan.at`), which is also what the job feeds
before the start and after the end of the new audio; Wav2Lip instead
reflects the first 25 ms and shifts the last window left to end on the last
column.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

import numpy as np

from lipstream.models.wav2lip_mel import HOP, MEL_STEP, SAMPLE_RATE, melspectrogram
from lipstream.stream.frames import AudioSpan

__all__ = ["COLUMNS_PER_SECOND", "mel_column", "mel_windows"]

COLUMNS_PER_SECOND = Fraction(SAMPLE_RATE, HOP)  # 80, kept exact
_EDGE = 3  # columns whose value depends on samples outside the cut (reflect padding, pre-emphasis)


def mel_column(t: Fraction | int | float) -> int:
    """First global mel column of the window for time `t` seconds: floor(80 t).

    Rational times are exact. A float gets the 1e-6-column allowance of
    `wav2lip_mel.mel_window`, so i / fps computed in floats lands where
    Wav2Lip's int(i * 80 / fps) does.
    """
    if isinstance(t, (Fraction, int)):
        return math.floor(Fraction(t) * COLUMNS_PER_SECOND)
    return math.floor(t * float(COLUMNS_PER_SECOND) + 1e-6)


def mel_reach() -> float:
    """Seconds of audio after a frame's time that its mel window reads: a live stream must hold this much first."""
    return float((MEL_STEP + _EDGE + 1) / COLUMNS_PER_SECOND)


def mel_windows(span: AudioSpan, times: Sequence[Fraction]) -> np.ndarray:
    """The (N, 80, 16) Wav2Lip mel windows starting at each of `times`, float32."""
    if span.rate != SAMPLE_RATE:
        raise ValueError(f"Wav2Lip mel needs {SAMPLE_RATE} Hz audio, the span has {span.rate} Hz")
    if not times:
        return np.zeros((0, 80, MEL_STEP), np.float32)
    starts = [mel_column(t) for t in times]
    first = min(starts) - _EDGE
    count = max(starts) + MEL_STEP + _EDGE - first
    samples = span.at(Fraction(first, 1) / COLUMNS_PER_SECOND, count * HOP / SAMPLE_RATE)
    mel = melspectrogram(samples)  # column c is global column first + c
    return np.stack([mel[:, s - first : s - first + MEL_STEP] for s in starts])
