"""The live websocket protocol (`/live`) as plain data, with no I/O.

A live connection asks for one stream (`start`), then sends speech as
binary messages (16 kHz mono s16le) whenever it has some; the server sends
the face's frames and their audio as binary messages, each with a 12-byte
header (`media_header`). server/PROTOCOL.md, section "Live", is the
reference for clients.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Literal

from lipstream.pipeline.live import RATE

from .limits import ServerConfig
from .protocol import MAX_ERRORS, PROTOCOL_VERSION, Hello, ProtocolError, check_token, encode, only_fields, parse_control

Format = Literal["fmp4", "i420"]
FORMATS: tuple[Format, ...] = ("fmp4", "i420")
HEADER = struct.Struct("<cB2xQ")  # kind (b"v" video, b"a" audio), format (0 raw, 1 fMP4), time in microseconds
RAW, FMP4 = 0, 1


@dataclass(frozen=True)
class LiveStart:
    format: Format


@dataclass(frozen=True)
class Interrupt:
    pass


@dataclass(frozen=True)
class Stop:
    pass


LiveRequest = LiveStart | Interrupt | Stop | Hello


def media_header(kind: bytes, fmt: int, micros: int) -> bytes:
    return HEADER.pack(kind, fmt, micros)


class LiveProtocol:
    """One live connection's conversation: authentication, message order, limits."""

    def __init__(self, config: ServerConfig, *, authenticated: bool) -> None:
        assert config.live is not None
        self.config = config
        self.live = config.live
        self.authenticated = authenticated or config.token is None
        self.started = False
        self.errors = 0

    def receive_text(self, text: str) -> LiveRequest:
        try:
            data = parse_control(text, self.config)
        except ProtocolError as exc:
            raise self._count(exc) from None
        if not self.authenticated:
            check_token(data.get("token"), self.config)
            self.authenticated = True
        kind = data["type"]
        try:
            if kind == "hello":
                return Hello()
            if kind == "start":
                if self.started:
                    raise ProtocolError("bad_state", "this connection is already streaming; open another for a second stream")
                return self._start(data)
            if kind in ("interrupt", "stop"):
                if not self.started:
                    raise ProtocolError("bad_state", f"{kind} needs a started stream; send start first")
                return Interrupt() if kind == "interrupt" else Stop()
        except ProtocolError as exc:
            raise self._count(exc) from None
        raise self._count(ProtocolError("unknown_type", f"unknown message type {kind!r}; expected hello, start, interrupt or stop"))

    def receive_audio(self, length: int) -> None:
        """Check an audio message of `length` bytes before it is used."""
        if not self.authenticated:
            check_token(None, self.config)
        if not self.started:
            raise self._count(ProtocolError("unexpected_binary", "send start before audio"))
        if length > self.live.max_audio_chunk:
            raise self._count(ProtocolError("too_large", f"an audio message of {length} bytes; send at most {self.live.max_audio_chunk} bytes ({self.live.max_audio_chunk // 2 / RATE:g} s) at a time"))
        if length % 2:
            raise self._count(ProtocolError("bad_audio", f"an audio message of {length} bytes is not whole 16-bit samples; send 16 kHz mono s16le"))

    def _start(self, data: dict[str, Any]) -> LiveStart:
        only_fields(data, {"type", "token", "format", "rate"}, "start")
        fmt = data.get("format", "fmp4")
        if fmt not in FORMATS:
            raise ProtocolError("bad_option", f"format must be one of {', '.join(FORMATS)}")
        rate = data.get("rate", RATE)
        if rate != RATE or isinstance(rate, bool):
            raise ProtocolError("bad_rate", f"audio must be {RATE} Hz mono s16le, not {rate!r}; resample before sending", fatal=True)
        self.started = True
        return LiveStart(fmt)

    def _count(self, exc: ProtocolError) -> ProtocolError:
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            exc.fatal = True
        return exc


def hello(config: ServerConfig, authenticated: bool, width: int, fps: int) -> str:
    live = config.live
    assert live is not None
    return encode(
        "hello",
        protocol=PROTOCOL_VERSION,
        mode="live",
        authenticated=authenticated or config.token is None,
        engine=live.config.engine,
        width=width,
        height=width,
        fps=fps,
        rate=RATE,
        formats=list(FORMATS),
        delay=live.config.start_delay,
        limits={"max_audio_chunk": live.max_audio_chunk, "max_queued_seconds": live.config.max_queued},
    )
