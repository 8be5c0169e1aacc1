"""A job over the websocket: progress, then output fragments as windows complete, then done.

The fragments joined together must decode to the same frames as the CLI's
output for the same inputs and options; the kept output is the same bytes.
"""

import asyncio
import socket

import numpy as np
import pytest

from media import SAMPLE_AUDIO, SAMPLE_VIDEO, audio_samples, run_cli, video_frames
from ws_client import Client, http_get, run_with_server

OPTIONS = {"engine": "passthrough", "window": 16, "overlap": 4, "fit": "audio"}


@pytest.fixture(scope="module")
def cli_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "out.mp4"
    result = run_cli(["sync", SAMPLE_VIDEO, SAMPLE_AUDIO, "-o", out, "--engine", "passthrough", "--window", "16", "--overlap", "4", "--tune", "zerolatency"])
    assert result.returncode == 0, result.stderr.decode()
    return out


def raw_status(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(200).split(b"\r\n")[0]


async def fetch(client, job):
    """A finished output over the websocket."""
    await client.send({"type": "fetch", "job": job})
    head = await client.expect("file")
    data = bytearray()
    while True:
        message = await client.recv()
        if isinstance(message, dict):
            assert message["type"] == "file_end", message
            break
        data += message
    assert len(data) == head["bytes"]
    return bytes(data)


def test_progress_then_fragments_then_done_decode_like_the_cli(tmp_path, cli_output):
    async def scenario(running):
        client = await Client.open(running)
        job = await client.start_upload(SAMPLE_VIDEO.read_bytes(), SAMPLE_AUDIO.read_bytes(), **OPTIONS)
        seen, output = await client.until_end()
        fetched = await fetch(client, job)
        status, headers, body = await http_get(running.url + f"jobs/{job}/output.mp4")
        await client.close()
        return job, seen, output, fetched, (status, headers, body)

    job, seen, output, fetched, (status, headers, body) = run_with_server(scenario, tmp_path, fragment_seconds=0.5)
    kinds = ["binary" if isinstance(m, bytes) else m["type"] for m in seen]
    assert kinds[0] == "uploaded" and kinds[1] == "started", kinds
    assert kinds[-1] == "done", seen[-1]
    first_progress, first_output, first_binary = kinds.index("progress"), kinds.index("output"), kinds.index("binary")
    assert first_progress < first_binary and first_output == first_binary - 1
    assert kinds.count("binary") >= 4, "a 4 s clip at 0.5 s fragments must arrive in several pieces"
    assert kinds.index("binary") < len(kinds) - 4, "fragments must arrive while the job is still running"
    progress = [m for m in seen if isinstance(m, dict) and m["type"] == "progress"]
    assert [p["frames"] for p in progress] == sorted(p["frames"] for p in progress) and progress[-1]["frames"] == 100
    done = seen[-1]
    assert done["frames"] == 100 and done["bytes"] == len(output) and done["url"] == f"/jobs/{job}/output.mp4"
    mime = seen[first_output]["mime"]
    assert mime.startswith('video/mp4; codecs="avc1.') and mime.endswith(', mp4a.40.2"')
    assert output[4:8] == b"ftyp"

    ours, theirs = video_frames(output), video_frames(cli_output)
    assert len(ours) == len(theirs) == 100
    assert [t for t, _ in ours] == [t for t, _ in theirs]
    for i, ((_, a), (_, b)) in enumerate(zip(ours, theirs)):
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 2, f"frame {i}: max pixel difference {diff.max()} at {np.unravel_index(diff.argmax(), diff.shape)}"
    assert abs(audio_samples(output)[0] - audio_samples(cli_output)[0]) <= 1024

    assert fetched == output, "the websocket fetch returns the streamed bytes"
    assert status == 200 and headers["Content-Type"] == "video/mp4" and body == output


def test_the_page_and_unknown_paths_over_http(tmp_path):
    async def scenario(running):
        page = await http_get(running.url)
        missing = await http_get(running.url + "jobs/" + "A" * 22 + "/output.mp4")
        nowhere = await http_get(running.url + "etc/passwd")
        post = await asyncio.to_thread(raw_status, running.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        return page, missing, nowhere, post

    (status, headers, body), missing, nowhere, post = run_with_server(scenario, tmp_path)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "connect-src 'self'" in headers["Content-Security-Policy"]
    assert b"MediaSource" in body and b"<video" in body
    assert missing[0] == 404 and nowhere[0] == 404 and post == b"HTTP/1.1 405 Method Not Allowed"


def test_named_files_under_root_need_no_upload(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    (root / "v.mp4").write_bytes(SAMPLE_VIDEO.read_bytes())
    (root / "a.wav").write_bytes(SAMPLE_AUDIO.read_bytes())

    async def scenario(running):
        client = await Client.open(running)
        await client.send({"type": "start", "video": {"path": "v.mp4"}, "audio": {"path": "a.wav"}, "options": {"fit": "shortest", "window": 50}})
        accepted = await client.expect("accepted")
        seen, output = await client.until_end()
        return accepted, seen, output

    accepted, seen, output = run_with_server(scenario, tmp_path, root=root)
    assert accepted["upload"] == []
    assert seen[-1]["type"] == "done" and seen[-1]["frames"] == 100
    assert len(video_frames(output)) == 100
