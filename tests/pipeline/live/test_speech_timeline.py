"""Where live speech lands on the stream's clock."""

import numpy as np
import pytest

from lipstream.errors import InputError
from lipstream.pipeline.live.timeline import SpeechTimeline

RATE = 16000


def tone(seconds, value=0.5):
    return np.full(int(seconds * RATE), value, np.float32)


def test_speech_after_a_pause_starts_a_delay_after_it_arrives():
    timeline = SpeechTimeline(RATE, delay=0.1)
    placed = timeline.push(tone(0.2), now=RATE)
    assert (placed.start, placed.end) == (RATE + 1600, RATE + 1600 + 3200)
    assert not timeline.speaking(0, placed.start)
    assert timeline.speaking(placed.start, placed.start + 1)
    span = timeline.span(placed.start - 10, placed.end + 10)
    assert np.all(span.samples[:10] == 0) and np.all(span.samples[10:-10] == 0.5) and np.all(span.samples[-10:] == 0)


def test_speech_sent_faster_than_it_plays_follows_without_a_gap():
    timeline = SpeechTimeline(RATE, delay=0.1)
    first = timeline.push(tone(1.0, 0.25), now=0)
    second = timeline.push(tone(1.0, 0.75), now=10)  # arrives at once, plays after the first
    assert second.start == first.end
    samples = timeline.span(first.start, second.end).samples
    assert np.all(samples[: RATE] == 0.25) and np.all(samples[RATE:] == 0.75)


def test_a_chunk_a_little_late_follows_without_a_hole():
    timeline = SpeechTimeline(RATE, delay=0.1)
    ready = 800  # what the next frame to draw reads ahead
    first = timeline.push(tone(0.1), now=0, ready=ready)
    late = timeline.push(tone(0.1), now=first.end - 1000, ready=ready)  # 1000 queued: enough
    assert late.start == first.end
    too_late = timeline.push(tone(0.1), now=late.end - 700, ready=ready)  # 700 queued: the frame needs 800
    assert too_late.start == late.end - 700 + 1600


def test_speech_after_the_queue_ran_out_waits_the_delay_again():
    timeline = SpeechTimeline(RATE, delay=0.1)
    first = timeline.push(tone(0.1), now=0)
    later = timeline.push(tone(0.1), now=first.end + RATE)
    assert later.start == first.end + RATE + 1600


def test_too_much_queued_speech_is_refused_in_one_line():
    timeline = SpeechTimeline(RATE, delay=0.1, max_queued=2.0)
    timeline.push(tone(1.5), now=0)
    with pytest.raises(InputError, match="already waiting to be played") as info:
        timeline.push(tone(1.0), now=0)
    assert "\n" not in str(info.value)
    timeline.push(tone(1.0), now=RATE)  # once a second has played there is room


def test_clear_silences_what_was_not_played():
    timeline = SpeechTimeline(RATE, delay=0.1)
    placed = timeline.push(tone(2.0), now=0)
    timeline.clear(placed.start + RATE)
    assert timeline.speaking(placed.start, placed.start + RATE)
    assert not timeline.speaking(placed.start + RATE, placed.end)
    again = timeline.push(tone(0.1), now=placed.start + RATE)
    assert again.start == placed.start + RATE + 1600  # speech after an interruption starts afresh


def test_memory_stays_bounded_on_an_endless_stream():
    timeline = SpeechTimeline(RATE, delay=0.1, keep=1.0)
    now = 0
    for _ in range(600):  # ten minutes of speech, a second at a time, read as it plays
        timeline.push(tone(1.0), now=now)
        now += RATE
        timeline.forget(now)
    assert timeline._samples.nbytes < 8 * RATE * 4
