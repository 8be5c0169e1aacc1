"""One lip-sync job: open the inputs, plan the output, run the stages, publish.

Everything that blocks (opening and spooling inputs, loading models, closing
the output) runs on worker threads, so a server can run many jobs as tasks
on its one event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

from lipstream.config import SyncConfig
from lipstream.stream.audio import AudioFeed, AudioInput
from lipstream.stream.sink import Sink, check_output
from lipstream.stream.source import VideoSource
from lipstream.stream.timeline import audio_end, output_frames, video_limit
from lipstream.stream.windows import frame_windows

from ..engines import build_stages
from ..progress import ProgressCallback
from ..runner import FragmentCallback, Runner

log = logging.getLogger(__name__)

Source = str | Path | BinaryIO


@dataclass(frozen=True)
class JobResult:
    frames: int
    video_duration: Fraction
    audio_duration: Fraction
    output: Path | None
    engine: str = ""
    checkpoints: dict[str, list[str]] = field(default_factory=dict)  # registry name -> files loaded
    stats: dict[str, object] = field(default_factory=dict)  # what the stages report (e.g. exemplar_coverage)


def estimate_frames(source: VideoSource, config: SyncConfig, audio: Fraction) -> int | None:
    video = source.duration
    limit = video_limit(config.fit, audio)
    if config.fit == "shortest" and video is not None:
        limit = min(audio, video)
    elif limit is None:
        limit = video
    return None if limit is None else math.ceil(limit * source.average_rate)


async def run_sync(
    video: Source,
    audio: Source,
    output: Path | BinaryIO | None,
    config: SyncConfig = SyncConfig(),
    *,
    on_progress: ProgressCallback | None = None,
    on_fragment: FragmentCallback | None = None,
) -> JobResult:
    """Lip-sync `video` to `audio` into `output` (a path, a pipe, or None for `on_fragment`)."""
    if isinstance(output, Path):
        check_output(output, video, audio)
    plan = await asyncio.to_thread(build_stages, config)
    config = plan.config
    if isinstance(video, (str, Path)):
        for stage in plan.stages:
            prepare = getattr(stage, "prepare", None)
            if prepare is not None:
                await asyncio.to_thread(prepare, Path(video))
    new_audio = await asyncio.to_thread(AudioInput, audio)
    try:
        source = await asyncio.to_thread(VideoSource, video)
        try:
            sink = await asyncio.to_thread(Sink, output, new_audio, config.encode, rate=source.average_rate)
            try:
                frames = output_frames(source, config.fit, new_audio.duration)
                runner = Runner(plan.stages, queue_size=config.window.queue_size)
                written = await runner.run(
                    frame_windows(frames, AudioFeed(new_audio), config.window),
                    lambda w: sink.write(w.owned),
                    total_frames=estimate_frames(source, config, new_audio.duration),
                    on_progress=on_progress,
                    on_fragment=on_fragment,
                )
                video_end = sink.end_time + source.frame_duration
                limit = video_limit(config.fit, new_audio.duration)
                if limit is not None:
                    video_end = min(video_end, limit)
                end = audio_end(config.fit, new_audio.duration, video_end)
                data = await asyncio.to_thread(sink.close, video_end, end)
                if data and on_fragment is not None:
                    await on_fragment(data)
            except BaseException:
                sink.abort()
                raise
        finally:
            source.close()
    finally:
        new_audio.close()
    checkpoints = {name: [str(p) for p in paths] for name, paths in plan.found.files.items()}
    stats: dict[str, object] = {}
    for stage in plan.stages:
        report = getattr(stage, "report", None)
        if report is not None:
            stats.update(report())
    output_path = output if isinstance(output, Path) else None
    return JobResult(written, video_end, end, output_path, plan.engine.name, checkpoints, stats)
