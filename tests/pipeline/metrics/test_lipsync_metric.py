"""The acceptance measurements themselves: filters, lag search, envelopes and compositing checks."""

import math

import numpy as np

from lipstream.pipeline.metrics.lipsync_metric import (
    bandpass,
    border_gradient_ratio,
    fill_gaps,
    lagged_pearson,
    lipsync_score,
    outside_box,
    psnr,
    rms_envelope,
    silence_ratio,
)

FPS = 25.0
RATE = 16000


def test_bandpass_keeps_syllable_rate_and_drops_drift_and_jitter():
    t = np.arange(500) / FPS
    syllables = np.sin(2 * np.pi * 4 * t)
    drift = 3 + 0.5 * t / t[-1]
    jitter = 0.5 * np.sin(2 * np.pi * 12 * t)
    out = bandpass(syllables + drift + jitter, FPS)
    core = slice(50, -50)
    assert np.corrcoef(out[core], syllables[core])[0, 1] > 0.97
    assert abs(out[core].mean()) < 0.05


def test_lag_search_finds_the_mouth_leading():
    rng = np.random.default_rng(0)
    sound = bandpass(rng.standard_normal(400), FPS)
    mouth = np.roll(sound, -3)  # the mouth shows each event 3 frames (120 ms) early
    r, lead = lagged_pearson(mouth, sound, FPS)
    assert r > 0.99 and lead == 3 / FPS
    r, _ = lagged_pearson(np.zeros(400), sound, FPS)
    assert math.isnan(r)


def test_envelope_and_silence_ratio():
    t = np.arange(4 * RATE) / RATE
    speech = (0.3 * np.sin(2 * np.pi * 200 * t) * (t < 2)).astype(np.float32)
    times = np.arange(100) / FPS
    env = rms_envelope(speech, RATE, times)
    assert abs(env[10] - 0.3 / math.sqrt(2)) < 0.01 and env[80] == 0
    openings = np.where(times < 2, 0.4, 0.05)
    assert abs(silence_ratio(openings, times, speech, RATE) - 0.125) < 1e-9
    score = lipsync_score(np.full(100, 0.2), times, speech, RATE)
    assert math.isnan(score.r)


def test_gaps_are_filled():
    np.testing.assert_array_equal(fill_gaps(np.array([np.nan, 1.0, np.nan, 3.0, np.nan])), [1, 1, 2, 3, 3])


def test_compositing_checks():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    b = a.copy()
    b[10:20, 10:20] = 0
    keep = outside_box(a.shape, (10, 10, 20, 20))
    assert psnr(a, b, keep) == math.inf and psnr(a, b) < 30
    flat = np.full((60, 80, 3), 100, np.uint8)
    flat[20:40, 20:40] = 200  # a pasted box: all its gradient sits on its border
    mask = np.zeros((60, 80), np.float32)
    mask[20:40, 20:40] = 1
    interior = np.zeros((60, 80), bool)
    interior[5:55, 5:75] = True
    assert border_gradient_ratio(flat, mask, interior) > 5
