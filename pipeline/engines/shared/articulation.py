"""From the new audio to a mouth articulation per output frame (pure signal processing).

Per frame, three things are read from the 16 kHz signal just after the
frame's time (the mouth leads the sound by `lead`):

* loudness in the band where vowels carry their energy (250-2500 Hz): the
  jaw opens with vowels, little with fricatives (energy above 3 kHz) or
  nasals (energy below 300 Hz); open vowels (a high first formant, /a/)
  open it further than close ones (/i/, /u/);
* the spectral balance inside the voice band: a high second formant (/i/,
  /e/) spreads the lips, a low one (/u/, /o/) rounds them;
* plosive-like onsets (a jump of broadband level after a quiet gap): the
  lips close just before the burst.

`Articulator` keeps the state that must run across windows: a loudness
tracker (so the opening is relative to this speaker's level), the running
spectral balance, and the smoothing filters. Windows are processed in
order, one owned frame at a time, so the output does not depend on where
windows start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

from lipstream.stream.frames import AudioSpan


@dataclass(frozen=True)
class ArticulationConfig:
    """Tuning of the audio-to-mouth mapping (times in seconds, levels in dB)."""

    lead: float = 0.04  # the mouth shows now what will be heard this much later
    hop: float = 0.01  # analysis frames inside one video frame's span
    spread_frames: int = 3  # analysis frames each side of the centre
    smear: float = 0.02  # std of the Gaussian pooling analysis frames
    range_db: float = 28.0  # loudness below the speaker's peak at which the mouth closes
    gate_db: float = 8.0  # closed unless this far above the noise floor
    peak_fall: float = 2.0  # dB/s the speech-level tracker decays between loud syllables
    floor_rise: float = 1.5  # dB/s the noise-floor tracker creeps up during speech
    curve: float = 1.3  # >1 keeps quiet syllables less open than loud vowels
    onset_db: float = 12.0  # level jump over 30 ms that counts as a plosive burst
    attack: float = 0.025  # smoothing time constant when the mouth opens
    release: float = 0.04  # ... and when it closes
    shape_time: float = 0.08  # smoothing of spread/round
    balance_octaves: float = 0.6  # spectral-balance change that reaches full spread or rounding
    vowel_height: float = 0.5  # jaw opening change per octave of first-formant shift (open /a/ vs close /i/, /u/)


@dataclass(frozen=True)
class Articulation:
    """Mouth pose for one frame: `opening` 0 (closed) .. 1 (wide), `spread` -1 (rounded) .. 1 (spread)."""

    opening: float
    spread: float


_VOWEL_BAND = (250.0, 2500.0)
_BALANCE_BAND = (300.0, 3500.0)
_BROAD_BAND = (100.0, 7000.0)
_F1_BAND = (250.0, 1100.0)
_F1_PRIOR = math.log2(500.0)
_BALANCE_PRIOR = math.log2(600.0)  # typical voice-band centroid; each speaker's own takes over within seconds


@dataclass(frozen=True)
class Features:
    """Per-frame raw features: vowel-band level (dB), onset jump (dB), broadband level before it (dB),
    and the spectral centroids (log2 Hz) of the voice band and of the first-formant band."""

    level: np.ndarray
    onset: np.ndarray
    before: np.ndarray
    centroid: np.ndarray
    low_centroid: np.ndarray


def audio_reach(config: ArticulationConfig, rate: int) -> float:
    """Seconds of audio after a frame's time that its pose reads: a live stream must hold this much before drawing it."""
    features = FrameFeatures(config, rate)
    return config.lead + (int(features.offsets[-1]) + features.size // 2) / rate


class FrameFeatures:
    """Raw per-frame audio features (stateless): what the articulator smooths and normalises."""

    def __init__(self, config: ArticulationConfig, rate: int) -> None:
        self.config = config
        self.rate = rate
        self.size = 1 << max(6, math.ceil(math.log2(0.032 * rate)))  # ~32 ms
        self.hop = int(round(config.hop * rate))
        k = np.arange(-config.spread_frames, config.spread_frames + 1)
        weights = np.exp(-0.5 * (k * config.hop / config.smear) ** 2)
        self.weights = weights / weights.sum()
        self.offsets = k * self.hop
        self.window = np.hanning(self.size).astype(np.float32)
        freqs = np.fft.rfftfreq(self.size, 1.0 / rate)
        self.vowel = (freqs >= _VOWEL_BAND[0]) & (freqs < _VOWEL_BAND[1])
        self.balance = (freqs >= _BALANCE_BAND[0]) & (freqs < _BALANCE_BAND[1])
        self.broad = (freqs >= _BROAD_BAND[0]) & (freqs < _BROAD_BAND[1])
        self.first_formant = (freqs >= _F1_BAND[0]) & (freqs < _F1_BAND[1])
        self.log_freq = np.log2(np.maximum(freqs, 1.0))
        # scale so a full-scale sine in the band reads about 0 dB
        self.norm = 4.0 / float(self.window.sum()) ** 2

    def __call__(self, span: AudioSpan, times: Sequence[Fraction]) -> Features:
        """Features of the audio around each time (plus the lead), zero outside the span."""
        n = len(times)
        first = int(self.offsets[0]) - self.size // 2
        length = int(self.offsets[-1] - self.offsets[0]) + self.size
        lead = Fraction(self.config.lead).limit_denominator(10000)
        chunks = np.empty((n, length), np.float32)
        for i, t in enumerate(times):
            chunks[i] = span.at(Fraction(t) + lead + Fraction(first, self.rate), length / self.rate)
        idx = (self.offsets - self.offsets[0])[:, None] + np.arange(self.size)[None, :]
        power = np.abs(np.fft.rfft(chunks[:, idx] * self.window, axis=-1)) ** 2 * self.norm  # (n, K, bins)
        vowel = power[..., self.vowel].sum(-1) @ self.weights
        band = power[..., self.balance]
        centroid = (band * self.log_freq[self.balance]).sum(-1) @ self.weights
        centroid /= np.maximum(band.sum(-1) @ self.weights, 1e-12)
        low = power[..., self.first_formant]
        low_centroid = (low * self.log_freq[self.first_formant]).sum(-1) @ self.weights
        low_centroid /= np.maximum(low.sum(-1) @ self.weights, 1e-12)
        broad = 10 * np.log10(power[..., self.broad].sum(-1) + 1e-10)  # (n, K)
        centre = len(self.weights) // 2
        # a burst: the level 20 ms after the centre against the level 10 ms before it
        before = broad[:, max(centre - 1, 0)]
        after = broad[:, min(centre + 2, broad.shape[1] - 1)]
        return Features(10 * np.log10(vowel + 1e-10), after - before, before, centroid, low_centroid)


class Articulator:
    """Streaming audio -> articulation, one call per window's owned frames, in time order."""

    def __init__(self, config: ArticulationConfig = ArticulationConfig()) -> None:
        self.config = config
        self._features: FrameFeatures | None = None
        self._peak: float | None = None
        self._floor: float | None = None
        self._balance = _BALANCE_PRIOR
        self._f1 = _F1_PRIOR
        self._opening = 0.0
        self._spread = 0.0
        self._last_time: float | None = None

    def __call__(self, span: AudioSpan, times: Sequence[Fraction]) -> list[Articulation]:
        """Poses for `times` (the window's owned frames, later than any earlier call's)."""
        if not times:
            return []
        if self._features is None or self._features.rate != span.rate:
            self._features = FrameFeatures(self.config, span.rate)
        if self._peak is None:
            self._start(span, Fraction(times[0]))
        feats = self._features(span, times)
        return [self._step(float(t), feats, i) for i, t in enumerate(times)]

    def _start(self, span: AudioSpan, t0: Fraction) -> None:
        """Initial speech level and noise floor from the second of audio around the first frame.

        A fixed extent (inside any window's span, whose margin is 0.5 s) keeps
        the result independent of how the stream is cut into windows.
        """
        assert self._features is not None
        step = Fraction(1, 25)
        probe = [t0 + step * k for k in range(-11, 11)]
        levels = self._features(span, probe).level
        loud = levels[levels > -90.0]
        if len(loud) < 5:
            self._peak, self._floor = -30.0, -90.0
        else:
            self._peak = float(np.percentile(loud, 95))
            self._floor = float(min(np.percentile(levels, 10), self._peak - self.config.range_db))

    def _step(self, t: float, feats: Features, i: int) -> Articulation:
        cfg = self.config
        assert self._peak is not None and self._floor is not None
        dt = 0.04 if self._last_time is None else min(max(t - self._last_time, 1e-3), 0.5)
        self._last_time = t
        level = float(feats.level[i])

        # speech level: jumps up with loud syllables, sinks slowly, never below the floor + range
        if level > self._peak:
            self._peak += 0.5 * (level - self._peak)
        else:
            self._peak -= cfg.peak_fall * dt
        # noise floor: drops at once to quiet frames, creeps up while sound continues
        if level < self._floor:
            self._floor = level
        else:
            self._floor += cfg.floor_rise * dt
        self._floor = min(self._floor, self._peak - cfg.range_db)
        self._peak = max(self._peak, self._floor + cfg.range_db)

        raw = (level - (self._peak - cfg.range_db)) / cfg.range_db
        raw = min(max(raw, 0.0), 1.0) ** cfg.curve
        gate = min(max((level - self._floor - cfg.gate_db) / cfg.gate_db, 0.0), 1.0)
        raw *= gate
        # the jaw opens further for open vowels (high first formant) than for close ones
        f1 = float(feats.low_centroid[i])
        if raw > 0.15:
            self._f1 += (f1 - self._f1) * (1.0 - math.exp(-dt / 2.0))
        raw = min(raw * min(max(1.0 + cfg.vowel_height * (f1 - self._f1), 0.6), 1.3), 1.0)
        # lips close right before a burst that follows a quiet gap (p, b, t, k)
        burst = float(feats.onset[i]) - cfg.onset_db
        quiet = float(feats.before[i]) < self._peak - 0.6 * cfg.range_db
        if burst > 0 and quiet:
            raw *= max(0.0, 1.0 - burst / 6.0)

        tau = cfg.attack if raw > self._opening else cfg.release
        self._opening += (raw - self._opening) * (1.0 - math.exp(-dt / tau))

        centroid = float(feats.centroid[i])
        voiced = raw > 0.15
        if voiced:
            self._balance += (centroid - self._balance) * (1.0 - math.exp(-dt / 2.0))
            target = math.tanh((centroid - self._balance) / cfg.balance_octaves)
        else:
            target = 0.0
        self._spread += (target - self._spread) * (1.0 - math.exp(-dt / cfg.shape_time))
        return Articulation(self._opening, self._spread)
