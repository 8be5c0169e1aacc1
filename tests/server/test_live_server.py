"""The live websocket (/live): speech in, the face's frames and the same audio out, with limits per client."""

import asyncio
import io
import json
import struct
import time

import av
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from lipstream.pipeline.live import FaceOptions, LiveConfig
from lipstream.pipeline.metrics.lipsync_metric import read_audio
from lipstream.server import ServerConfig, serve
from lipstream.server.limits import LiveSetup
from lipstream.server.live_protocol import HEADER, LiveProtocol
from lipstream.server.protocol import ProtocolError
from media import SAMPLE_AUDIO, SAMPLE_VIDEO

RATE = 16000
SIZE = 256
FRAME_SAMPLES = RATE // 25


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture()
def live_server(cache, tmp_path, monkeypatch):
    """Run `scenario(running)` against a live server on a free port (the face prepared once per module)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))

    def run(scenario, timeout=60, **limits):
        setup = LiveSetup(SAMPLE_VIDEO, FaceOptions(size=SIZE, loop_seconds=2.0), LiveConfig(engine="warp"), **limits.pop("live", {}))

        async def main():
            async with serve(ServerConfig(port=0, work_dir=tmp_path, live=setup, **limits)) as running:
                return await asyncio.wait_for(scenario(running), timeout)

        return asyncio.run(main())

    return run


def live_url(running, query=""):
    return f"ws://127.0.0.1:{running.port}/live{query}"


def speech(seconds):
    return (np.clip(read_audio(SAMPLE_AUDIO, RATE)[: int(seconds * RATE)], -1, 1) * 32767).astype(np.int16)


async def media(ws, count, texts=None):
    """The next `count` binary messages as (kind, format, micros, payload); text messages go to `texts`."""
    out = []
    while len(out) < count:
        message = await asyncio.wait_for(ws.recv(), 10)
        if isinstance(message, str):
            if texts is not None:
                texts.append(json.loads(message))
            continue
        kind, fmt, micros = HEADER.unpack_from(message)
        out.append((kind, fmt, micros, message[HEADER.size :]))
    return out


def test_the_protocol_refuses_bad_audio_and_options():
    config = ServerConfig(live=LiveSetup(SAMPLE_VIDEO, max_audio_chunk=1000))
    protocol = LiveProtocol(config, authenticated=True)
    with pytest.raises(ProtocolError, match="send start before audio"):
        protocol.receive_audio(640)
    with pytest.raises(ProtocolError) as wrong_rate:
        protocol.receive_text('{"type": "start", "rate": 44100}')
    assert wrong_rate.value.code == "bad_rate" and wrong_rate.value.fatal
    with pytest.raises(ProtocolError, match="format must be"):
        protocol.receive_text('{"type": "start", "format": "h265"}')
    with pytest.raises(ProtocolError, match="unknown field"):
        protocol.receive_text('{"type": "start", "volume": 3}')
    protocol.receive_text('{"type": "start", "format": "i420", "rate": 16000}')
    with pytest.raises(ProtocolError, match="already streaming"):
        protocol.receive_text('{"type": "start"}')
    with pytest.raises(ProtocolError) as odd:
        protocol.receive_audio(641)
    assert odd.value.code == "bad_audio" and not odd.value.fatal
    with pytest.raises(ProtocolError) as big:
        protocol.receive_audio(1002)
    assert big.value.code == "too_large" and "at most 1000 bytes" in str(big.value)
    protocol.receive_audio(640)
    with pytest.raises(ProtocolError, match="unknown message type"):
        protocol.receive_text('{"type": "dance"}')
    locked = LiveProtocol(ServerConfig(token="T", live=LiveSetup(SAMPLE_VIDEO)), authenticated=False)
    with pytest.raises(ProtocolError) as unauthorized:
        locked.receive_text('{"type": "start"}')
    assert unauthorized.value.fatal


def test_raw_frames_carry_the_same_audio_in_sync(live_server):
    voice = speech(1.0)

    async def scenario(running):
        async with connect(live_url(running), max_size=None) as ws:
            hello = json.loads(await ws.recv())
            await ws.send(json.dumps({"type": "start", "format": "i420"}))
            await ws.send(voice.tobytes())
            texts = []
            messages = await media(ws, 2 * 60, texts)
            await ws.send('{"type": "stop"}')
            rest = [json.loads(m) async for m in ws if isinstance(m, str)]
            return hello, texts, messages, rest

    hello, texts, messages, rest = live_server(scenario)
    assert hello["mode"] == "live" and (hello["width"], hello["fps"], hello["rate"]) == (SIZE, 25, RATE)
    assert texts[0]["type"] == "started" and texts[0]["format"] == "i420"
    videos = [m for m in messages if m[0] == b"v"]
    audios = [m for m in messages if m[0] == b"a"]
    assert [m[0] for m in messages[:6]] == [b"v", b"a"] * 3  # each frame, then its audio
    assert all(len(v[3]) == SIZE * SIZE * 3 // 2 for v in videos)
    assert all(len(a[3]) == 2 * FRAME_SAMPLES for a in audios)
    times = [v[2] for v in videos]
    assert np.all(np.diff(times) == 40000) and [a[2] for a in audios] == times  # a frame and its audio share a time
    played = np.frombuffer(b"".join(a[3] for a in audios), np.int16)
    start = int(np.flatnonzero(played)[0])
    # the speech plays whole and unchanged, starting within the jitter delay plus one frame of its arrival
    first = int(np.flatnonzero(voice)[0])
    assert np.array_equal(played[start - first : start - first + len(voice)], voice)
    assert (start - first) / RATE <= LiveConfig().start_delay + 2 / 25
    picture = np.frombuffer(videos[30][3], np.uint8).reshape(SIZE * 3 // 2, SIZE)
    assert 40 < picture[:SIZE].mean() < 220  # a picture, not a blank
    assert rest[-1]["type"] == "stopped" and rest[-1]["frames"] >= 60 and rest[-1]["dropped"] == 0


def test_fmp4_streams_play_as_a_video_and_its_audio(live_server):
    async def scenario(running):
        async with connect(live_url(running), max_size=None) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "start", "format": "fmp4"}))
            await ws.send(speech(0.5).tobytes())
            texts = []
            messages = await media(ws, 80, texts)
            return texts, messages

    texts, messages = live_server(scenario)
    started = texts[0]
    assert started["video_mime"].startswith('video/mp4; codecs="avc1.42') and started["audio_mime"] == 'audio/mp4; codecs="opus"'
    video = b"".join(m[3] for m in messages if m[0] == b"v" and m[1] == 1)
    audio = b"".join(m[3] for m in messages if m[0] == b"a" and m[1] == 1)
    with av.open(io.BytesIO(video)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) >= 35 and (frames[0].width, frames[0].height) == (SIZE, SIZE)
    assert np.all(np.diff([float(f.time) for f in frames]) == pytest.approx(0.04))
    with av.open(io.BytesIO(audio)) as container:
        seconds = sum(f.samples / f.sample_rate for f in container.decode(audio=0))
    assert seconds == pytest.approx(len(frames) * 0.04, abs=0.12)


def test_a_client_that_leaves_mid_utterance_frees_its_session(live_server):
    async def scenario(running):
        ws = await connect(live_url(running), max_size=None)
        await ws.recv()
        await ws.send(json.dumps({"type": "start", "format": "i420"}))
        await ws.send(speech(2.0).tobytes())
        await media(ws, 10)
        assert running.app.live_sessions == 1
        ws.transport.abort()  # gone without a close frame
        deadline = time.monotonic() + 5
        while running.app.live_sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        freed = running.app.live_sessions
        async with connect(live_url(running), max_size=None) as again:  # the slot is free for the next one
            await again.recv()
            await again.send(json.dumps({"type": "start", "format": "i420"}))
            await media(again, 4)
        return freed

    assert live_server(scenario, live={"max_sessions": 1}) == 0


def test_sessions_beyond_the_limit_are_told_busy(live_server):
    async def scenario(running):
        async with connect(live_url(running), max_size=None) as first, connect(live_url(running), max_size=None) as second:
            await first.recv()
            await first.send(json.dumps({"type": "start", "format": "i420"}))
            await media(first, 2)
            await second.recv()
            await second.send(json.dumps({"type": "start", "format": "i420"}))
            error = json.loads(await second.recv())
            with pytest.raises(ConnectionClosed) as closed:
                await second.recv()
            return error, closed.value.rcvd.code

    error, code = live_server(scenario, live={"max_sessions": 1})
    assert error["code"] == "busy" and code == 1013


def test_a_slow_client_never_stalls_the_others(live_server):
    def dropped(running):
        return sum(getattr(c, "sent_dropped", 0) for c in running.app.connections)

    async def scenario(running):
        slow = await connect(live_url(running), max_size=None)
        await slow.recv()
        await slow.send(json.dumps({"type": "start", "format": "i420"}))  # and then never reads
        async with connect(live_url(running), max_size=None) as fast:
            await fast.recv()
            await fast.send(json.dumps({"type": "start", "format": "i420"}))
            await media(fast, 2)
            begin, frames = time.monotonic(), 0
            # socket buffers take the stalled client's first seconds; then its frames must be dropped
            while frames < 75 or (not dropped(running) and frames < 500):
                frames += sum(m[0] == b"v" for m in await media(fast, 50))
            seconds = time.monotonic() - begin
        result = frames, seconds, dropped(running)
        slow.transport.abort()
        return result

    frames, seconds, count = live_server(scenario, timeout=120)
    assert frames / seconds > 23  # the reader kept the frame rate all along
    assert count > 0  # the stalled client's frames were dropped and counted, not buffered


def test_bad_audio_gets_an_error_and_the_stream_goes_on(live_server):
    async def scenario(running):
        async with connect(live_url(running), max_size=None) as ws:
            await ws.recv()
            await ws.send(b"\x00\x00")  # before start
            before = json.loads(await ws.recv())
            await ws.send(json.dumps({"type": "start", "format": "i420"}))
            await ws.send(b"\x00\x00\x00")
            texts = []
            await media(ws, 6, texts)
            await ws.send(b"\x00" * (70 * 1024))
            await media(ws, 6, texts)
            return before, [t for t in texts if t["type"] == "error"]

    before, errors = live_server(scenario)
    assert before["code"] == "unexpected_binary"
    assert [e["code"] for e in errors] == ["bad_audio", "too_large"]


def test_a_wrong_rate_closes_and_a_server_without_a_face_has_no_live_socket(live_server, tmp_path):
    async def scenario(running):
        async with connect(live_url(running), max_size=None) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "start", "rate": 48000}))
            error = json.loads(await ws.recv())
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            return error, closed.value.rcvd.code

    error, code = live_server(scenario)
    assert error["code"] == "bad_rate" and "16000" in error["message"] and code == 1003

    async def plain():
        async with serve(ServerConfig(port=0, work_dir=tmp_path)) as running:
            with pytest.raises(InvalidStatus) as refused:
                await connect(f"ws://127.0.0.1:{running.port}/live")
            return refused.value.response.status_code

    assert asyncio.run(plain()) == 404
