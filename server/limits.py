"""Every limit of the server in one frozen dataclass, with what each one costs.

Memory of a connection, worst case:
  incoming   max_message_bytes x (incoming_queue + 1)  frames websockets buffers
  outgoing   write_limit + one fragment (the job waits while a client is slow)
  upload     one message at a time, written straight to the job's folder
so with the defaults about 1 MiB x 5 + 64 KiB per connection, and
`max_connections` authenticated plus `max_unauthenticated` not yet
authenticated ones (tokenless clients have their own small cap and
`auth_timeout` seconds to present the token, so they can never fill the
slots of clients that have it). An HTTP download holds the whole file while it
is sent (at most `max_http_download`; larger outputs are fetched over the
websocket in 256 KiB reads). Disk: at most `max_upload_bytes` per job being
uploaded, plus `max_kept` finished outputs for `keep_seconds`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lipstream.pipeline.live import FaceOptions, LiveConfig

MIB = 1 << 20


@dataclass(frozen=True)
class LiveSetup:
    """Live mode (`lipstream live`): the face, how it speaks, and the limits of a live connection.

    Memory of a live connection: the face is shared; each session keeps at
    most `max_queued` seconds of speech (2 bytes a sample at 16 kHz) and
    `send_frames` encoded frames waiting for a slow client, whose further
    frames are dropped (and counted), never buffered.
    """

    face: Path
    options: FaceOptions = field(default_factory=FaceOptions)
    config: LiveConfig = field(default_factory=LiveConfig)
    max_sessions: int = 4  # live sessions at once (each draws 25 frames a second on the server's CPU)
    max_audio_chunk: int = 64 * 1024  # bytes of one audio message (2 s at 16 kHz)
    send_frames: int = 12  # frames waiting to be sent to one client before new ones are dropped

    def __post_init__(self) -> None:
        if self.max_sessions < 1 or self.max_audio_chunk < 2 or self.send_frames < 1:
            raise ValueError("live limits must be >= 1")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None  # bearer token every client must present; None: open server
    root: Path | None = None  # jobs may name files under this folder; None: uploads only
    origins: tuple[str, ...] = ()  # extra allowed Origin values, e.g. "https://app.example"
    device: str = "cpu"
    weights: tuple[Path, ...] = ()  # checkpoint folders searched first (then $LIPSTREAM_WEIGHTS, the cache)

    max_message_bytes: int = MIB  # one websocket message (an upload chunk); larger closes with 1009
    max_control_bytes: int = 16 * 1024  # one JSON control message
    max_json_depth: int = 8  # nesting of a control message, checked before parsing (requests need 3)
    incoming_queue: int = 4  # messages websockets buffers before it stops reading the socket
    write_limit: int = 64 * 1024  # outgoing bytes buffered before a send waits for the client
    max_upload_bytes: int = 512 * MIB  # video + audio of one job
    max_connections: int = 32  # authenticated connections (all of them on a server without a token)
    max_unauthenticated: int = 8  # connections still owing the token; a separate, small cap
    max_jobs: int = 1  # jobs running at once; the rest wait in line
    max_waiting: int = 16  # jobs waiting for a slot; one more is refused as busy
    max_window: int = 256  # largest --window a client may ask for (memory: frames per window)

    idle_timeout: float = 60.0  # no message while idle or uploading; a send stuck this long
    open_timeout: float = 10.0  # websocket handshake
    auth_timeout: float = 10.0  # a connection without the token must send it within this time
    min_upload_rate: int = 16 * 1024  # bytes/s an upload must average once upload_grace has passed
    upload_grace: float = 10.0  # seconds an upload may run before its rate is checked
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    close_timeout: float = 10.0

    keep_seconds: float = 600.0  # a finished output stays downloadable this long
    max_kept: int = 32  # finished outputs kept at once; the oldest goes first
    max_http_download: int = 256 * MIB  # larger outputs: fetch them over the websocket
    fragment_seconds: float = 0.5  # default preview fragment length
    progress_interval: float = 0.1  # at most ten progress messages a second per job
    work_dir: Path | None = None  # parent of the server's temporary folder (default: the system's)
    live: LiveSetup | None = None  # a face for live sessions at /live (`lipstream live`)

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_control_bytes", "max_json_depth", "incoming_queue", "write_limit", "max_upload_bytes",
                     "max_connections", "max_unauthenticated", "max_jobs", "max_kept", "max_window", "min_upload_rate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.max_waiting < 0:
            raise ValueError("max_waiting must be >= 0")
        if self.idle_timeout <= 0 or self.keep_seconds <= 0 or self.auth_timeout <= 0 or self.upload_grace < 0:
            raise ValueError("timeouts must be > 0")
        if self.token is not None and not self.token:
            raise ValueError("an empty token would let anyone in; pass None for an open server")
