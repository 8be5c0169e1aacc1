"""Wav2Lip's audio front-end: 16 kHz waveform -> normalised 80-bin mel spectrogram.

Provenance
    Recipe of Rudrabha/Wav2Lip ``audio.py`` (``melspectrogram``) with the
    defaults of ``hparams.py``, as run with the librosa 0.7.0 the repository
    pins (reflect-padded centred STFT). Paper: Prajwal et al., "A Lip Sync
    Expert Is All You Need for Speech to Lip Generation In The Wild", ACM MM
    2020. Re-implemented with numpy only (own framing, own Slaney filterbank,
    ``np.fft.rfft``); no librosa/torchaudio at run time. No weights involved.

Contract
    `melspectrogram(wav)`: wav is mono float audio at 16 kHz in [-1, 1]
    (resample beforehand; no gain normalisation is applied). Returns float32
    (80, 1 + len(wav) // 200): rows are mel bins low -> high (55..7600 Hz),
    columns are frames every 200 samples (80 per second), frame t centred on
    sample 200 t. Values are in [-4, 4]; digital silence gives exactly -4.
    `mel_window(mel, t)` / `mel_chunks(mel, fps)`: the (80, 16) windows that
    Wav2Lip and SyncNet_color consume (16 frames = 200 ms starting at t).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "FRAMES_PER_SECOND",
    "HOP",
    "MEL_STEP",
    "SAMPLE_RATE",
    "SILENCE",
    "chunk_starts",
    "mel_basis",
    "mel_chunks",
    "mel_start",
    "mel_window",
    "melspectrogram",
]

SAMPLE_RATE = 16_000
N_FFT = 800
HOP = 200
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
MIN_LEVEL_DB = -100.0
REF_LEVEL_DB = 20.0
MAX_ABS = 4.0
MEL_STEP = 16
FRAMES_PER_SECOND = SAMPLE_RATE / HOP  # 80.0
SILENCE = -MAX_ABS
"""Normalised value of digital silence (the clip floor); used to pad windows."""


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear (3 mel per 200 Hz) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3.0)
    log_step = math.log(6.4) / 27.0
    logarithmic = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / log_step
    return np.where(hz >= 1000.0, logarithmic, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3.0)
    logarithmic = 1000.0 * np.exp((math.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, logarithmic, linear)


def mel_basis() -> np.ndarray:
    """The (80, 401) Slaney-normalised triangular filterbank, float64.

    Equal to ``librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55,
    fmax=7600)`` (htk=False, norm='slaney').
    """
    bin_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2))
    lo, centre, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bin_hz - lo) / (centre - lo)
    falling = (hi - bin_hz) / (hi - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    # Slaney normalisation: every filter has the same area.
    return triangles * (2.0 / (hi - lo))


def _hann_periodic(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """Normalised log-mel spectrogram (80, 1 + len(wav)//200), float32, in [-4, 4].

    Pre-emphasis 0.97, centred STFT (n_fft = window = 800, hop 200, periodic
    Hann, 400 samples of reflect padding each side as librosa 0.7 did; zero
    padding would change the first and last two frames), magnitude, Slaney
    mel, 20 log10 with a 1e-5 floor minus 20 dB, then mapped from [-100, 0] dB
    onto [-4, 4] and clipped. Computed in float64 so the result is the same on
    every platform. Needs more than 400 samples (reflect padding).
    """
    x = np.asarray(wav, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n,), got {x.shape}")
    if x.size <= N_FFT // 2:
        raise ValueError(f"need more than {N_FFT // 2} samples, got {x.size}")
    emphasised = np.empty_like(x)
    emphasised[0] = x[0]
    emphasised[1:] = x[1:] - PREEMPHASIS * x[:-1]

    padded = np.pad(emphasised, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    magnitude = np.abs(np.fft.rfft(frames * _hann_periodic(N_FFT), axis=1))  # (T, 401)

    mel = mel_basis() @ magnitude.T  # (80, T)
    db = 20.0 * np.log10(np.maximum(1e-5, mel)) - REF_LEVEL_DB
    normalised = (2.0 * MAX_ABS) * (db - MIN_LEVEL_DB) / (-MIN_LEVEL_DB) - MAX_ABS
    return np.clip(normalised, -MAX_ABS, MAX_ABS).astype(np.float32)


def mel_start(frame_index: int, fps: float) -> int:
    """First mel column for video frame `frame_index`, exactly as Wav2Lip inference computes it."""
    return int(frame_index * FRAMES_PER_SECOND / fps)


def chunk_starts(n_mel_frames: int, fps: float) -> list[int]:
    """Window starts Wav2Lip inference uses for a whole utterance of `n_mel_frames` columns.

    One start per video frame while the 16-frame window fits, then a single
    last window aligned to the end of the mel (``n - 16``). Video frames past
    that are dropped by inference, so len(result) is the output frame count.
    With fewer than 16 columns there is one window, starting at 0 (padded, see
    `mel_window`).
    """
    starts: list[int] = []
    i = 0
    while True:
        start = mel_start(i, fps)
        if start + MEL_STEP > n_mel_frames:
            starts.append(max(0, n_mel_frames - MEL_STEP))
            return starts
        starts.append(start)
        i += 1


def _window_at(mel: np.ndarray, start: int) -> np.ndarray:
    n = mel.shape[1]
    if n < MEL_STEP:
        # Right-align what exists and fill the missing past with silence.
        out = np.full((mel.shape[0], MEL_STEP), SILENCE, dtype=mel.dtype)
        out[:, MEL_STEP - n :] = mel
        return out
    start = min(max(0, start), n - MEL_STEP)
    return mel[:, start : start + MEL_STEP]


def mel_chunks(mel: np.ndarray, fps: float) -> np.ndarray:
    """All inference windows of an utterance, (N, 80, 16), in the order of `chunk_starts`."""
    return np.stack([_window_at(mel, s) for s in chunk_starts(mel.shape[1], fps)])


def mel_window(mel: np.ndarray, t_seconds: float) -> np.ndarray:
    """The (80, 16) window starting at time `t_seconds` (a view when possible).

    Start column = floor(80 * t), with a 1e-6-column allowance so that
    t = i / fps (or a timestamp read from a container) lands on the same
    column as inference's int(i * 80 / fps) despite float rounding.
    Edges: t < 0 gives the first window. A window that would run past the
    last column is shifted left to end on it, i.e. it still holds 16 real
    frames but starts before t; this is the right-aligned last chunk that
    inference uses (inference then stops, later frames are dropped; here
    every later t keeps returning that last window). A mel shorter than 16
    columns is right-aligned and padded on the left with `SILENCE` (-4).
    """
    start = math.floor(t_seconds * FRAMES_PER_SECOND + 1e-6)
    return _window_at(mel, start)
