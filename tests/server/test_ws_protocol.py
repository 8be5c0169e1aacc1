"""The pure protocol core: parsing, validation, message order, uploads, codec strings (no sockets)."""

import json
import struct
from pathlib import Path

import pytest

from lipstream.config import Target
from lipstream.server import ServerConfig
from lipstream.server.protocol import (
    FALLBACK_CODECS,
    MAX_ERRORS,
    Cancel,
    Fetch,
    Hello,
    Named,
    Phase,
    ProtocolError,
    Session,
    Start,
    Upload,
    UploadPlan,
    codec_string,
    hello,
)

ENGINES = ("auto", "passthrough", "other")


def session(**limits):
    return Session(ServerConfig(**limits), ENGINES, authenticated=False)


def start(**fields):
    message = {"type": "start", "video": {"size": 10}, "audio": {"size": 5}}
    message.update(fields)
    return json.dumps(message)


def refused(s, text, code):
    with pytest.raises(ProtocolError) as info:
        s.receive_text(text)
    assert info.value.code == code, str(info.value)
    return info.value


def test_start_with_uploads_builds_the_job_config():
    s = session(device="cuda:1", fragment_seconds=0.25)
    request = s.receive_text(start(options={"engine": "other", "fit": "shortest", "window": 12, "overlap": 3, "crf": 20, "preset": "ultrafast"}))
    assert isinstance(request, Start)
    assert request.video == Upload(10) and request.audio == Upload(5)
    config = request.config
    assert (config.engine, config.fit, config.device) == ("other", "shortest", "cuda:1")
    assert (config.window.size, config.window.overlap) == (12, 3)
    assert (config.encode.crf, config.encode.preset, config.encode.container, config.encode.fragment_seconds) == (20, "ultrafast", "mp4", 0.25)


def test_target_and_quality_options():
    config = session().receive_text(start(options={"quality": "fast", "target": {"x": 470, "y": 180.5, "time": 2}})).config
    assert config.quality == "fast" and config.face.target == Target(470.0, 180.5, 2.0)
    assert session().receive_text(start(options={"target": {"x": 1, "y": 2}})).config.face.target == Target(1.0, 2.0, 0.0)
    assert session().receive_text(start()).config.face.target is None
    for bad in ({"x": 1}, {"x": 1, "y": 2, "z": 3}, {"x": "1", "y": 2}, {"x": 1, "y": 2, "time": -1}, [1, 2], {"x": True, "y": 2}):
        refused(session(), start(options={"target": bad}), "bad_option")
    refused(session(), start(options={"quality": "ultra"}), "bad_option")


def test_small_window_without_overlap_gets_a_valid_overlap():
    request = session().receive_text(start(options={"window": 2}))
    assert (request.config.window.size, request.config.window.overlap) == (2, 1)


@pytest.mark.parametrize(
    "text, code",
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('{"kind": "start"}', "bad_message"),
        ('{"type": 3}', "bad_message"),
        ('{"type": "launch"}', "unknown_type"),
        ('{"type": "cancel"}', "bad_state"),
        ('{"type": "fetch"}', "bad_message"),
        (start(video={"size": -1}), "bad_message"),
        (start(video={"size": True}), "bad_message"),
        (start(video={"size": 1.5}), "bad_message"),
        (start(video={"url": "http://x"}), "bad_message"),
        (start(video={"size": 3, "path": "a"}), "bad_message"),
        (start(video="a.mp4"), "bad_message"),
        (start(video={"path": "a.mp4"}), "forbidden_path"),  # no --root
        (start(extra=1), "bad_message"),
        (start(options=[]), "bad_option"),
        (start(options={"engine": "wav2lip-hq"}), "bad_option"),
        (start(options={"fit": "longest"}), "bad_option"),
        (start(options={"window": 0}), "bad_option"),
        (start(options={"window": 10_000}), "bad_option"),
        (start(options={"window": 8, "overlap": 8}), "bad_option"),
        (start(options={"overlap": -1}), "bad_option"),
        (start(options={"crf": 99}), "bad_option"),
        (start(options={"preset": "placebo"}), "bad_option"),
        (start(options={"fragment_seconds": 0}), "bad_option"),
        (start(options={"fragment_seconds": "1"}), "bad_option"),
        (start(options={"device": "cuda:0"}), "bad_option"),
        (start(options={"window": "32"}), "bad_option"),
    ],
)
def test_malformed_messages_are_refused_with_a_code(text, code):
    s = Session(ServerConfig(token=None), ENGINES, authenticated=True)
    error = refused(s, text, code)
    assert not error.fatal and s.phase is Phase.IDLE


def test_nan_and_huge_numbers_are_refused():
    s = session()
    refused(s, start(options={"fragment_seconds": float("nan")}), "bad_option")
    refused(s, '{"type":"start","video":{"size":1e400},"audio":{"size":1}}', "bad_message")


def test_limits_on_upload_size_and_control_message_size():
    s = session(max_upload_bytes=12)
    refused(s, start(), "too_large")  # 10 + 5 > 12
    refused(s, start(video={"size": 13}), "too_large")
    big = json.dumps({"type": "hello", "pad": "x" * 20_000})
    refused(s, big, "too_large")


