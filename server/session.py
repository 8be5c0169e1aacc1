"""One websocket connection: receive requests and uploads, run its job, stream the output.

The connection owns at most one job at a time. Everything the job leaves on
disk lives in one folder that is removed when the job ends, is cancelled, or
the client goes away; only a finished output moves on to the OutputStore.
Sends are serialised by a FIFO lock so the client sees queue places,
progress, output bytes and the final message in the order they happened.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from lipstream.errors import Cancelled, InputError, LipstreamError
from lipstream.pipeline.engines import AUTO, ENGINES
from lipstream.pipeline.progress import ProgressEvent

from . import protocol
from .jobs import Busy, new_job_id
from .paths import resolve_under
from .protocol import Cancel, Fetch, Hello, Named, Phase, ProtocolError, Session, Start
from .state import ServerState
from .worker import run_job

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024  # bytes read per step when a finished output is fetched


def engine_names() -> tuple[str, ...]:
    """Engines a client may ask for: every registered one (read per connection: engines plug in by name) and auto."""
    return (AUTO, *ENGINES)


class Close(Exception):
    """Raised inside a connection's handler: close with `code` and `reason` (after any message already sent)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass
class _Job:
    id: str
    folder: Path
    start: Start
    video: Path
    audio: Path
    files: dict[str, IO[bytes]] = field(default_factory=dict)  # open upload files
    task: asyncio.Task[None] | None = None
    sent_output: bool = False
    sent_bytes: int = 0
    last_progress: float = 0.0


