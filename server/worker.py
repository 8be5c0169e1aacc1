"""Run one job as a task on the server's event loop.

`run_sync` keeps every blocking step (opening and spooling inputs, decoding,
models, encoding, closing the output) on worker threads, so jobs run side by
side on the server's one loop; model stages of every job share one executor
per device. Each fragment is written to the job's output file and sent before
the job goes on (the backpressure from a slow client). Cancelling the task
cancels the job; it returns once the job's threads have let go of its files.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Awaitable, Callable

import aiofiles
import av

from lipstream.config import SyncConfig
from lipstream.errors import MediaError
from lipstream.pipeline.jobs.sync import JobResult, run_sync
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
    observe: Callable[[int], None] | None = None,
) -> JobResult:
    """Check both inputs, then run the pipeline, appending the output to `output`.

    `on_fragment` gets each piece of output after it was written to `output`;
    `observe(size)` (instrumentation) is called the moment the sink hands a
    piece over.
    """
    await asyncio.to_thread(check_container, video, "video")
    await asyncio.to_thread(check_container, audio, "audio")
    async with aiofiles.open(output, "wb") as file:

        async def fragment(data: bytes) -> None:
            if observe is not None:
                observe(len(data))
            await file.write(data)
            await on_fragment(data)

        return await run_sync(video, audio, None, config, on_progress=on_progress, on_fragment=fragment)
