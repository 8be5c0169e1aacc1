"""One lip-sync job: open the inputs, plan the output, run the stages, publish."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterator

from lipstream.config import SyncConfig, WindowConfig
from lipstream.errors import InputError
from lipstream.stream.audio import AudioFeed, AudioInput
from lipstream.stream.frames import Frame, Window
from lipstream.stream.sink import Sink, file_format
from lipstream.stream.source import VideoSource
from lipstream.stream.timeline import audio_end, output_frames, video_limit
from lipstream.stream.windows import WindowPlanner

from .engines import build_stages
from .progress import ProgressCallback
from .runner import FragmentCallback, Runner

log = logging.getLogger(__name__)

Source = str | Path | BinaryIO


@dataclass(frozen=True)
class JobResult:
    frames: int
    video_duration: Fraction
    audio_duration: Fraction
    output: Path | None


def check_output(output: Path, *inputs: Source) -> None:
    """Refuse outputs that would overwrite an input or that we cannot write."""
    file_format(output)
    for source in inputs:
        if isinstance(source, (str, Path)) and Path(source).exists() and output.exists() and output.samefile(source):
            raise InputError(f"the output {output} is one of the inputs; choose another output path")
    if not output.parent.exists():
        raise InputError(f"the output folder {output.parent} does not exist; create it or choose another path")


def windows(frames: Iterator[Frame], feed: AudioFeed | None, config: WindowConfig) -> Iterator[Window]:
    """Group frames into windows and attach the audio around each one."""
    planner: WindowPlanner[Frame] = WindowPlanner(config.size, config.overlap)
    margin = Fraction(config.audio_margin).limit_denominator(1000)
    index = 0

    def make(items: list[Frame], lo: int, hi: int, last: bool) -> Window:
        nonlocal index
        span = None if feed is None else feed.span(items[0].time - margin, items[-1].time + margin)
        index += 1
        return Window(index - 1, tuple(items), lo, hi, span, last)

    for frame in frames:
        for items, lo, hi in planner.push(frame):
            yield make(items, lo, hi, False)
    rest = planner.finish()
    for n, (items, lo, hi) in enumerate(rest):
        yield make(items, lo, hi, n == len(rest) - 1)


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
    config, stages = build_stages(config)
    new_audio = AudioInput(audio)
    try:
        with VideoSource(video) as source:
            feed = AudioFeed(new_audio)
            sink = Sink(output, new_audio, config.encode, rate=source.average_rate)
            try:
                frames = output_frames(source, config.fit, new_audio.duration)
                runner = Runner(stages, queue_size=config.window.queue_size)
                written = await runner.run(
                    windows(frames, feed, config.window),
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
                data = sink.close(video_end, end)
                if data and on_fragment is not None:
                    await on_fragment(data)
            except BaseException:
                sink.abort()
                raise
    finally:
        new_audio.close()
    return JobResult(written, video_end, end, output if isinstance(output, Path) else None)