class Connection:
    def __init__(self, app: ServerState, websocket: ServerConnection) -> None:
        self.app = app
        self.ws = websocket
        self.session = Session(app.config, engine_names(), authenticated=getattr(websocket, "lipstream_authenticated", False))
        self.job: _Job | None = None
        self._send_lock = asyncio.Lock()
        # Sends nobody waits for (queue places, progress, a close). Few at a time:
        # progress is throttled and stops while the job waits on a fragment send.
        self._posts: set[asyncio.Task[None]] = set()
        self._active = 0.0  # loop time of the last message, or of the end of the last job

    async def run(self) -> None:
        """Serve the connection until the client leaves, idles or trickles too long, or breaks the rules."""
        loop = asyncio.get_running_loop()
        config = self.app.config
        self._active = self._opened = loop.time()
        try:
            await self._send(protocol.hello(config, self.session.engines, self.session.authenticated))
            while True:
                deadline, reason = self._deadline()
                try:
                    # recv() is cancellation-safe: a timeout loses no message.
                    message = await asyncio.wait_for(self.ws.recv(), max(deadline - loop.time(), 0.001))
                except asyncio.TimeoutError:
                    deadline, reason = self._deadline()
                    if reason == "none" or loop.time() < deadline:
                        continue  # a job is queued or running: pings tell whether the client is alive
                    await self._goodbye(*self._expired(reason))
                    return
                self._active = loop.time()
                if isinstance(message, str):
                    await self._on_text(message)
                else:
                    await self._on_binary(message)
        except ConnectionClosed:
            pass
        except Close as close:
            await self._goodbye(None, close.code, close.reason)
        finally:
            await self._drop_job()
            for task in self._posts:
                task.cancel()

    def _deadline(self) -> tuple[float, str]:
        """The earliest clock time something must have come, and why: idle, auth (no token yet), slow (upload)."""
        config = self.app.config
        now = asyncio.get_running_loop().time()
        due = [(now + config.idle_timeout, "none")]
        if self.session.phase is not Phase.WAITING:
            due.append((self._active + config.idle_timeout, "idle"))
        if not self.session.authenticated:
            due.append((self._opened + config.auth_timeout, "auth"))
        if self.session.phase is Phase.UPLOADING and self.session.upload is not None:
            due.append((self.session.upload.deadline(config.min_upload_rate, config.upload_grace), "slow"))
        return min(due)

    def _expired(self, reason: str) -> tuple[str, int, str]:
        """The error, close code and reason for a deadline that passed."""
        config = self.app.config
        if reason == "auth":
            return protocol.error("unauthorized", f"no token within {config.auth_timeout:g} s; send it with the handshake or in the first message"), 1008, "no token"
        if reason == "slow":
            rate = config.min_upload_rate / 1024
            message = f"the upload ran slower than {rate:g} KiB/s; the job was dropped: send the files faster or name them under the server's --root"
            return protocol.error("too_slow", message, self.job.id if self.job else None), 1008, "upload too slow"
        return protocol.error("timeout", f"nothing received for {config.idle_timeout:g} s; connection closed"), 1001, "idle"

    async def _on_text(self, text: str) -> None:
        try:
            was_authenticated = self.session.authenticated
            request = self.session.receive_text(text)
            if not was_authenticated and self.session.authenticated:
                admitted, _ = self.app.counts()
                if admitted > self.app.config.max_connections:  # this one now counts among them
                    await self._send(protocol.error("busy", "too many connections; try again later"))
                    raise Close(1013, "busy")
            if isinstance(request, Start):
                await self._start(request)
            elif isinstance(request, Cancel):
                await self._cancel()
            elif isinstance(request, Fetch):
                await self._fetch(request.job)
            elif isinstance(request, Hello):
                await self._send(protocol.hello(self.app.config, self.session.engines, self.session.authenticated))
        except ProtocolError as exc:
            await self._refuse(exc)

    async def _on_binary(self, data: bytes) -> None:
        job = self.job
        try:
            ranges = self.session.receive_binary(len(data))
        except ProtocolError as exc:
            if exc.code == "too_large" and job is not None:
                await self._drop_job()
            await self._refuse(exc)
            return
        assert job is not None and self.session.upload is not None
        view = memoryview(data)
        for name, lo, hi in ranges:
            await asyncio.to_thread(job.files[name].write, view[lo:hi])
        if self.session.upload.complete:
            for file in job.files.values():
                file.close()
            job.files.clear()
            self.session.uploaded()
            await self._send(protocol.encode("uploaded", job=job.id, bytes=self.session.upload.total))
            self._launch(job)

    async def _refuse(self, exc: ProtocolError) -> None:
        await self._send(protocol.error(exc.code, str(exc), self.job.id if self.job else None))
        if exc.fatal:
            raise Close(1008, exc.code)

    async def _start(self, start: Start) -> None:
        root = self.app.config.root
        named = {what: resolve_under(root, spec.path) for what, spec in (("video", start.video), ("audio", start.audio)) if isinstance(spec, Named) and root}
        job_id = new_job_id()
        folder = Path(tempfile.mkdtemp(prefix=f"job-{job_id[:6]}-", dir=self.app.jobs_dir))
        job = _Job(job_id, folder, start, named.get("video", folder / "video.upload"), named.get("audio", folder / "audio.upload"))
        self.job = job
        try:
            for what in ("video", "audio"):
                if what not in named:
                    job.files[what] = open(folder / f"{what}.upload", "wb")
        except OSError as exc:
            log.warning("cannot store an upload: %s", exc)
            await self._drop_job()
            raise ProtocolError("failed", "the server cannot store uploads right now; try again later") from None
        self.session.accepted(start, asyncio.get_running_loop().time())
        uploads = self.session.upload.parts if self.session.upload else []
        await self._send(protocol.encode("accepted", job=job_id, upload=[[name, size] for name, size in uploads]))
        log.info("job %s accepted (%s)", job_id[:6], start.config.engine)
        if self.session.phase is Phase.WAITING:
            self._launch(job)

    def _launch(self, job: _Job) -> None:
        job.task = asyncio.create_task(self._run_job(job), name=f"lipstream-job-{job.id[:6]}")

    async def _run_job(self, job: _Job) -> None:
        app = self.app
        try:
            try:
                await app.queue.acquire(lambda place: self._post(protocol.encode("queued", job=job.id, position=place)))
            except Busy as exc:
                await self._send_quietly(protocol.error("busy", f"the server is busy: {exc}", job.id))
                return
            try:
                await self._send_quietly(protocol.encode("started", job=job.id))
                output = job.folder / "output.mp4"
                result = await run_job(
                    job.video, job.audio, job.start.config,
                    on_fragment=lambda data: self._fragment(job, data),
                    on_progress=lambda event: self._progress(job, event),
                    output=output, observe=app.observe,
                )
            finally:
                app.queue.release()
            app.store.add(job.id, output)
            await self._send_quietly(protocol.encode(
                "done", job=job.id, frames=result.frames,
                video_duration=float(result.video_duration), audio_duration=float(result.audio_duration),
                bytes=job.sent_bytes, url=f"/jobs/{job.id}/output.mp4", expires_in=round(app.store.expires_in(job.id)),
            ))
            log.info("job %s done: %d frames", job.id[:6], result.frames)
        except Cancelled as exc:
            if self.ws.state is State.OPEN:
                await self._send_quietly(protocol.error("cancelled", str(exc), job.id))
        except InputError as exc:
            await self._send_quietly(protocol.error("input", str(exc), job.id))
        except LipstreamError as exc:
            log.warning("job %s failed: %s", job.id[:6], exc)
            await self._send_quietly(protocol.error("failed", str(exc), job.id))
        except Exception as exc:  # a bug: the client gets one line, the log the traceback
            log.exception("job %s failed", job.id[:6])
            await self._send_quietly(protocol.error("failed", f"internal error: {exc!r}", job.id))
        finally:
            self._end(job)

    def _end(self, job: _Job) -> None:
        """Forget the job and remove its folder; a new job may start."""
        for file in job.files.values():
            file.close()
        shutil.rmtree(job.folder, ignore_errors=True)
        if self.job is job:
            self.job = None
            self.session.ended()
            self._active = asyncio.get_running_loop().time()

    async def _fragment(self, job: _Job, data: bytes) -> None:
        """Send one piece of output; raises Cancelled when the client cannot take it."""
        try:
            if not job.sent_output:
                job.sent_output = True
                await self._send(protocol.encode("output", job=job.id, mime=protocol.mime_type(data)))
            step = self.app.config.max_message_bytes
            for at in range(0, len(data), step):
                await self._send(data[at : at + step])
            job.sent_bytes += len(data)
        except ConnectionClosed:
            raise Cancelled("the client went away") from None
        except asyncio.TimeoutError:
            raise Cancelled(f"the client read nothing for {self.app.config.idle_timeout:g} s") from None

    def _progress(self, job: _Job, event: ProgressEvent) -> None:
        now = time.monotonic()
        final = event.total is not None and event.frames >= event.total
        if self.job is not job or (now - job.last_progress < self.app.config.progress_interval and not final):
            return
        job.last_progress = now
        self._post(protocol.progress(event))

    async def _cancel(self) -> None:
        job = self.job
        if job is None:
            return
        await self._drop_job()
        await self._send(protocol.encode("cancelled", job=job.id))

    async def _drop_job(self) -> None:
        """Stop the job whatever its state, wait for it to let go of its files, remove them."""
        job = self.job
        if job is None:
            return
        if job.task is not None:
            job.task.cancel()
            try:
                await job.task
            except BaseException:  # already reported (or the client is gone)
                pass
        self._end(job)

    async def _fetch(self, job_id: str) -> None:
        path = self.app.store.get(job_id)
        if path is None:
            raise ProtocolError("not_found", "no finished output with that id (it may have expired)")
        with open(path, "rb") as file:  # an open file survives its removal from the store
            size = path.stat().st_size
            await self._send(protocol.encode("file", job=job_id, bytes=size))
            while chunk := await asyncio.to_thread(file.read, min(READ_CHUNK, self.app.config.max_message_bytes)):
                await self._send(chunk)
        await self._send(protocol.encode("file_end", job=job_id))

    def _post(self, message: str) -> None:
        """Send without waiting (queue places, progress); order is kept by the send lock."""
        task = asyncio.create_task(self._send_quietly(message))
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    async def _send_quietly(self, message: str) -> None:
        try:
            await self._send(message)
        except (ConnectionClosed, asyncio.TimeoutError):
            pass

    async def _send(self, message: str | bytes) -> None:
        """Send in order; a client that takes nothing for `idle_timeout` is disconnected."""
        async with self._send_lock:
            try:
                await asyncio.wait_for(self.ws.send(message), self.app.config.idle_timeout)
            except asyncio.TimeoutError:
                # A cancelled send leaves the connection unusable: close it (websockets' advice).
                self._post_close(1008, "not reading")
                raise

    def _post_close(self, code: int, reason: str) -> None:
        task = asyncio.create_task(self.ws.close(code, reason))
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    async def _goodbye(self, message: str | None, code: int, reason: str) -> None:
        """Close with `code`; unread messages are discarded so the client's close frame gets through.

        (With a full incoming queue websockets stops reading the socket, and
        the close handshake would wait out close_timeout.)
        """
        try:
            if message is not None:
                await self._send(message)
            closing = asyncio.create_task(self.ws.close(code, reason))
            try:
                await asyncio.wait_for(self._discard(), self.app.config.close_timeout)
            finally:
                await closing
        except (ConnectionClosed, asyncio.TimeoutError):
            pass

    async def _discard(self) -> None:
        try:
            while True:
                await self.ws.recv()
        except ConnectionClosed:
            pass
