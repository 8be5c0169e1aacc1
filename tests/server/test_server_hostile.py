"""Hostile and careless clients: every one gets an answer or a clean close, and the server carries on."""

import asyncio
import threading

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from lipstream.pipeline.engines import ENGINES, Engine
from media import SAMPLE_AUDIO, SAMPLE_VIDEO
from ws_client import Client, SlowPassthrough, http_status, run_with_server

VIDEO, AUDIO = SAMPLE_VIDEO.read_bytes(), SAMPLE_AUDIO.read_bytes()
SLOW = {"engine": "slow", "window": 4, "overlap": 1}  # about 33 windows


@pytest.fixture
def slow_engine(monkeypatch):
    started = threading.Event()
    monkeypatch.setitem(ENGINES, "slow", Engine("slow", "test: passthrough, slowly", lambda config, found: [SlowPassthrough(0.05, started)]))
    return started


def job_threads():
    """What a running job holds: its task on the server loop and its decode/encode/stage threads."""
    tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("lipstream-job-") and not t.done()]
    threads = [t for t in threading.enumerate() if t.name.startswith(("lipstream-decode", "lipstream-encode", "lipstream-stage"))]
    return tasks + threads


async def closed_code(client, timeout=10):
    """Read until the server closes; the close code."""
    try:
        while True:
            await client.recv(timeout)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


async def still_answers(client):
    await client.send({"type": "hello"})
    return (await client.expect("hello"))["type"] == "hello"


def test_malformed_and_out_of_order_messages_get_errors_and_the_connection_lives(tmp_path):
    async def scenario(running):
        client = await Client.open(running)
        codes = []
        for message in ["{nope", '"text"', '{"type": "launch"}', '{"type": "cancel"}', b"\x00\x01stray", '{"type": "fetch", "job": "nope-nope-nope-nope"}']:
            await client.send(message)
            codes.append((await client.expect("error"))["code"])
        await client.send({"type": "start", "video": {"size": 10}, "audio": {"size": 10}})
        await client.expect("accepted")
        await client.send({"type": "start", "video": {"size": 10}, "audio": {"size": 10}})
        codes.append((await client.expect("error"))["code"])
        await client.send(b"x" * 25)  # 5 bytes more than announced: the job is dropped
        codes.append((await client.expect("error"))["code"])
        alive = await still_answers(client)
        return codes, alive, list(running.app.jobs_dir.iterdir())

    codes, alive, leftovers = run_with_server(scenario, tmp_path)
    assert codes == ["bad_json", "bad_message", "unknown_type", "bad_state", "unexpected_binary", "not_found", "bad_state", "too_large"]
    assert alive and leftovers == []


def test_oversize_messages_and_uploads(tmp_path):
    async def scenario(running):
        client = await Client.open(running)
        await client.send({"type": "start", "video": {"size": 10_000}, "audio": {"size": 10}})
        too_large = (await client.expect("error"))["code"]
        await client.send(b"x" * 5000)  # over max_message_bytes: websockets closes with 1009
        return too_large, await closed_code(client)

    assert run_with_server(scenario, tmp_path, max_message_bytes=4096, max_upload_bytes=8000) == ("too_large", 1009)


def test_a_client_making_only_mistakes_is_closed(tmp_path):
    async def scenario(running):
        client = await Client.open(running)
        for _ in range(100):
            try:
                await client.send("{")
            except ConnectionClosed:
                break
        return await closed_code(client)

    assert run_with_server(scenario, tmp_path) == 1008


def test_paths_outside_the_root_are_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.wav").write_bytes(AUDIO)
    (root / "link.wav").symlink_to(tmp_path / "secret.wav")
    (root / "v.mp4").write_bytes(VIDEO)

    async def scenario(running):
        client = await Client.open(running)
        codes = []
        for audio in ["../secret.wav", "/etc/passwd", "link.wav", str(tmp_path / "secret.wav"), "nothing.wav"]:
            await client.send({"type": "start", "video": {"path": "v.mp4"}, "audio": {"path": audio}})
            codes.append((await client.expect("error"))["code"])
        return codes, list(running.app.jobs_dir.iterdir())

    codes, leftovers = run_with_server(scenario, tmp_path, root=root)
    assert codes == ["forbidden_path", "forbidden_path", "forbidden_path", "forbidden_path", "not_found"]
    assert leftovers == []


def test_inputs_that_are_not_self_contained_media_are_refused(tmp_path):
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nfile://{SAMPLE_VIDEO}\n#EXT-X-ENDLIST\n".encode()

    async def scenario(running):
        client = await Client.open(running)
        results = []
        for video in (playlist, b"\x00garbage" * 100):
            await client.start_upload(video, AUDIO)
            seen, output = await client.until_end()
            results.append((seen[-1]["type"], seen[-1].get("code"), len(output)))
        return results, await still_answers(client)

    results, alive = run_with_server(scenario, tmp_path)
    assert results == [("error", "input", 0), ("error", "input", 0)]
    assert alive


def test_a_client_leaving_mid_job_cancels_it_and_its_files_go(tmp_path, slow_engine):
    async def scenario(running):
        client = await Client.open(running)
        job = await client.start_upload(VIDEO, AUDIO, **SLOW)
        while not isinstance(await client.recv(), bytes):  # wait for output to flow
            pass
        assert len(list(running.app.jobs_dir.iterdir())) == 1 and job_threads()
        client.ws.transport.abort()  # vanish without a close frame
        for _ in range(200):
            if not list(running.app.jobs_dir.iterdir()) and not job_threads():
                break
            await asyncio.sleep(0.05)
        leftovers = list(running.app.jobs_dir.iterdir())
        # the output was not kept: the job never finished
        return job, leftovers, running.app.store.get(job), job_threads(), running.app.queue.running

    job, leftovers, kept, threads, running_jobs = run_with_server(scenario, tmp_path)
    assert leftovers == [] and kept is None and threads == [] and running_jobs == 0


