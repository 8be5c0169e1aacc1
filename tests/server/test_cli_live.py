"""`lipstream live` as a user runs it: it prepares the face, says where it listens, streams, stops on a signal."""

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import urllib.request

import numpy as np
from websockets.asyncio.client import connect

from lipstream.server.live_protocol import HEADER
from media import SAMPLE_VIDEO


def lipstream(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lipstream", *args], capture_output=True, timeout=60, env=env)


def test_live_serves_the_face_and_stops_on_sigint(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [sys.executable, "-m", "lipstream", "live", "--face", str(SAMPLE_VIDEO), "--size", "128", "--loop", "1", "--engine", "warp", "--port", "0", "--json"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        events = []
        while not events or events[-1]["event"] != "listening":
            ready, _, _ = select.select([process.stderr], [], [], 60)
            assert ready, f"no listening line within 60 s: {events}"
            events.append(json.loads(process.stderr.readline()))
        assert events[0] == {"event": "preparing", "face": str(SAMPLE_VIDEO)}
        listening = events[-1]
        assert listening["url"].endswith("/live") and listening["websocket"].endswith("/live")
        with urllib.request.urlopen(listening["url"], timeout=10) as response:
            assert response.status == 200 and b"lipstream live" in response.read()

        async def stream():
            async with connect(listening["websocket"], max_size=None) as ws:
                hello = json.loads(await ws.recv())
                await ws.send(json.dumps({"type": "start", "format": "i420"}))
                await ws.send(np.full(8000, 3000, np.int16).tobytes())
                frames = []
                while len(frames) < 20:
                    message = await ws.recv()
                    if isinstance(message, bytes) and message[:1] == b"v":
                        frames.append(message[HEADER.size :])
                return hello, frames

        hello, frames = asyncio.run(asyncio.wait_for(stream(), 30))
        assert hello["width"] == 128 and all(len(f) == 128 * 192 for f in frames)
        assert list((tmp_path / "cache" / "lipstream" / "live").glob("*.npz")), "the prepared face is cached"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert stdout == b""
    assert json.loads(stderr.decode().splitlines()[-1]) == {"event": "done", "stopped": True}


def test_live_refuses_bad_input_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LIPSTREAM_WEIGHTS"} | {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    for args, expected in [
        (["--face", str(tmp_path / "missing.mp4")], "face file not found"),
        (["--face", str(SAMPLE_VIDEO), "--size", "255"], "--size 255 must be even"),
        (["--face", str(SAMPLE_VIDEO), "--delay", "0.05"], "live delay 0.05 s is shorter"),
        (["--face", str(SAMPLE_VIDEO), "--engine", "wav2lip", "--weights", str(tmp_path)], "the wav2lip engine needs wav2lip_gan.pth or wav2lip.pth"),
    ]:
        result = lipstream("live", *args, "--port", "0", env=env)
        err = result.stderr.decode()
        assert result.returncode == 2 and expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
