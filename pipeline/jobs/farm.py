"""Segments of one file output encoded elsewhere: the work a worker does and what the run hands out (no Ray here).

A run that farms its segments out still holds the output's lock and journal
(`SegmentFiles`); a worker gets a `SegmentTask` (the inputs and the output
as paths on storage both can reach, the options, the segment indices), runs
exactly the one-process code on them (`run_segments` with a `SegmentRange`:
the segments before its share are decoded through, not processed, so its
stages see the same frames as in a one-process run) and writes each
segment's file into the run's state folder. The run journals what comes
back and then joins as usual; a segment nobody returned is processed there.
"""

from __future__ import annotations

import asyncio
import math
import resource
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Protocol

from lipstream.config import SyncConfig
from lipstream.stream.audio import AudioInput
from lipstream.stream.source import VideoSource
from lipstream.stream.timeline import audio_end

from ..engines import build_stages
from .outputs import SegmentRange
from .segmented import run_segments
from .segments import DoneSegment, SegmentPlan


@dataclass(frozen=True)
class SegmentTask:
    """Some segments of one output, for a worker: everything it needs travels in here (paths, not bytes)."""

    video: Path
    audio: Path
    output: Path
    config: SyncConfig
    indices: tuple[int, ...]


@dataclass(frozen=True)
class SegmentsDone:
    """What a worker returns: the finished segments (files in the state folder), their time base and notes."""

    segments: tuple[DoneSegment, ...]
    time_base: str
    notes: tuple[str, ...]
    peak_rss: int  # bytes, the worker process's high-water mark so far


@dataclass(frozen=True)
class FarmJob:
    """What a run asks a farm to do: which segments of which output are still to be made."""

    video: Path
    audio: Path
    output: Path
    config: SyncConfig
    todo: tuple[int, ...]

    def task(self, indices: tuple[int, ...]) -> SegmentTask:
        return SegmentTask(self.video, self.audio, self.output, self.config, indices)


Record = Callable[[SegmentsDone], None]


class Farm(Protocol):
    """Runs a job's segments somewhere else, calling `record` on the event loop as each task comes back."""

    async def run(self, job: FarmJob, record: Record) -> None: ...


def segment_count(length: Fraction | None, plan: SegmentPlan) -> int:
    """How many segments an output of `length` seconds has (0 when the length is not known before decoding)."""
    return 0 if length is None else max(1, math.ceil(length / plan.seconds))


def encode_segments(task: SegmentTask, on_begin: Callable[[int], None] | None = None) -> SegmentsDone:
    """Encode the task's segments into the output's state folder with the one-process code (blocking).

    `on_begin(index)` is called as each segment starts (tests use it to kill a worker mid-task).
    """
    return asyncio.run(_encode(task, on_begin))


async def _encode(task: SegmentTask, on_begin: Callable[[int], None] | None) -> SegmentsDone:
    plan = await asyncio.to_thread(build_stages, task.config)
    audio = await asyncio.to_thread(AudioInput, task.audio)
    try:
        source = await asyncio.to_thread(VideoSource, task.video)
        try:
            output = SegmentRange(task.output, task.indices, plan.config.encode, rate=source.average_rate, traits=source.traits, on_begin=on_begin)
            try:
                await run_segments(
                    plan,
                    source,
                    audio,
                    output,
                    total_frames=None,
                    audio_end=lambda end: audio_end(plan.config.fit, audio.duration, end),
                    video_file=task.video,
                    first=min(task.indices),
                    until=max(task.indices),
                )
            except BaseException:
                output.abort()
                raise
        finally:
            source.close()
    finally:
        audio.close()
    return SegmentsDone(tuple(output.done), output.time_base, output.notes, peak_rss())


def peak_rss() -> int:
    """This process's peak resident memory in bytes (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
