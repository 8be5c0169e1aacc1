"""Limits that keep careless or hostile clients from hurting others: deep JSON, tokenless crowds, trickling uploads."""

import asyncio
import logging

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from lipstream.server.limits import ServerConfig
from lipstream.server.protocol import Session, json_depth
from media import SAMPLE_AUDIO, SAMPLE_VIDEO
from test_server_hostile import closed_code, still_answers
from ws_client import Client, run_with_server


@pytest.mark.parametrize(
    "text,depth",
    [("{}", 1), ('{"a": [1, {"b": 2}]}', 3), ('"[[[["', 0), ('{"a": "\\"[[[["}', 1), ("[" * 500, 500), ('{"a": "\\\\", "b": [[]]}', 3)],
)
def test_json_depth_is_counted_without_parsing(text, depth):
    assert json_depth(text) == depth


def test_deep_json_is_refused_before_parsing():
    session = Session(ServerConfig(), ["passthrough"], authenticated=True)
    for text in ["[" * 1000, '{"type": "hello", "x": ' + "[" * 9 + "]" * 9 + "}"]:
        with pytest.raises(Exception) as error:
            session.receive_text(text)
        assert error.value.code == "bad_json" and "nests deeper" in str(error.value)


def test_a_deeply_nested_message_gets_bad_json_and_no_traceback(tmp_path, caplog):
    async def scenario(running):
        client = await Client.open(running)
        await client.send('{"type": "hello", "x": ' + "[" * 1000 + "]" * 1000 + "}")  # about 2 KB
        error = await client.expect("error")
        return error, await still_answers(client)

    with caplog.at_level(logging.DEBUG):
        error, alive = run_with_server(scenario, tmp_path)
    assert error["code"] == "bad_json" and alive
    assert not [r for r in caplog.records if r.exc_info or "RecursionError" in r.getMessage()]


def test_idle_tokenless_clients_never_lock_out_clients_with_the_token(tmp_path):
    async def scenario(running):
        idle = [await Client.open(running) for _ in range(3)]  # no token: they fill only their own cap
        try:
            await connect(running.ws_url)
            fourth = "open"
        except InvalidStatus as exc:
            fourth = exc.response.status_code
        with_token = [await Client.open(running, additional_headers={"Authorization": "Bearer s3cret"}) for _ in range(2)]
        answers = [await still_answers(client) for client in with_token]
        # the idle ones are told and closed once their time to authenticate is over
        told = [(await client.recv(5))["code"] for client in idle]
        codes = [await closed_code(client) for client in idle]
        return fourth, answers, told, codes

    fourth, answers, told, codes = run_with_server(
        scenario, tmp_path, token="s3cret", max_connections=2, max_unauthenticated=3, auth_timeout=1.0
    )
    assert fourth == 503
    assert answers == [True, True]
    assert told == ["unauthorized"] * 3 and codes == [1008] * 3


def test_a_client_authenticating_by_message_when_the_slots_are_full_is_told_busy(tmp_path):
    async def scenario(running):
        holder = await Client.open(running, additional_headers={"Authorization": "Bearer s3cret"})
        late = await Client.open(running)  # admitted as tokenless
        await late.send({"type": "hello", "token": "s3cret"})
        error = await late.expect("error")
        return error["code"], await closed_code(late), await still_answers(holder)

    assert run_with_server(scenario, tmp_path, token="s3cret", max_connections=1) == ("busy", 1013, True)


def test_a_trickling_upload_is_dropped_with_an_error(tmp_path):
    video, audio = SAMPLE_VIDEO.read_bytes(), SAMPLE_AUDIO.read_bytes()

    async def scenario(running):
        client = await Client.open(running)
        await client.send({"type": "start", "video": {"size": len(video)}, "audio": {"size": len(audio)}})
        await client.expect("accepted")
        error = None
        for at in range(0, 200, 10):  # 10 bytes every 0.2 s: 50 B/s
            try:
                await client.ws.send(video[at : at + 10])
                message = await asyncio.wait_for(client.recv(), 0.2)
            except asyncio.TimeoutError:
                continue
            except Exception:
                break
            error = message
            break
        code = await closed_code(client)
        for _ in range(50):
            if not list(running.app.jobs_dir.iterdir()):
                break
            await asyncio.sleep(0.05)
        return error, code, list(running.app.jobs_dir.iterdir())

    error, code, leftovers = run_with_server(scenario, tmp_path, min_upload_rate=1000, upload_grace=0.5)
    assert error is not None and error["type"] == "error" and error["code"] == "too_slow", error
    assert code == 1008 and leftovers == []


def test_a_steady_upload_is_not_dropped(tmp_path):
    async def scenario(running):
        client = await Client.open(running)
        await client.start_upload(SAMPLE_VIDEO.read_bytes(), SAMPLE_AUDIO.read_bytes(), chunk=32 * 1024, engine="passthrough")
        seen, _ = await client.until_end()
        return seen[-1]["type"]

    assert run_with_server(scenario, tmp_path, min_upload_rate=1000, upload_grace=0.0) == "done"
