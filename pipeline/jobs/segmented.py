"""Run a job segment by segment: fresh stages per segment, one runner pass each, into an `Output`.

The frames are decoded in order (`SegmentSplitter`), from the first segment
wanted (seeking past finished ones where the file allows); each segment gets
newly built stages (models are cached per process, so building is cheap),
prepared on the whole file when the video is one (`prepare(video)`: a look
over the input, the same for every segment), told which segment it is
(`enter(index)`) and a runner pass over its
warm-up, own and lookahead frames; only its own frames reach the output.
What reaches the sink is counted here (frames with a target face, frames an
engine edited), where every engine's work ends; the stages' own `report()`s
are combined over the segments.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from lipstream.errors import MediaError
from lipstream.stream.audio import AudioFeed, AudioInput
from lipstream.stream.frames import Frame, Window
from lipstream.stream.source import VideoSource
from lipstream.stream.timeline import Ending, output_frames, start_frame, video_end, video_limit
from lipstream.stream.windows import frame_windows

from ..engines import Plan
from ..progress import ProgressCallback, ProgressMeter
from ..runner import FragmentCallback, Runner
from .outputs import Output
from .segments import Segment, SegmentPlan, SegmentSplitter

T = TypeVar("T")


@dataclass
class Tally:
    """What left the pipeline: frames, those with a target face, those an engine changed."""

    frames: int = 0
    faces: int = 0
    edited: int = 0

    def count(self, frames: Sequence[Frame]) -> tuple[int, int]:
        faces = sum(1 for f in frames if f.face is not None)
        edited = sum(1 for f in frames if f.edited)
        self.frames += len(frames)
        self.faces += faces
        self.edited += edited
        return faces, edited


@dataclass(frozen=True)
class Outcome:
    tally: Tally
    video_end: Fraction
    segments: int  # segments in the output
    resumed: int  # of them taken over from an earlier run
    stats: dict[str, object]  # the stages' reports, combined over the segments


def combine_reports(reports: Sequence[tuple[int, dict[str, object]]]) -> dict[str, object]:
    """One summary from each segment's (own frames, stage reports): shares averaged by frames, counts the largest."""
    out: dict[str, object] = {}
    for key in dict.fromkeys(k for _, report in reports for k in report):
        values = [(frames, report[key]) for frames, report in reports if key in report]
        if all(isinstance(v, float) for _, v in values):
            total = sum(frames for frames, _ in values)
            out[key] = round(sum(frames * float(v) for frames, v in values) / total, 4) if total else values[-1][1]  # type: ignore[arg-type]
        elif all(isinstance(v, int) and not isinstance(v, bool) for _, v in values):
            out[key] = max(int(v) for _, v in values)  # type: ignore[call-overload]
        else:
            out[key] = values[-1][1]
    return out


