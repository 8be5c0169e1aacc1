"""A small protocol client and a server runner for the server tests."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Awaitable, Callable

from websockets.asyncio.client import ClientConnection, connect

from lipstream.server import Running, ServerConfig, serve


def run_with_server(scenario: Callable[[Running], Awaitable[Any]], tmp_path: Path, timeout: float = 60, **limits: Any) -> Any:
    """Start a server on 127.0.0.1:0 in this event loop, run `scenario(running)`, stop the server."""

    async def main() -> Any:
        async with serve(ServerConfig(port=0, work_dir=tmp_path, **limits)) as running:
            return await asyncio.wait_for(scenario(running), timeout)

    return asyncio.run(main())


class Client:
    """Protocol helpers around one websocket connection."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.log: list[dict[str, Any] | bytes] = []

    @classmethod
    async def open(cls, running: Running, **kwargs: Any) -> "Client":
        client = cls(await connect(running.ws_url, max_size=None, **kwargs))
        hello = await client.recv()
        assert hello["type"] == "hello", hello
        client.hello = hello
        return client

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(json.dumps(message) if isinstance(message, dict) else message)

    async def recv(self, timeout: float = 30) -> Any:
        message = await asyncio.wait_for(self.ws.recv(), timeout)
        item = message if isinstance(message, bytes) else json.loads(message)
        self.log.append(item)
        return item

    async def expect(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        """The next text message, which must be of type `kind`."""
        message = await self.recv(timeout)
        assert isinstance(message, dict) and message["type"] == kind, message
        return message

    async def start_upload(self, video: bytes, audio: bytes, chunk: int = 64 * 1024, **options: Any) -> str:
        await self.send({"type": "start", "video": {"size": len(video)}, "audio": {"size": len(audio)}, "options": options})
        accepted = await self.expect("accepted")
        data = video + audio
        for at in range(0, len(data), chunk):
            await self.ws.send(data[at : at + chunk])
        return accepted["job"]

    async def until_end(self, timeout: float = 60) -> tuple[list[Any], bytes]:
        """Every message up to done or error, and the output bytes among them."""
        seen, output = [], bytearray()
        deadline = time.monotonic() + timeout
        while True:
            message = await self.recv(max(deadline - time.monotonic(), 0.01))
            seen.append(message)
            if isinstance(message, bytes):
                output += message
            elif message["type"] in ("done", "error", "cancelled"):
                return seen, bytes(output)

    async def close(self) -> None:
        await self.ws.close()


class SlowPassthrough:
    """Passthrough that takes `delay` seconds per window: makes jobs last long enough to watch."""

    name = "slow"
    device = None

    def __init__(self, delay: float, started: threading.Event | None = None) -> None:
        self.delay = delay
        self.started = started

    def __call__(self, window):
        if self.started is not None:
            self.started.set()
        time.sleep(self.delay)
        return window


def _get(url: str, headers: dict[str, str] | None) -> tuple[int, dict[str, str] | None, bytes | None]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, None, None


async def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str] | None, bytes | None]:
    """(status, headers, body) of a GET, run off the event loop that serves it; errors give (status, None, None)."""
    return await asyncio.to_thread(_get, url, headers)


async def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    return (await http_get(url, headers))[0]