def test_leaving_mid_upload_removes_the_partial_upload(tmp_path):
    async def scenario(running):
        client = await Client.open(running)
        await client.send({"type": "start", "video": {"size": len(VIDEO)}, "audio": {"size": len(AUDIO)}})
        await client.expect("accepted")
        await client.send(VIDEO[:100_000])
        await asyncio.sleep(0.1)
        during = [p.name for p in next(running.app.jobs_dir.iterdir()).iterdir()]
        await client.close()
        for _ in range(100):
            if not list(running.app.jobs_dir.iterdir()):
                break
            await asyncio.sleep(0.05)
        return during, list(running.app.jobs_dir.iterdir())

    during, after = run_with_server(scenario, tmp_path)
    assert sorted(during) == ["audio.upload", "video.upload"] and after == []


def test_jobs_beyond_the_limit_wait_in_line_and_cancel_frees_the_slot(tmp_path, slow_engine):
    async def scenario(running):
        a, b, c = [await Client.open(running) for _ in range(3)]
        await a.start_upload(VIDEO, AUDIO, **SLOW)
        await a.expect("uploaded")
        await a.expect("started")
        await b.start_upload(VIDEO, AUDIO, **SLOW)
        await b.expect("uploaded")
        queued = await b.expect("queued")
        await c.start_upload(VIDEO, AUDIO, **SLOW)
        await c.expect("uploaded")
        busy = await c.expect("error")
        await a.send({"type": "cancel"})
        a_seen, _ = await a.until_end()
        b_started = await b.expect("started")
        # the cancelled connection can start again and waits behind b
        await a.start_upload(VIDEO, AUDIO, **SLOW)
        await a.expect("uploaded")
        again = await a.expect("queued")
        for client in (a, b, c):
            await client.close()
        return queued, busy, a_seen[-1], b_started, again

    queued, busy, a_end, b_started, again = run_with_server(scenario, tmp_path, max_jobs=1, max_waiting=1)
    assert queued["position"] == 1
    assert busy["code"] == "busy"
    assert a_end["type"] == "cancelled" and b_started["type"] == "started"
    assert again["position"] == 1


def test_tokens(tmp_path):
    async def scenario(running):
        results = {}
        try:
            await connect(running.ws_url, additional_headers={"Authorization": "Bearer wrong"})
        except InvalidStatus as exc:
            results["wrong header"] = exc.response.status_code
        client = await Client.open(running, additional_headers={"Authorization": "Bearer s3cret"})
        results["header"] = client.hello["authenticated"]
        client = Client(await connect(running.ws_url + "?token=s3cret"))
        results["query"] = (await client.recv())["authenticated"]
        client = await Client.open(running)
        results["none"] = client.hello["authenticated"]
        await client.send({"type": "hello", "token": "s3cret"})
        results["first message"] = (await client.expect("hello"))["authenticated"]
        client = await Client.open(running)
        await client.send({"type": "start", "video": {"size": 1}, "audio": {"size": 1}})
        results["missing"] = ((await client.expect("error"))["code"], await closed_code(client))
        return results

    results = run_with_server(scenario, tmp_path, token="s3cret")
    assert results == {"wrong header": 401, "header": True, "query": True, "none": False, "first message": True, "missing": ("unauthorized", 1008)}


def test_downloads_need_the_token_too(tmp_path):
    async def scenario(running):
        client = await Client.open(running, additional_headers={"Authorization": "Bearer s3cret"})
        await client.start_upload(VIDEO, AUDIO, window=50)
        seen, _ = await client.until_end()
        url = running.url.rstrip("/") + seen[-1]["url"]
        return [await http_status(url), await http_status(url + "?token=nope"), await http_status(url + "?token=s3cret"),
                await http_status(url, {"Authorization": "Bearer s3cret"})]

    assert run_with_server(scenario, tmp_path, token="s3cret") == [401, 401, 200, 200]


def test_origins(tmp_path):
    async def scenario(running):
        results = {}
        for origin in ["http://evil.example", f"http://127.0.0.1:{running.port}", "https://app.example", "null"]:
            try:
                async with connect(running.ws_url, origin=origin):
                    results[origin] = "open"
            except InvalidStatus as exc:
                results[origin] = exc.response.status_code
        return running.port, results

    port, results = run_with_server(scenario, tmp_path, origins=("https://app.example",))
    assert results == {"http://evil.example": 403, f"http://127.0.0.1:{port}": "open", "https://app.example": "open", "null": 403}


def test_idle_clients_and_too_many_connections(tmp_path):
    async def scenario(running):
        first = await Client.open(running)
        second = await Client.open(running)
        try:
            await connect(running.ws_url)
            refused = None
        except InvalidStatus as exc:
            refused = exc.response.status_code
        message = await first.recv(5)
        return refused, message, await closed_code(first), await closed_code(second)

    refused, message, code, _ = run_with_server(scenario, tmp_path, max_connections=2, idle_timeout=0.5)
    assert refused == 503
    assert message["type"] == "error" and message["code"] == "timeout" and code == 1001
