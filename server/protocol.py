"""The websocket protocol as plain data and a state machine, with no I/O.

`Session` turns each incoming message into a typed request or a
`ProtocolError`, and knows which message may come when; the connection
handler (session.py) does the talking. server/PROTOCOL.md is the reference
for clients; the tests hold the two together.
"""

from __future__ import annotations

import hmac
import json
import math
import struct
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable

from lipstream.config import ENHANCES, FITS, QUALITIES, EncodeConfig, FaceConfig, SyncConfig, Target, WindowConfig
from lipstream.errors import InputError
from lipstream.pipeline.progress import ProgressEvent

from .limits import ServerConfig

PROTOCOL_VERSION = 1
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
MAX_ERRORS = 20  # protocol errors a connection may make before it is closed
FALLBACK_CODECS = "avc1.64001f, mp4a.40.2"  # High@3.1 + AAC-LC, when the init segment cannot be read


class ProtocolError(InputError):
    """A message the server cannot accept; `code` is machine-readable, `fatal` closes the connection."""

    def __init__(self, code: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.fatal = fatal


class Phase(Enum):
    IDLE = "idle"  # no job: start, fetch or hello may come
    UPLOADING = "uploading"  # binary messages carry the inputs
    WAITING = "waiting"  # queued or running: only cancel may come


@dataclass(frozen=True)
class Upload:
    size: int


@dataclass(frozen=True)
class Named:
    path: str  # relative to the server's --root; checked again when opened


Input = Upload | Named


@dataclass(frozen=True)
class Start:
    video: Input
    audio: Input
    config: SyncConfig


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class Fetch:
    job: str


@dataclass(frozen=True)
class Hello:
    pass


Request = Start | Cancel | Fetch | Hello


class UploadPlan:
    """Where each incoming byte belongs: the video's bytes, then the audio's, in any chunking."""

    def __init__(self, parts: Iterable[tuple[str, int]], started: float = 0.0) -> None:
        self.parts = [(name, size) for name, size in parts if size > 0]
        self.total = sum(size for _, size in self.parts)
        self.received = 0
        self.started = started  # clock time the upload was accepted

    def deadline(self, min_rate: int, grace: float) -> float:
        """Clock time by which more bytes must have come: after `grace` s, at least `min_rate` bytes/s on average."""
        return self.started + grace + self.received / min_rate

    @property
    def complete(self) -> bool:
        return self.received == self.total

    def feed(self, length: int) -> list[tuple[str, int, int]]:
        """Split the next `length` bytes into (part, start, stop) ranges of the message."""
        if self.received + length > self.total:
            raise ProtocolError("too_large", f"received {self.received + length} bytes but {self.total} were announced; send exactly the announced sizes")
        out, offset, at = [], 0, self.received
        base = 0
        for name, size in self.parts:
            lo, hi = max(at, base), min(at + length, base + size)
            if hi > lo:
                out.append((name, offset, offset + hi - lo))
                offset += hi - lo
            base += size
        self.received += length
        return out


class Session:
    """One connection's conversation: authentication, message order, limits."""

    def __init__(self, config: ServerConfig, engines: Iterable[str], *, authenticated: bool) -> None:
        self.config = config
        self.engines = tuple(sorted(engines))
        self.authenticated = authenticated or config.token is None
        self.phase = Phase.IDLE
        self.upload: UploadPlan | None = None
        self.errors = 0

    def receive_text(self, text: str) -> Request:
        """The request in a text message, or ProtocolError."""
        try:
            data = parse_control(text, self.config)
        except ProtocolError as exc:
            raise self._count(exc) from None
        if not self.authenticated:
            self._authenticate(data.get("token"))
        kind = data["type"]
        try:
            if kind == "hello":
                return Hello()
            if kind == "cancel":
                if self.phase is Phase.IDLE:
                    raise ProtocolError("bad_state", "there is no job to cancel")
                return Cancel()
            if kind == "start":
                if self.phase is not Phase.IDLE:
                    raise ProtocolError("bad_state", "a job is already under way on this connection; cancel it or wait for done")
                return self._start(data)
            if kind == "fetch":
                if self.phase is not Phase.IDLE:
                    raise ProtocolError("bad_state", "fetch once the job on this connection has ended")
                job = data.get("job")
                if not isinstance(job, str) or not 1 <= len(job) <= 64:
                    raise ProtocolError("bad_message", 'fetch needs "job": the id from the done message')
                return Fetch(job)
        except ProtocolError as exc:
            raise self._count(exc) from None
        raise self._error("unknown_type", f"unknown message type {kind!r}; expected hello, start, cancel or fetch")

    def receive_binary(self, length: int) -> list[tuple[str, int, int]]:
        """The input ranges of a binary message; only while uploading."""
        if not self.authenticated:
            self._authenticate(None)
        if self.phase is not Phase.UPLOADING or self.upload is None:
            raise self._error("unexpected_binary", "binary data is only accepted after an accepted start that announced uploads")
        try:
            return self.upload.feed(length)
        except ProtocolError as exc:
            raise self._count(exc) from None

    def accepted(self, start: Start, now: float = 0.0) -> None:
        """The start was taken (at clock time `now`): expect its uploads, or go straight to waiting."""
        parts = [(name, spec.size) for name, spec in (("video", start.video), ("audio", start.audio)) if isinstance(spec, Upload)]
        self.upload = UploadPlan(parts, now) if parts else None
        self.phase = Phase.UPLOADING if self.upload is not None and not self.upload.complete else Phase.WAITING

    def uploaded(self) -> None:
        self.phase = Phase.WAITING

    def ended(self) -> None:
        """The job finished, failed or was cancelled: a new one may start."""
        self.phase = Phase.IDLE
        self.upload = None

    def _authenticate(self, token: Any) -> None:
        check_token(token, self.config)
        self.authenticated = True

    def _error(self, code: str, message: str) -> ProtocolError:
        return self._count(ProtocolError(code, message))

    def _count(self, exc: ProtocolError) -> ProtocolError:
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            exc.fatal = True
        return exc


    def _start(self, data: dict[str, Any]) -> Start:
        only_fields(data, {"type", "token", "video", "audio", "options"}, "start")
        video = self._input(data.get("video"), "video")
        audio = self._input(data.get("audio"), "audio")
        uploaded = sum(spec.size for spec in (video, audio) if isinstance(spec, Upload))
        if uploaded > self.config.max_upload_bytes:
            raise ProtocolError("too_large", f"the uploads add up to {uploaded} bytes; this server takes at most {self.config.max_upload_bytes}")
        return Start(video, audio, self._options(data.get("options", {})))

    def _input(self, spec: Any, what: str) -> Input:
        if not isinstance(spec, dict) or len(spec) != 1:
            raise ProtocolError("bad_message", f'"{what}" must be {{"size": BYTES}} to upload it or {{"path": "NAME"}} for a file under the server root')
        if "size" in spec:
            size = spec["size"]
            if not _is_int(size) or size < 1:
                raise ProtocolError("bad_message", f"{what} size must be a positive whole number of bytes")
            if size > self.config.max_upload_bytes:
                raise ProtocolError("too_large", f"the {what} is {size} bytes; this server takes at most {self.config.max_upload_bytes}")
            return Upload(size)
        if "path" in spec:
            path = spec["path"]
            if self.config.root is None:
                raise ProtocolError("forbidden_path", "this server reads no files by name (it has no --root); upload the file instead")
            if not isinstance(path, str) or not path or len(path) > 1024 or "\x00" in path:
                raise ProtocolError("bad_message", f"{what} path must be a non-empty string under 1024 characters")
            return Named(path)
        raise ProtocolError("bad_message", f'"{what}" must have "size" or "path"')

    def _options(self, options: Any) -> SyncConfig:
        if not isinstance(options, dict):
            raise ProtocolError("bad_option", '"options" must be an object')
        only_fields(options, {"engine", "quality", "enhance", "fit", "window", "overlap", "preset", "crf", "fragment_seconds", "target"}, "options", code="bad_option")
        engine = options.get("engine", SyncConfig.engine)
        if engine not in self.engines:
            raise ProtocolError("bad_option", f"unknown engine {engine!r}; choose one of: {', '.join(self.engines)}")
        quality = options.get("quality", SyncConfig.quality)
        if quality not in QUALITIES:
            raise ProtocolError("bad_option", f"quality must be one of {', '.join(QUALITIES)}")
        enhance = options.get("enhance", SyncConfig.enhance)
        if enhance not in ENHANCES:
            raise ProtocolError("bad_option", f"enhance must be one of {', '.join(ENHANCES)}")
        fit = options.get("fit", SyncConfig.fit)
        if fit not in FITS:
            raise ProtocolError("bad_option", f"fit must be one of {', '.join(FITS)}")
        window = _int_option(options, "window", WindowConfig.size, 1, self.config.max_window)
        overlap = _int_option(options, "overlap", min(WindowConfig.overlap, window - 1), 0, window - 1)
        preset = options.get("preset")
        if preset is not None and preset not in PRESETS:
            raise ProtocolError("bad_option", f"preset must be one of {', '.join(PRESETS)}")
        crf = _int_option(options, "crf", 0, 0, 51) if "crf" in options else None
        fragment = options.get("fragment_seconds", self.config.fragment_seconds)
        if isinstance(fragment, bool) or not isinstance(fragment, (int, float)) or not math.isfinite(fragment) or not 0.1 <= fragment <= 10:
            raise ProtocolError("bad_option", "fragment_seconds must be a number from 0.1 to 10")
        return SyncConfig(
            engine=engine,
            quality=quality,
            enhance=enhance,
            fit=fit,
            device=self.config.device,
            weights=self.config.weights,
            window=WindowConfig(size=window, overlap=overlap),
            # H.264 whatever the input: browsers' MediaSource plays it everywhere. Without a crf the
            # bitrate is capped near the input's, like the CLI's output.
            encode=EncodeConfig(codec="h264", preset=preset, crf=crf, container="mp4", fragment_seconds=float(fragment), tune="zerolatency"),
            face=FaceConfig(target=_target(options.get("target"))),
        )


def parse_control(text: str, config: ServerConfig) -> dict[str, Any]:
    """The JSON object of a control message, checked for size and nesting before it is parsed."""
    if len(text) > config.max_control_bytes:
        raise ProtocolError("too_large", f"control messages are limited to {config.max_control_bytes} bytes")
    if json_depth(text) > config.max_json_depth:
        raise ProtocolError("bad_json", f"the message nests deeper than {config.max_json_depth} levels; requests need 3")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_json", "the message is not JSON; send one JSON object per text message") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("bad_message", 'a message is a JSON object with a string "type"')
    return data


def check_token(token: Any, config: ServerConfig) -> None:
    """A first message's token: the server's, else a fatal `unauthorized`."""
    if isinstance(token, str) and config.token is not None and hmac.compare_digest(token.encode(), config.token.encode()):
        return
    raise ProtocolError("unauthorized", "this server needs a token: send it as 'Authorization: Bearer T', ?token=T, or \"token\" in the first message", fatal=True)

def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in `text`, counted without parsing (so a hostile message cannot recurse)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _target(spec: Any) -> Target | None:
    """{"x": X, "y": Y, "time": SECONDS?} in frame pixels, or None for the largest face."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or not {"x", "y"} <= set(spec) or not set(spec) <= {"x", "y", "time"}:
        raise ProtocolError("bad_option", 'target must be {"x": X, "y": Y} in frame pixels, with an optional "time" in seconds')
    values = [spec["x"], spec["y"], spec.get("time", 0.0)]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ProtocolError("bad_option", "target x, y and time must be numbers")
    try:
        return Target(*(float(v) for v in values))
    except InputError as exc:
        raise ProtocolError("bad_option", str(exc)) from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_option(options: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = options.get(name, default)
    if not _is_int(value) or not lo <= value <= hi:
        raise ProtocolError("bad_option", f"{name} must be a whole number from {lo} to {hi}")
    return value


def only_fields(data: dict[str, Any], allowed: set[str], what: str, code: str = "bad_message") -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise ProtocolError(code, f"unknown field(s) in {what}: {', '.join(map(str, extra))}; allowed: {', '.join(sorted(allowed - {'type'}))}")


# Messages from the server. Each returns the text to send.


def encode(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields}, separators=(",", ":"), allow_nan=False)


def hello(config: ServerConfig, engines: Iterable[str], authenticated: bool) -> str:
    return encode(
        "hello",
        protocol=PROTOCOL_VERSION,
        engines=sorted(engines),
        fits=list(FITS),
        qualities=list(QUALITIES),
        presets=list(PRESETS),
        named_files=config.root is not None,
        authenticated=authenticated or config.token is None,
        limits={
            "max_message_bytes": config.max_message_bytes,
            "max_upload_bytes": config.max_upload_bytes,
            "max_window": config.max_window,
            "idle_timeout": config.idle_timeout,
        },
        defaults={"window": WindowConfig.size, "overlap": WindowConfig.overlap, "fragment_seconds": config.fragment_seconds},
    )


def progress(event: ProgressEvent) -> str:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return encode("progress", frames=event.frames, total=event.total, fps=rounded(event.fps), eta=rounded(event.eta), elapsed=rounded(event.elapsed))


def error(code: str, message: str, job: str | None = None) -> str:
    return encode("error", code=code, message=message, **({"job": job} if job else {}))


def mime_type(init: bytes) -> str:
    """The MediaSource type of a fragmented MP4 from its first bytes (H.264 + AAC-LC)."""
    return f'video/mp4; codecs="{codec_string(init)}"'


def codec_string(init: bytes) -> str:
    """RFC 6381 codecs: avc1.PPCCLL from the avcC box inside the moov box, then AAC-LC."""
    moov = _box(init, b"moov")
    at = -1 if moov is None else moov.find(b"avcC")
    if at < 0 or len(moov) < at + 8:
        return FALLBACK_CODECS
    profile, compat, level = moov[at + 5 : at + 8]
    return f"avc1.{profile:02x}{compat:02x}{level:02x}, mp4a.40.2"


def _box(data: bytes, kind: bytes) -> bytes | None:
    """The payload of the first top-level ISO-BMFF box of type `kind` (None if absent or cut)."""
    at = 0
    while at + 8 <= len(data):
        size, name = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1 and at + 16 <= len(data):
            size, header = struct.unpack_from(">Q", data, at + 8)[0], 16
        elif size == 0:
            size = len(data) - at
        if size < header:
            return None
        if name == kind:
            return data[at + header : at + size] if at + size <= len(data) else None
        at += size
    return None