def test_message_order_follows_the_job():
    s = Session(ServerConfig(), ENGINES, authenticated=True)
    with pytest.raises(ProtocolError) as info:
        s.receive_binary(4)
    assert info.value.code == "unexpected_binary"
    request = s.receive_text(start())
    s.accepted(request)
    assert s.phase is Phase.UPLOADING
    refused(s, start(), "bad_state")
    refused(s, '{"type": "fetch", "job": "abc"}', "bad_state")
    assert s.receive_binary(12) == [("video", 0, 10), ("audio", 10, 12)]
    assert s.receive_binary(3) == [("audio", 0, 3)]
    assert s.upload.complete
    s.uploaded()
    assert s.phase is Phase.WAITING
    assert isinstance(s.receive_text('{"type": "cancel"}'), Cancel)
    s.ended()
    assert s.phase is Phase.IDLE
    assert isinstance(s.receive_text('{"type": "fetch", "job": "abc"}'), Fetch)
    assert isinstance(s.receive_text('{"type": "hello"}'), Hello)


def test_upload_overflow_is_refused():
    s = Session(ServerConfig(), ENGINES, authenticated=True)
    s.accepted(s.receive_text(start()))
    s.receive_binary(14)
    with pytest.raises(ProtocolError) as info:
        s.receive_binary(2)
    assert info.value.code == "too_large"


@pytest.mark.parametrize("sizes, chunks", [((5, 7), [1] * 12), ((5, 7), [12]), ((1, 1), [2]), ((9, 3), [4, 4, 4])])
def test_upload_plan_places_every_byte_once(sizes, chunks):
    plan = UploadPlan([("video", sizes[0]), ("audio", sizes[1])])
    got = {"video": 0, "audio": 0}
    for chunk in chunks:
        ranges = plan.feed(chunk)
        assert sum(hi - lo for _, lo, hi in ranges) == chunk
        for name, lo, hi in ranges:
            got[name] += hi - lo
    assert plan.complete and (got["video"], got["audio"]) == sizes


def test_named_files_need_a_root(tmp_path: Path):
    s = Session(ServerConfig(root=tmp_path), ENGINES, authenticated=True)
    request = s.receive_text(start(video={"path": "clips/a.mp4"}, audio={"size": 4}))
    assert request.video == Named("clips/a.mp4")
    s.accepted(request)
    assert s.upload.parts == [("audio", 4)]
    s2 = Session(ServerConfig(root=tmp_path), ENGINES, authenticated=True)
    s2.accepted(s2.receive_text(start(video={"path": "a"}, audio={"path": "b"})))
    assert s2.phase is Phase.WAITING and s2.upload is None
    refused(Session(ServerConfig(root=tmp_path), ENGINES, authenticated=True), start(video={"path": "a\x00b"}), "bad_message")


def test_token_in_the_first_message():
    s = session(token="s3cret")
    assert not s.authenticated
    error = refused(s, '{"type": "hello"}', "unauthorized")
    assert error.fatal
    error = refused(session(token="s3cret"), '{"type": "hello", "token": "s3cre"}', "unauthorized")
    assert error.fatal
    with pytest.raises(ProtocolError, match="token"):
        session(token="s3cret").receive_binary(3)
    ok = session(token="s3cret")
    assert isinstance(ok.receive_text(start(token="s3cret")), Start) and ok.authenticated
    assert Session(ServerConfig(token="t"), ENGINES, authenticated=True).authenticated
    assert session().authenticated  # no token configured


def test_repeated_errors_become_fatal():
    s = Session(ServerConfig(), ENGINES, authenticated=True)
    for _ in range(MAX_ERRORS - 1):
        assert not refused(s, "{", "bad_json").fatal
    assert refused(s, "{", "bad_json").fatal


def test_hello_describes_the_server(tmp_path: Path):
    data = json.loads(hello(ServerConfig(root=tmp_path, token="t", max_upload_bytes=99), ENGINES, authenticated=False))
    assert data["type"] == "hello" and data["engines"] == ["auto", "other", "passthrough"]
    assert data["named_files"] and not data["authenticated"] and data["limits"]["max_upload_bytes"] == 99


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def test_codec_string_from_the_avcc_box():
    avcc = box(b"avcC", bytes([1, 0x64, 0x00, 0x1F, 0xFF]))
    init = box(b"ftyp", b"isom" * 3) + box(b"moov", box(b"trak", box(b"stsd", box(b"avc1", b"\0" * 78 + avcc)))) + box(b"moof", b"")
    assert codec_string(init) == "avc1.64001f, mp4a.40.2"
    # avcC bytes outside moov (e.g. inside media data) are not trusted
    assert codec_string(box(b"ftyp", b"isom") + box(b"mdat", b"avcC\x01\x42\x00\x0a")) == FALLBACK_CODECS
    assert codec_string(b"") == FALLBACK_CODECS
    assert codec_string(box(b"ftyp", b"isom") + struct.pack(">I4s", 4000, b"moov") + b"avcC") == FALLBACK_CODECS  # cut short
