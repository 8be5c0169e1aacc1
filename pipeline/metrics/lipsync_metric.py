"""Acceptance measurements for a lip-synced output, computed on pixels and sound only.

The lip-sync score re-detects the lips with the embedded FaceMesh and asks
how well the mouth opening (inner-lip gap 13/14 over inner width 78/308)
follows the new audio's loudness: both series are band-passed to the
syllable rate (1-8 Hz) and correlated at the best lag with the mouth leading
by 0-200 ms, as real mouths do. Nothing here knows how the video was made,
so the same functions judge any engine, a passthrough, or a real speaker.

The compositing checks (identity and PSNR outside a region, gradient along
a mask border) are here too so tests and the benchmark share one definition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import av
import cv2
import numpy as np

from lipstream.models.blazeface import BlazeFace
from lipstream.models.face_types import Detection, Landmarks
from lipstream.models.facemesh import LIP_GAP, LIP_INNER_WIDTH, FaceMesh

BAND = (1.0, 8.0)  # Hz: syllable-rate motion, free of drift and landmark jitter
MAX_LEAD = 0.2  # seconds the mouth may lead the sound
_MIN_PRESENCE = 0.5


# ------------------------------------------------------------------ the mouth


def track_faces(frames: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, Landmarks | None]]:
    """(frame, landmarks of the largest face or None) per RGB frame.

    Detection on the first frame and whenever tracking is lost (the
    full-range detector when the short-range one finds nothing), FaceMesh
    from the previous landmarks otherwise.
    """
    detectors = [BlazeFace("short")]
    mesh = FaceMesh()
    roi: Detection | Landmarks | None = None
    for rgb in frames:
        if roi is None:
            found = detectors[0].detect_frame(rgb)
            if not found:
                if len(detectors) == 1:
                    detectors.append(BlazeFace("full"))
                found = detectors[1].detect_frame(rgb)
            roi = max(found, key=lambda d: d.width * d.height) if found else None
        if roi is None:
            yield rgb, None
            continue
        marks = mesh.landmarks(rgb, roi)
        if marks.presence < _MIN_PRESENCE:
            roi = None
            yield rgb, None
            continue
        roi = marks
        yield rgb, marks


def lip_openings(frames: Iterable[np.ndarray]) -> np.ndarray:
    """Inner-lip gap over inner mouth width per RGB frame; NaN where no face is found."""
    return np.array([math.nan if marks is None else mouth_ratio(marks.xy) for _, marks in track_faces(frames)], np.float64)


def mouth_ratio(xy: np.ndarray) -> float:
    """Gap between the inner lips at the midline over the inner mouth width."""
    gap = np.linalg.norm(xy[LIP_GAP[0], :2] - xy[LIP_GAP[1], :2])
    width = np.linalg.norm(xy[LIP_INNER_WIDTH[0], :2] - xy[LIP_INNER_WIDTH[1], :2])
    return float(gap / width) if width > 0 else math.nan


def decode_rgb(path: Path, start: float = 0.0, stop: float = math.inf) -> Iterator[tuple[float, np.ndarray]]:
    """(time in seconds from the stream start, upright RGB) of a video file's frames in [start, stop)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        origin = stream.start_time or 0
        for frame in container.decode(stream):
            t = float((frame.pts - origin) * stream.time_base)
            if t < start:
                continue
            if t >= stop:
                break
            yield t, frame.to_ndarray(format="rgb24")