def segment_plan(plan: Plan) -> SegmentPlan:
    """Segment length from the config; warm-up at least the windows' overlap; lookahead the context after a frame."""
    config = plan.config
    overlap = config.window.overlap
    return SegmentPlan(config.segment.span, warmup=max(config.segment.warmup, overlap), lookahead=overlap - overlap // 2)


async def run_segments(
    plan: Plan,
    source: VideoSource,
    audio: AudioInput,
    output: Output,
    *,
    total_frames: int | None,
    on_progress: ProgressCallback | None = None,
    on_fragment: FragmentCallback | None = None,
    check: Callable[[Tally, Fraction], None] | None = None,
    audio_end: Callable[[Fraction], Fraction],
    video_file: Path | None = None,
    first: int = 0,
    until: int | None = None,
) -> Outcome:
    """Process every segment into `output`, then finish it (`check` may refuse first: nothing is published).

    `video_file`: the input as a file, for stages that look over it first;
    `first`, `until`: the segments wanted, from `first` (the ones before it are finished, or are
    another worker's: decoding starts at the keyframe before `first`'s warm-up where the file
    allows, its own first frame when it is finished too) to `until`.
    """
    config = plan.config
    ending = Ending()
    segments = segment_plan(plan)
    start = 0
    if first > 0 and video_file is not None:
        start = start_frame(source, segments.start_of(first), 0 if output.skip(first) else segments.warmup)
    stop = threading.Event()  # set when the job is cancelled: threads give up what they can
    seconds_per_frame = 1 / source.average_rate if source.average_rate else Fraction(1, 25)
    history = 2 * config.window.audio_margin + float((segments.warmup + config.window.size) * seconds_per_frame)
    feed = AudioFeed(audio, history=history)
    meter = ProgressMeter(total_frames)
    tally = Tally()
    count = 0
    stages = plan.stages
    fresh = True
    reports: list[tuple[int, dict[str, object]]] = []
    passed = _passed_over(output, first if start else 0, tally, reports)
    skipped_segments = passed
    if tally.frames and on_progress is not None:
        on_progress(meter.advance(tally.frames))
    frames = output_frames(source, config.fit, audio.duration, ending, start)
    splitter = SegmentSplitter(frames, segments, skip=output.skip, stop=stop.is_set, until=until)
    while True:
        segment = await _blocking(splitter.next_segment, stop=stop)
        for index, skipped in splitter.skipped:
            if index < passed:
                continue  # the warm-up frames before `first`: its segment was counted whole above
            skipped_segments += 1
            entry = output.skipped(index)
            tally.frames += skipped
            if entry is not None:
                tally.faces += entry.faces
                tally.edited += entry.edited
                reports.append((skipped, dict(entry.report)))
            event = meter.advance(skipped)
            if on_progress is not None:
                on_progress(event)
        splitter.skipped.clear()
        if segment is None:
            break
        count += 1
        if not fresh:
            stages = await asyncio.to_thread(plan.engine.build, config, plan.found)
        fresh = False
        if video_file is not None:
            for stage in stages:
                prepare = getattr(stage, "prepare", None)
                if prepare is not None:
                    await _blocking(prepare, video_file, video_limit(config.fit, audio.duration))
        for stage in stages:
            enter = getattr(stage, "enter", None)
            if enter is not None:
                enter(segment.index)
        await _blocking(output.begin, segment)
        writer = _SegmentWriter(segment, segments, output, tally)
        await Runner(stages, in_flight=config.window.in_flight).run(
            frame_windows(segment.frames, feed, config.window),
            writer.write,
            meter=meter,
            counted=writer.counted,
            on_progress=on_progress,
            on_fragment=on_fragment,
        )
        report: dict[str, object] = {}
        for stage in stages:
            stage_report = getattr(stage, "report", None)
            if stage_report is not None:
                report.update(stage_report())
        reports.append((segment.own, report))
        end = segment.next_time
        if end is None:
            end = _video_end(config.fit, audio.duration, ending, splitter, source)
        await _blocking(output.end_segment, segment, end, report)
    if splitter.last_time is None:
        raise MediaError(f"{source.name}: no video frames were produced; the input video may be empty")
    end = _video_end(config.fit, audio.duration, ending, splitter, source)
    if check is not None:
        check(tally, end)
    data = await _blocking(output.finish, end, audio_end(end), stop, stop=stop)
    if data and on_fragment is not None:
        await on_fragment(data)
    return Outcome(tally, end, count + skipped_segments, skipped_segments, combine_reports(reports))


def _passed_over(output: Output, first: int, tally: Tally, reports: list[tuple[int, dict[str, object]]]) -> int:
    """Count the finished segments before `first` that decoding starts after, from what the output recorded of them."""
    for index in range(first):
        entry = output.skipped(index)
        if entry is not None:
            tally.frames += entry.frames
            tally.faces += entry.faces
            tally.edited += entry.edited
            reports.append((entry.frames, dict(entry.report)))
    return first


class _SegmentWriter:
    """Hands a segment's own frames (not its warm-up or lookahead) to the output, counting them on the way."""

    def __init__(self, segment: Segment, plan: SegmentPlan, output: Output, tally: Tally) -> None:
        self.segment, self.plan, self.output, self.tally = segment, plan, output, tally
        self._last = 0

    def write(self, window: Window) -> bytes:
        own = [f for f in window.owned if self.segment.owns(f, self.plan)]
        faces, edited = self.tally.count(own)
        self._last = len(own)
        return self.output.write(own, faces, edited)

    def counted(self, window: Window) -> int:
        """Frames the last `write` handed on (the runner asks right after it)."""
        return self._last


def _video_end(fit: str, audio_duration: Fraction, ending: Ending, splitter: SegmentSplitter, source: VideoSource) -> Fraction:
    assert splitter.last_time is not None
    return video_end(video_limit(fit, audio_duration), ending, splitter.last_time, source.frame_duration)  # type: ignore[arg-type]


async def _blocking(call: Callable[..., T], *args: object, stop: threading.Event | None = None) -> T:
    """Run a blocking call on a worker thread; if the job is cancelled meanwhile, set `stop` and wait for the thread to let go."""
    future = asyncio.ensure_future(asyncio.to_thread(call, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if stop is not None:
            stop.set()
        await asyncio.gather(future, return_exceptions=True)
        raise
