"""The server: one listening socket for the page, the websocket and finished outputs.

    async with serve(ServerConfig(port=0)) as running:
        log.info(running.url)     # http://127.0.0.1:PORT/  (websocket at ws://.../ws)
        await stop.wait()

Leaving the block closes every connection (cancelling their jobs), waits for
the handlers, and removes the server's temporary folder with every upload
and kept output in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from typing import Any, AsyncIterator, Callable

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as websockets_serve

from .http import LIVE_PATH, WEBSOCKET_PATH, Gate
from .live import LiveConnection
from lipstream.pipeline.live import LiveAvatar

from .limits import ServerConfig
from .session import Connection
from .state import ServerState

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Running:
    app: ServerState
    server: Server
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{_netloc(self.host, self.port)}/"

    @property
    def ws_url(self) -> str:
        return f"ws://{_netloc(self.host, self.port)}{WEBSOCKET_PATH}"


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@contextlib.asynccontextmanager
async def serve(config: ServerConfig, *, observe: Callable[[int], None] | None = None) -> AsyncIterator[Running]:
    """Listen on config.host:config.port (0 picks a free port) until the block ends."""
    app = ServerState(config, observe=observe)
    async def handle(websocket: ServerConnection) -> None:
        live = urlsplit(websocket.request.path).path == LIVE_PATH if websocket.request else False
        connection = LiveConnection(app, websocket) if live else Connection(app, websocket)
        app.connections.add(connection)
        try:
            await connection.run()
        finally:
            app.connections.discard(connection)

    try:
        if config.live is not None:
            app.live = await asyncio.to_thread(prepare_avatar, config)
        async with websockets_serve(
            handle,
            config.host,
            config.port,
            process_request=Gate(app),
            compression=None,  # video does not deflate; compression would cost CPU and 64+ KiB per connection
            max_size=config.max_message_bytes,
            max_queue=config.incoming_queue,
            write_limit=config.write_limit,
            open_timeout=config.open_timeout,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            close_timeout=config.close_timeout,
            server_header=None,
            logger=logging.getLogger("lipstream.server.websockets"),
        ) as server:
            port = server.sockets[0].getsockname()[1] if config.port == 0 else config.port
            sweeper = asyncio.create_task(app.sweep_forever(), name="lipstream-sweep")
            log.info("listening on http://%s/", _netloc(config.host, port))
            try:
                yield Running(app, server, config.host, port)
            finally:
                sweeper.cancel()
    finally:
        app.close()


def prepare_avatar(config: ServerConfig) -> LiveAvatar:
    """The live face, prepared (or read from the cache) before the server listens."""
    from lipstream.pipeline.live import prepare_face

    assert config.live is not None
    face = prepare_face(config.live.face, config.live.options, device=config.device, weights=config.weights)
    return LiveAvatar(face, config.live.config, device=config.device, weights=config.weights)


class ServerThread:
    """The server on a background thread with its own event loop, for synchronous programs.

        with ServerThread(ServerConfig(port=0)) as running:
            open_browser(running.url)
    """

    def __init__(self, config: ServerConfig, *, observe: Callable[[int], None] | None = None, start_timeout: float = 30.0) -> None:
        self.config = config
        self.observe = observe
        self.start_timeout = start_timeout
        self.running: Running | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="lipstream-server", daemon=True)

    def __enter__(self) -> Running:
        self._thread.start()
        if not self._ready.wait(self.start_timeout):
            raise TimeoutError("the server did not start")
        if self._error is not None:
            raise self._error
        assert self.running is not None
        return self.running

    def __exit__(self, *exc: Any) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self.config, observe=self.observe) as running:
            self.running = running
            self._ready.set()
            await self._stop.wait()
