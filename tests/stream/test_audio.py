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


def test_the_feed_gives_the_same_samples_whatever_came_before(tmp_path):
    """A segment's warm-up asks for audio before what the feed still holds: it decodes again, same samples."""
    audio = AudioInput(write_wav(tmp_path / "a.wav", tone_samples(6.0)))
    fresh = AudioFeed(audio).span(Fraction(3), Fraction(4)).samples
    walked = AudioFeed(audio, history=0.5)
    for second in range(6):
        walked.span(Fraction(second), Fraction(second + 1))
    assert walked._offset > 3 * 16000  # the feed moved on and let go of the early samples
    np.testing.assert_array_equal(walked.span(Fraction(3), Fraction(4)).samples, fresh)
    kept = AudioFeed(audio, history=1.5)
    kept.span(Fraction(4), Fraction(5))
    assert kept._offset <= 3 * 16000  # within its history: no second decode needed
    np.testing.assert_array_equal(kept.span(Fraction(3), Fraction(4)).samples, fresh)


def test_audio_from_a_pipe_names_standard_input_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    import io
    import os
    import tempfile

    import pytest

    from lipstream.errors import MediaError

    def open_files():
        return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = open_files()
    with pytest.raises(MediaError) as error:
        AudioInput(io.BytesIO(b"this is not audio" * 100))
    assert "standard input" in str(error.value) and "lipstream-" not in str(error.value)
    assert list(tmp_path.iterdir()) == [] and open_files() == before  # neither the file nor its descriptor is left
    audio = AudioInput(io.BytesIO(write_wav(tmp_path / "a.wav", tone_samples(0.5)).read_bytes()))
    assert audio.duration == Fraction(1, 2) and audio.name == "standard input"
    audio.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]
