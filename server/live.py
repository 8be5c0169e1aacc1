"""One live websocket connection (`/live`): speech in, the face's frames and audio out, in real time.

The connection owns one `LiveSession` once the client sends `start`. Frames
go to the client through a short queue (`LiveSetup.send_frames`); when a
slow client lets it fill, new frames are dropped and counted, and the
video encoder is asked for a keyframe so the client's player resumes
cleanly: a slow client costs the server neither memory nor the other
sessions' time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from lipstream.errors import InputError
from lipstream.pipeline.live import LiveFrame, LiveSession
from lipstream.stream.live_mux import LiveMuxer

from . import live_protocol
from .live_protocol import FMP4, RAW, Interrupt, LiveProtocol, LiveStart, Stop, media_header
from .protocol import Hello, ProtocolError, encode, error
from .session import Close
from .state import ServerState

log = logging.getLogger(__name__)

STATS_SECONDS = 1.0  # a stats message this often while streaming


class LiveConnection:
    def __init__(self, app: ServerState, websocket: ServerConnection) -> None:
        assert app.live is not None
        self.app = app
        self.ws = websocket
        self.avatar = app.live
        self.session = LiveProtocol(app.config, authenticated=getattr(websocket, "lipstream_authenticated", False))
        self.stream: LiveSession | None = None
        self.task: asyncio.Task[None] | None = None
        self.sent_dropped = 0
        self._slot = False

    async def run(self) -> None:
        config = self.app.config
        loop = asyncio.get_running_loop()
        opened = loop.time()
        size, fps = self.avatar.face.size, self.avatar.face.options.fps
        try:
            await self.ws.send(live_protocol.hello(config, self.session.authenticated, size, fps))
            while True:
                if self.stream is None:  # before start: the usual idle and token deadlines
                    limit = config.idle_timeout if self.session.authenticated else config.auth_timeout - (loop.time() - opened)
                    try:
                        message = await asyncio.wait_for(self.ws.recv(), max(limit, 0.001))
                    except asyncio.TimeoutError:
                        reason = "timeout" if self.session.authenticated else "unauthorized"
                        await self._goodbye(error(reason, "nothing received in time; connection closed"), 1008 if reason == "unauthorized" else 1001, reason)
                        return
                else:
                    message = await self.ws.recv()
                try:
                    if isinstance(message, str):
                        await self._on_text(message)
                    else:
                        self._on_audio(message)
                except ProtocolError as exc:
                    await self.ws.send(error(exc.code, str(exc)))
                    if exc.fatal:
                        raise Close(1008 if exc.code == "unauthorized" else 1003, exc.code) from None
        except ConnectionClosed:
            pass
        except Close as close:
            await self._goodbye(None, close.code, close.reason)
        finally:
            await self._end()

    async def _on_text(self, text: str) -> None:
        request = self.session.receive_text(text)
        if isinstance(request, Hello):
            await self.ws.send(live_protocol.hello(self.app.config, self.session.authenticated, self.avatar.face.size, self.avatar.face.options.fps))
        elif isinstance(request, LiveStart):
            await self._start(request)
        elif isinstance(request, Interrupt):
            assert self.stream is not None
            self.stream.interrupt()
        elif isinstance(request, Stop):
            stats = await self._end()
            await self._goodbye(encode("stopped", **stats), 1000, "stopped")
            raise ConnectionClosed(None, None)

    def _on_audio(self, data: bytes) -> None:
        self.session.receive_audio(len(data))
        assert self.stream is not None
        try:
            self.stream.push_audio(data)
        except InputError as exc:
            raise ProtocolError("too_much_audio", str(exc)) from None

    async def _start(self, start: LiveStart) -> None:
        setup = self.app.config.live
        assert setup is not None
        if self.app.live_sessions >= setup.max_sessions:
            await self.ws.send(error("busy", f"{setup.max_sessions} live sessions are running; try again later"))
            raise Close(1013, "busy")
        self.app.live_sessions += 1
        self._slot = True
        self.stream = self.avatar.session()
        self.task = asyncio.create_task(self._stream(start.format), name="lipstream-live")
        log.info("live session started (%s, %d running)", start.format, self.app.live_sessions)

    async def _stream(self, fmt: str) -> None:
        """Draw, encode and queue frames until the session ends; the sender drains the queue."""
        assert self.stream is not None
        setup = self.app.config.live
        assert setup is not None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[list[str | bytes]] = asyncio.Queue(setup.send_frames)
        sender = asyncio.create_task(self._send_all(queue))
        face = self.avatar.face
        muxer = LiveMuxer(face.size, face.size, face.options.fps) if fmt == "fmp4" else None
        started = False
        last_stats = time.monotonic()
        try:
            async for frame in self.stream:
                if queue.full():
                    self.sent_dropped += 1
                    if muxer is not None:
                        muxer.keyframe()
                    continue
                messages = await loop.run_in_executor(None, _messages, frame, muxer)
                if not started:
                    started = True
                    fields = {"video_mime": muxer.video_mime, "audio_mime": muxer.audio_mime} if muxer else {}
                    messages.insert(0, encode("started", format=fmt, width=face.size, height=face.size, fps=face.options.fps, rate=16000, **fields))
                if time.monotonic() - last_stats >= STATS_SECONDS:
                    last_stats = time.monotonic()
                    messages.append(encode("stats", **self._stats()))
                queue.put_nowait(messages)
                if sender.done():
                    return
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender

    async def _send_all(self, queue: asyncio.Queue[list[str | bytes]]) -> None:
        while True:
            for message in await queue.get():
                await self.ws.send(message)

    def _stats(self) -> dict[str, float | int]:
        assert self.stream is not None
        return {**self.stream.stats.as_dict(), "send_dropped": self.sent_dropped}

    async def _end(self) -> dict[str, float | int]:
        """Stop the stream and free its slot (idempotent); the final stats."""
        stats: dict[str, float | int] = {}
        if self.stream is not None:
            self.stream.close()
            stats = self._stats()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await self.task
            self.task = None
        if self._slot:
            self._slot = False
            self.app.live_sessions -= 1
            log.info("live session ended: %s", stats)
        return stats

    async def _goodbye(self, message: str | None, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed, asyncio.TimeoutError):
            if message is not None:
                await self.ws.send(message)
            await asyncio.wait_for(self.ws.close(code, reason), self.app.config.close_timeout)


def _messages(frame: LiveFrame, muxer: LiveMuxer | None) -> list[str | bytes]:
    """The binary messages of one frame: its picture and its audio, raw or as fMP4 bytes."""
    micros = int(frame.time * 1_000_000)
    if muxer is None:
        return [media_header(b"v", RAW, micros) + frame.picture.tobytes(), media_header(b"a", RAW, micros) + frame.audio.tobytes()]
    video, audio = muxer.write(frame.tick, frame.picture, frame.audio)
    out: list[str | bytes] = []
    if video:
        out.append(media_header(b"v", FMP4, micros) + video)
    if audio:
        out.append(media_header(b"a", FMP4, micros) + audio)
    return out
