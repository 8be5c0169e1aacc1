"""Audio -> articulation: silence, syllables, spread/round, plosive closure, and streaming consistency."""

from fractions import Fraction

import numpy as np
import pytest

from lipstream.pipeline.engines.shared.articulation import ArticulationConfig, Articulator, FrameFeatures
from lipstream.pipeline.metrics.lipsync_metric import bandpass, lagged_pearson, rms_envelope
from lipstream.stream.frames import AudioSpan

from warp_media import sample_audio, windows as make_windows

RATE = 16000
FPS = 25


def vowel(seconds: float, f1: float, f2: float, f0: float = 120.0, level: float = 0.3) -> np.ndarray:
    """A voiced vowel-like sound: harmonics of f0 shaped by two formant peaks."""
    t = np.arange(int(seconds * RATE)) / RATE
    out = np.zeros_like(t)
    for k in range(1, int(4000 / f0)):
        f = k * f0
        gain = 1.0 / (1 + ((f - f1) / 120) ** 2) + 0.7 / (1 + ((f - f2) / 180) ** 2)
        out += gain * np.sin(2 * np.pi * f * t + k)
    return (level * out / np.abs(out).max()).astype(np.float32)


def articulate(audio: np.ndarray, size: int = 24, overlap: int = 8, config=ArticulationConfig()):
    """Openings and spreads per 25 fps frame, through windows like the job's."""
    from lipstream.stream.frames import Frame

    count = int(len(audio) / RATE * FPS)
    frames = [Frame(i, i, Fraction(1, FPS), i) for i in range(count)]
    art = Articulator(config)
    poses = []
    for window in make_windows(frames, audio, size, overlap):
        poses += art(window.audio, [f.time for f in window.owned])
    return np.array([p.opening for p in poses]), np.array([p.spread for p in poses])


def test_silence_keeps_the_mouth_closed():
    opening, spread = articulate(np.zeros(RATE * 2, np.float32))
    assert opening.max() == 0.0 and np.abs(spread).max() == 0.0


def test_syllables_open_and_close_the_mouth_leading_the_sound():
    # 4 syllables per second: 150 ms vowel, 100 ms pause
    syllable = np.concatenate([vowel(0.15, 700, 1200), np.zeros(int(0.1 * RATE), np.float32)])
    audio = np.concatenate([np.zeros(RATE // 2, np.float32), np.tile(syllable, 12)])
    opening, _ = articulate(audio)
    times = np.arange(len(opening)) / FPS
    envelope = rms_envelope(audio, RATE, times)
    r, lead = lagged_pearson(bandpass(opening, FPS), bandpass(envelope, FPS), FPS)
    assert r > 0.8 and 0.0 <= lead <= 0.12, (r, lead)
    speech = opening[FPS:]
    assert speech.max() > 0.7 and np.percentile(speech, 10) < 0.2  # opens wide, closes between syllables
    assert opening[: FPS // 2 - 2].max() == 0.0  # the leading silence stays closed


def test_spectral_shape_spreads_and_rounds():
    ee, oo = vowel(0.4, 300, 2300), vowel(0.4, 320, 800)
    audio = np.concatenate([np.zeros(RATE // 2, np.float32)] + [ee, oo] * 4)
    _, spread = articulate(audio)
    start = FPS // 2
    is_ee = (((np.arange(len(spread)) - start) // 10) % 2 == 0) & (np.arange(len(spread)) >= start + 20)
    ee_spread, oo_spread = spread[is_ee].mean(), spread[~is_ee & (np.arange(len(spread)) >= start + 20)].mean()
    assert ee_spread > 0.2 and oo_spread < -0.2, (ee_spread, oo_spread)


def test_open_vowels_open_the_jaw_further():
    def rms_matched(sound):
        return sound * (0.1 / np.sqrt(np.mean(sound**2)))

    aa, ii = rms_matched(vowel(0.4, 750, 1200)), rms_matched(vowel(0.4, 300, 2300))
    audio = np.concatenate([np.zeros(RATE // 2, np.float32)] + [aa, ii] * 4).astype(np.float32)
    opening, _ = articulate(audio)
    frames = np.arange(len(opening)) - FPS // 2
    settled = frames >= 20
    is_aa = (frames // 10) % 2 == 0
    assert opening[settled & is_aa].mean() > 1.1 * opening[settled & ~is_aa].mean()


def test_lips_close_before_a_burst_after_a_gap():
    burst = (np.random.default_rng(0).standard_normal(int(0.02 * RATE)) * 0.4).astype(np.float32)
    gap = np.zeros(int(0.12 * RATE), np.float32)
    audio = np.concatenate([np.zeros(RATE // 2, np.float32), vowel(0.4, 700, 1200), gap, burst, vowel(0.4, 700, 1200)])
    opening, _ = articulate(audio)
    burst_time = 0.5 + 0.4 + 0.12
    frame = int(burst_time * FPS)  # the frame just before the burst is heard
    assert opening[frame - 1] < 0.15 and opening[frame + 3] > 0.5, opening[frame - 3 : frame + 5]


def test_result_does_not_depend_on_how_windows_cut_the_stream():
    audio = sample_audio()
    a = articulate(audio, size=24, overlap=8)
    b = articulate(audio, size=7, overlap=2)
    c = articulate(audio, size=50, overlap=0)
    # equal up to float rounding (FFT batches of different sizes)
    for other in (b, c):
        np.testing.assert_allclose(a[0], other[0], rtol=0, atol=1e-9)
        np.testing.assert_allclose(a[1], other[1], rtol=0, atol=1e-9)


def test_only_audio_near_the_frame_is_used():
    """Changing the audio more than the analysis reach after a frame leaves that frame's features alone."""
    features = FrameFeatures(ArticulationConfig(), RATE)
    audio = sample_audio()
    t = Fraction(1)
    span = AudioSpan(Fraction(0), RATE, audio)
    changed = audio.copy()
    changed[int(1.2 * RATE) :] = 0.0  # 200 ms after the frame: beyond lead + pooling + FFT
    other = AudioSpan(Fraction(0), RATE, changed)
    a, b = features(span, [t]), features(other, [t])
    assert a.level[0] == b.level[0] and a.centroid[0] == b.centroid[0]


def test_real_speech_follows_the_envelope():
    audio = sample_audio()
    opening, spread = articulate(audio)
    times = np.arange(len(opening)) / FPS
    r, _ = lagged_pearson(bandpass(opening, FPS), bandpass(rms_envelope(audio, RATE, times), FPS), FPS)
    assert r > 0.75, r
    assert 0.2 < opening.mean() < 0.8 and spread.std() > 0.1


@pytest.mark.parametrize("rate", [8000, 22050])
def test_other_sample_rates_work(rate):
    t = np.arange(rate) / rate
    audio = (0.3 * np.sin(2 * np.pi * 500 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    art = Articulator()
    poses = art(AudioSpan(Fraction(0), rate, audio), [Fraction(k, FPS) for k in range(FPS)])
    assert max(p.opening for p in poses) > 0.5