def video_openings(path: Path, start: float = 0.0, stop: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    """(frame times, mouth openings) of a video file."""
    times: list[float] = []

    def frames() -> Iterator[np.ndarray]:
        for t, rgb in decode_rgb(path, start, stop):
            times.append(t)
            yield rgb

    openings = lip_openings(frames())
    return np.array(times), openings


# ------------------------------------------------------------------ the sound


def read_audio(path: Path, rate: int = 16000) -> np.ndarray:
    """A whole audio file as mono float32 at `rate` (for measurements, not for streaming)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    parts = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def rms_envelope(samples: np.ndarray, rate: int, times: np.ndarray, window: float = 0.04) -> np.ndarray:
    """RMS of the audio in a `window`-second span centred on each time (zero outside the audio)."""
    half = int(round(window * rate / 2))
    power = np.concatenate([[0.0], np.cumsum(np.asarray(samples, np.float64) ** 2)])
    centre = np.round(np.asarray(times) * rate).astype(np.int64)
    lo = np.clip(centre - half, 0, len(samples))
    hi = np.clip(centre + half, 0, len(samples))
    return np.sqrt((power[hi] - power[lo]) / max(2 * half, 1))


# ------------------------------------------------------------- signal helpers


def _biquad(kind: str, cutoff: float, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Butterworth (Q = 1/sqrt 2) low- or high-pass section, bilinear transform."""
    w0 = 2 * math.pi * cutoff / rate
    alpha = math.sin(w0) / math.sqrt(2.0)
    cos = math.cos(w0)
    if kind == "low":
        b = np.array([(1 - cos) / 2, 1 - cos, (1 - cos) / 2])
    else:
        b = np.array([(1 + cos) / 2, -(1 + cos), (1 + cos) / 2])
    a = np.array([1 + alpha, -2 * cos, 1 - alpha])
    return b / a[0], a / a[0]


def _lfilter(b: np.ndarray, a: np.ndarray, x: np.ndarray) -> np.ndarray:
    y = np.zeros_like(x)
    # steady-state start on the first sample so the edge does not ring
    gain = b.sum() / a.sum()
    x1 = x2 = x[0]
    y1 = y2 = x[0] * gain
    for i, xi in enumerate(x):
        yi = b[0] * xi + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
        x2, x1, y2, y1 = x1, xi, y1, yi
        y[i] = yi
    return y


def bandpass(x: np.ndarray, rate: float, band: tuple[float, float] = BAND) -> np.ndarray:
    """Zero-phase band-pass (2nd-order Butterworth high- and low-pass, run forwards and backwards)."""
    x = np.asarray(x, np.float64)
    if len(x) < 4:
        return x - x.mean() if len(x) else x
    pad = min(len(x) - 1, int(rate))
    padded = np.concatenate([2 * x[0] - x[pad:0:-1], x, 2 * x[-1] - x[-2 : -pad - 2 : -1]])
    sections = [_biquad("high", band[0], rate)]
    if band[1] < rate / 2:
        sections.append(_biquad("low", band[1], rate))
    for b, a in sections:
        padded = _lfilter(b, a, padded)
        padded = _lfilter(b, a, padded[::-1])[::-1]
    return padded[pad : pad + len(x)]


def fill_gaps(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaNs (lost face), edges held."""
    x = np.asarray(x, np.float64).copy()
    bad = ~np.isfinite(x)
    if bad.all():
        return np.zeros_like(x)
    if bad.any():
        idx = np.arange(len(x))
        x[bad] = np.interp(idx[bad], idx[~bad], x[~bad])
    return x


def frame_rate(times: np.ndarray) -> float:
    steps = np.diff(np.asarray(times, np.float64))
    return 1.0 / float(np.median(steps)) if len(steps) else 25.0


# ------------------------------------------------------------------ the score


@dataclass(frozen=True)
class LipsyncScore:
    """Best Pearson r between band-passed mouth opening and loudness, and its lag."""

    r: float
    lead: float  # seconds the mouth leads the sound at the best r
    found: float  # fraction of frames where the face was re-detected

    def __str__(self) -> str:
        return f"r={self.r:.3f} lead={self.lead * 1000:.0f}ms face={self.found:.0%}"


def lagged_pearson(mouth: np.ndarray, sound: np.ndarray, rate: float, max_lead: float = MAX_LEAD) -> tuple[float, float]:
    """(best r, lead in seconds) with the mouth at frame i compared with the sound at frame i + lag.

    r is NaN when either series is flat (no face found, or silence throughout).
    """
    best = (-math.inf, 0.0)
    for lag in range(0, int(round(max_lead * rate)) + 1):
        m = mouth[: len(mouth) - lag]
        s = sound[lag:]
        if len(m) < 3 or m.std() == 0 or s.std() == 0:
            continue
        r = float(np.corrcoef(m, s)[0, 1])
        if r > best[0]:
            best = (r, lag / rate)
    return best if best[0] > -math.inf else (math.nan, 0.0)


def lipsync_score(openings: np.ndarray, times: np.ndarray, samples: np.ndarray, rate: int) -> LipsyncScore:
    """How well mouth openings measured at `times` follow the audio `samples` (time 0 = first sample)."""
    fps = frame_rate(times)
    found = float(np.isfinite(openings).mean()) if len(openings) else 0.0
    mouth = bandpass(fill_gaps(openings), fps)
    sound = bandpass(rms_envelope(samples, rate, times), fps)
    r, lead = lagged_pearson(mouth, sound, fps)
    return LipsyncScore(r, lead, found)


def silence_ratio(openings: np.ndarray, times: np.ndarray, samples: np.ndarray, rate: int,
                  min_silence: float = 0.3) -> float:
    """Median opening in silent stretches of the audio over the median opening during speech.

    Silence: the loudness stays 35 dB below the speech level (95th percentile
    RMS) for at least `min_silence` seconds; speech: within 20 dB of it.
    Returns NaN when either kind of stretch is missing.
    """
    env = rms_envelope(samples, rate, times, window=0.1)
    top = np.percentile(env, 95) if len(env) else 0.0
    if top <= 0:
        return math.nan
    level = 20 * np.log10(np.maximum(env, 1e-9) / top)
    quiet = level < -35
    run = max(1, int(round(min_silence * frame_rate(times))))
    silent = np.zeros_like(quiet)
    start = None
    for i, q in enumerate(np.append(quiet, False)):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start >= run:
                silent[start:i] = True
            start = None
    speech = level > -20
    ok = np.isfinite(openings)
    if not (silent & ok).any() or not (speech & ok).any():
        return math.nan
    return float(np.median(openings[silent & ok]) / max(np.median(openings[speech & ok]), 1e-9))


# --------------------------------------------------------------- compositing


def psnr(a: np.ndarray, b: np.ndarray, keep: np.ndarray | None = None) -> float:
    """PSNR in dB between two uint8 images over the pixels where `keep` is True (all if None)."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    if keep is not None:
        diff = diff[keep]
    mse = float(np.mean(diff**2)) if diff.size else 0.0
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def outside_box(shape: tuple[int, ...], box: tuple[int, int, int, int]) -> np.ndarray:
    """Boolean (H, W) mask that is True outside the integer box x0, y0, x1, y1."""
    keep = np.ones(shape[:2], bool)
    x0, y0, x1, y1 = box
    keep[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = False
    return keep


def gradient_magnitude(rgb: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of the luma."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt(gx * gx + gy * gy)


def border_gradient_ratio(rgb: np.ndarray, mask: np.ndarray, interior: np.ndarray) -> float:
    """Mean gradient along the border of `mask` (> 0) over the mean gradient inside `interior`.

    A pasted box shows up as a step along its border, raising the ratio
    above the natural texture level of the face.
    """
    inside = (mask > 0).astype(np.uint8)
    ring = cv2.morphologyEx(inside, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    grad = gradient_magnitude(rgb)
    base = float(grad[interior].mean()) if interior.any() else 0.0
    return float(grad[ring].mean()) / base if ring.any() and base > 0 else math.nan

