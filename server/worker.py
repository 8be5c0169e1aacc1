"""Run one job on its own thread and event loop, so nothing it does can stall the server.

`run_sync` opens inputs, counts audio and closes the muxer on its event loop;
for a CLI that is fine, for a server it would freeze every other connection
meanwhile. Here each job gets a thread with a private loop; fragments come
back to the server loop one at a time (the job waits for each to be sent,
which is the backpressure from a slow client), progress events are posted
without waiting. Cancelling the awaiting coroutine cancels the job and
returns only once the job thread has let go of its files.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import threading
from pathlib import Path
from typing import Awaitable, Callable

import av

from lipstream.config import SyncConfig
from lipstream.errors import Cancelled, MediaError
from lipstream.pipeline.job import JobResult, run_sync
from lipstream.pipeline.progress import ProgressEvent

log = logging.getLogger(__name__)

# Demuxers of self-contained files. Playlists (hls, concat) and other formats
# that open further files or URLs named inside the data are refused.
SAFE_DEMUXERS = "mov,matroska,webm,avi,mpegts,flv,asf,wav,w64,mp3,flac,ogg,aac,aiff,caf"


def check_container(path: Path, what: str) -> None:
    """Refuse inputs whose container would make FFmpeg read anything but this file."""
    try:
        with av.open(str(path), "r", options={"format_whitelist": SAFE_DEMUXERS, "protocol_whitelist": "file"}) as container:
            if what == "video" and not container.streams.video:
                raise MediaError(f"the {what} has no video stream; send a video file")
            if what == "audio" and not container.streams.audio:
                raise MediaError(f"the {what} has no audio stream; send the new speech (wav, mp3, m4a, ...)")
    except av.error.FFmpegError:
        raise MediaError(f"the {what} is not a supported media file; send mp4, mov, mkv, webm, avi, ts, wav, mp3, flac, ogg or m4a") from None


async def run_job(
    video: Path,
    audio: Path,
    config: SyncConfig,
    *,
    on_fragment: Callable[[bytes], Awaitable[None]],
    on_progress: Callable[[ProgressEvent], None],
    output: Path,
    name: str = "job",
    observe: Callable[[int], None] | None = None,
) -> JobResult:
    """Check both inputs, then run the pipeline on a new thread, appending the output to `output`.

    Both callbacks run on the calling loop; `on_fragment` gets each piece of
    output after it was written to `output`. `observe(size)` (instrumentation)
    is called on the job thread the moment the sink hands a piece over.
    """
    server = asyncio.get_running_loop()
    finished: asyncio.Future[JobResult] = server.create_future()
    control = _Control()

    def progress(event: ProgressEvent) -> None:
        try:
            server.call_soon_threadsafe(on_progress, event)
        except RuntimeError:  # the server loop is closing; the job is being cancelled anyway
            pass

    async def main() -> JobResult:
        control.attach()
        check_container(video, "video")
        check_container(audio, "audio")
        with open(output, "wb") as file:

            async def fragment(data: bytes) -> None:
                if observe is not None:
                    observe(len(data))
                file.write(data)
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(on_fragment(data), server))

            return await run_sync(video, audio, None, config, on_progress=progress, on_fragment=fragment)

    def settle(result: JobResult | None, error: BaseException | None) -> None:
        if finished.done():
            return
        if error is not None:
            finished.set_exception(error)
        else:
            finished.set_result(result)  # type: ignore[arg-type]

    def thread() -> None:
        result, error = None, None
        try:
            result = asyncio.run(main())
        except BaseException as exc:  # handed to the awaiting coroutine, which re-raises it
            error = _plain(exc)
        try:
            server.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the server loop is gone (shutdown): nobody waits any more
            log.debug("job %s ended after the server loop closed", name)

    threading.Thread(target=thread, name=f"lipstream-{name}", daemon=True).start()
    try:
        return await asyncio.shield(finished)
    except asyncio.CancelledError:
        control.cancel()
        # The thread stops after the window in hand; until then it still holds
        # the job's files, so further cancellations wait too.
        while not finished.done():
            try:
                await asyncio.shield(finished)
            except asyncio.CancelledError:
                continue
            except BaseException:  # the job's own error is moot once it was cancelled
                break
        raise


class _Control:
    """Cancels the job's main task from another thread, even before it has started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._task: asyncio.Task[JobResult] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cancelled = False

    def attach(self) -> None:
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()  # type: ignore[assignment]
            if self._cancelled:
                raise Cancelled("the job was cancelled before it started")

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._loop is not None and self._task is not None:
                try:
                    self._loop.call_soon_threadsafe(self._task.cancel)
                except RuntimeError:  # the job loop already closed: the job is over
                    pass


def _plain(exc: BaseException) -> BaseException:
    """A job-side cancellation or thread error as something the server loop can raise."""
    if isinstance(exc, (asyncio.CancelledError, cf.CancelledError)):
        return Cancelled("the job was cancelled")
    if isinstance(exc, Exception):
        return exc
    return RuntimeError(f"the job thread stopped: {exc!r}")
