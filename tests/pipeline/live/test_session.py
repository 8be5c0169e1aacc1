"""Live sessions: speech in, frames out with the same audio, idling between utterances, in real time."""

import asyncio
import time

import numpy as np
import pytest

from lipstream.errors import InputError
from lipstream.pipeline.live import FaceOptions, LiveAvatar, LiveConfig, LiveSession, prepare_face
from lipstream.pipeline.metrics.lipsync_metric import lip_openings, read_audio
from media import SAMPLE_AUDIO, SAMPLE_VIDEO

RATE = 16000


@pytest.fixture(scope="module")
def face(tmp_path_factory):
    return prepare_face(SAMPLE_VIDEO, FaceOptions(size=256, loop_seconds=2.0), cache=tmp_path_factory.mktemp("live-cache"))


@pytest.fixture(scope="module")
def speech():
    return (np.clip(read_audio(SAMPLE_AUDIO, RATE)[: 2 * RATE], -1, 1) * 32767).astype(np.int16)


async def take(session, count):
    frames = []
    async for frame in session:
        frames.append(frame)
        if len(frames) == count:
            break
    return frames


@pytest.mark.parametrize("engine", ["warp", "exemplar"])
def test_frames_carry_the_pushed_speech_in_sync_and_the_mouth_follows_it(face, speech, engine):
    session = LiveAvatar(face, LiveConfig(engine=engine)).session(pace=False)
    session.push_audio(speech.tobytes())
    frames = asyncio.run(take(session, 100))  # 2 s of speech after the delay, then idle
    session.close()
    assert [f.tick for f in frames] == list(range(100))
    assert all(len(f.audio) == RATE // 25 for f in frames)
    # each frame carries exactly its own 40 ms of the stream: silence for the delay, then the speech
    delay = round(LiveConfig().start_delay * RATE)
    played = np.concatenate([f.audio for f in frames])
    assert not played[:delay].any()
    assert np.array_equal(played[delay : delay + len(speech)], speech)
    assert not played[delay + len(speech) :].any()
    speaking = [f.speech for f in frames]
    assert speaking.index(True) == delay // (RATE // 25)
    assert all(f.drawn for f in frames)
    # the mouth opens while speech plays and rests closed while the face idles
    talk = lip_openings(f.rgb() for f in frames[10:55])
    idle = lip_openings(f.rgb() for f in frames[65:100])
    source = lip_openings(face.frame(f.tick, f.time).rgb() for f in frames[65:100])
    assert np.nanmax(talk) > 2 * np.nanmedian(idle)
    assert np.nanmean(idle) < np.nanmean(source)


def test_interrupt_drops_the_speech_not_yet_played(face, speech):
    session = LiveAvatar(face, LiveConfig(engine="warp")).session(pace=False)
    session.push_audio(speech.tobytes())

    async def run():
        first = await take(session, 20)
        session.interrupt()
        return first, await take(session, 40)

    before, after = asyncio.run(run())
    session.close()
    assert any(f.speech for f in before)
    assert not any(f.speech for f in after[1:])


def test_bad_audio_is_refused_in_one_line(face):
    session = LiveSession(face, LiveConfig(engine="warp"), pace=False)
    with pytest.raises(InputError, match="16-bit"):
        session.push_audio(b"\x00\x01\x02")
    with pytest.raises(InputError, match="already waiting"):
        session.push_audio(np.zeros(31 * RATE, np.float32))
    session.close()
    with pytest.raises(InputError, match="closed"):
        session.push_audio(b"\x00\x00")
    with pytest.raises(InputError, match="live mode runs"):
        LiveConfig(engine="retalking")


@pytest.mark.slow
def test_real_time_with_speech_arriving_as_it_is_spoken(face, speech):
    """The default engine keeps 25 fps on this CPU, speech shows within the budget (generous margins)."""
    avatar = LiveAvatar(face)
    session = avatar.session()

    async def run():
        async def feed():
            await asyncio.sleep(0.5)
            start = time.monotonic()
            for at in range(0, len(speech), 320):  # 20 ms chunks, in real time
                await asyncio.sleep(max(0.0, start + at / RATE - time.monotonic()))
                session.push_audio(speech[at : at + 320].tobytes())

        feeder = asyncio.create_task(feed())
        start = time.monotonic()
        frames = await take(session, 100)
        await feeder
        return frames, time.monotonic() - start

    frames, seconds = asyncio.run(run())
    session.close()
    stats = session.stats.as_dict()
    assert 3.8 < seconds < 4.4  # paced: 100 frames in 4 s
    assert stats["dropped"] == 0 and stats["skipped"] == 0
    assert 0 < stats["first_frame_latency"] <= 0.4
    assert stats["latency_p95"] <= 0.25
    assert sum(f.speech for f in frames) >= 45


@pytest.mark.slow
def test_a_consumer_that_stops_pulling_skips_frames_instead_of_buffering_them(face):
    session = LiveSession(face, LiveConfig(engine="warp"))

    async def run():
        ticks = []
        async for frame in session:
            ticks.append(frame.tick)
            if len(ticks) == 10:
                await asyncio.sleep(0.8)  # a stalled consumer
            if len(ticks) == 30:
                return ticks

    ticks = asyncio.run(run())
    session.close()
    assert session.stats.skipped >= 10
    jump = max(b - a for a, b in zip(ticks, ticks[1:]))
    assert jump >= 10  # the stream kept its clock: it resumed at the current frame


def test_wav2lip_draws_live_frames_with_the_users_checkpoint(face, speech, tmp_path):
    from lipstream.errors import WeightsError
    from official_weights import write_wav2lip

    with pytest.raises(WeightsError, match="wav2lip"):
        LiveAvatar(face, LiveConfig(engine="wav2lip"), weights=(tmp_path,))
    write_wav2lip(tmp_path)
    session = LiveAvatar(face, LiveConfig(engine="wav2lip"), weights=(tmp_path,)).session(pace=False)
    session.push_audio(speech.tobytes())
    frames = asyncio.run(take(session, 14))
    session.close()
    assert LiveConfig(engine="wav2lip").start_delay > LiveConfig().start_delay  # its mel window reads 0.25 s ahead
    for frame in frames[10:]:
        source = face.frame(frame.tick, frame.time).rgb().astype(int)
        changed = np.abs(frame.rgb().astype(int) - source).max(axis=2) > 8
        x0, y0, x1, y1 = face.faces[face.loop_index(frame.tick)].crop
        rows = np.flatnonzero(changed.any(axis=1))
        assert frame.drawn and changed.sum() > 500  # the network redrew the lower face ...
        assert not changed[:y0].any() and not changed[:, :x0].any() and not changed[:, x1:].any()  # ... and nothing outside the face
        assert rows.min() > face.faces[face.loop_index(frame.tick)].landmarks[168, 1]  # below the nose bridge only


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_wav2lip_live_on_cuda_keeps_real_time(face, speech, tmp_path):
    from official_weights import write_wav2lip

    write_wav2lip(tmp_path)
    session = LiveAvatar(face, LiveConfig(engine="wav2lip"), device="cuda:0", weights=(tmp_path,)).session()
    session.push_audio(speech.tobytes())
    frames = asyncio.run(take(session, 75))
    session.close()
    assert all(f.drawn for f in frames) and session.stats.dropped == 0 and session.stats.skipped == 0
