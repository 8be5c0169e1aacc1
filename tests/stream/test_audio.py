from fractions import Fraction

import numpy as np

from lipstream.stream.audio import AudioFeed, AudioInput
from media import SAMPLE_AUDIO, tone_samples, write_wav


def test_exact_length_and_feature_feed(tmp_path):
    samples = tone_samples(2.5)
    audio = AudioInput(write_wav(tmp_path / "a.wav", samples))
    assert audio.samples == len(samples) and audio.duration == Fraction(5, 2)
    feed = AudioFeed(audio)
    span = feed.span(Fraction(-1, 10), Fraction(1, 2))
    assert span.start == Fraction(-1, 10) and len(span.samples) == 9600
    assert np.all(span.samples[:1600] == 0)  # before the audio starts
    np.testing.assert_allclose(span.samples[1600:], samples[:8000], atol=1e-4)
    later = feed.span(Fraction(2), Fraction(3))
    np.testing.assert_allclose(later.samples[:8000], samples[32000:], atol=1e-4)
    assert np.all(later.samples[8000:] == 0)  # past the end
    assert len(feed._buffer) <= 16000 * 1.1  # only the requested span is kept


def test_resampled_chunks_end_exactly(tmp_path):
    audio = AudioInput(SAMPLE_AUDIO)
    total = sum(frame.samples for frame in audio.chunks(44100, "stereo", "fltp"))
    assert total == round(audio.duration * 44100)
