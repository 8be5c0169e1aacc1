"""One lip-sync job: open the inputs, plan the output, run the segments, check, publish.

Everything that blocks (opening and spooling inputs, loading models, closing
the output) runs on worker threads, so a server can run many jobs as tasks
on its one event loop; a cancelled job waits for those threads to let go of
what they opened before it returns. A file output is written as segment
files in `.OUT.lipstream/` and joined at the end (resumable with
`SyncConfig.resume`); a pipe or fragment consumer gets one continuous stream.
Nothing is published when the output would not cover the asked length or,
with `strict`, when no target face was found.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from importlib import metadata
from pathlib import Path
from typing import BinaryIO, Callable, TypeVar

from lipstream.config import SyncConfig
from lipstream.errors import InputError, MediaError
from lipstream.stream.audio import AudioInput
from lipstream.stream.encoding import choose_encoding, estimated_bytes
from lipstream.stream.partials import check_free_space
from lipstream.stream.sink import check_output
from lipstream.stream.source import VideoSource
from lipstream.stream.timeline import audio_end, video_limit

from ..engines import Plan, build_stages
from ..progress import ProgressCallback, ProgressMeter
from ..runner import FragmentCallback
from .outputs import Output, SegmentFiles, StreamOutput
from .farm import Farm, FarmJob, SegmentsDone, segment_count
from .segmented import Tally, run_segments, segment_plan
from .segments import file_identity, run_key

log = logging.getLogger(__name__)

Source = str | Path | BinaryIO
T = TypeVar("T")

VERSIONED = ("lipstream", "av", "numpy", "torch", "opencv-python-headless")  # what else decides the output's bytes


@dataclass(frozen=True)
class JobResult:
    frames: int
    video_duration: Fraction
    audio_duration: Fraction
    output: Path | None
    engine: str = ""
    checkpoints: dict[str, list[str]] = field(default_factory=dict)  # registry name -> files loaded
    stats: dict[str, object] = field(default_factory=dict)  # what the stages report (e.g. exemplar_coverage)
    damaged_frames: int = 0  # frames of the input lost to damage (skipped packets, a truncated file)
    faces: int = 0  # output frames where the target face was found
    reanimated: int = 0  # output frames whose pixels the engine changed
    tracked: bool = False  # the engine looks for faces (so faces == 0 means none was found)
    segments: int = 0
    resumed: int = 0  # segments taken over from an interrupted run
    notes: tuple[str, ...] = ()  # what the output changed about the picture (size, pixel format)
    warnings: tuple[str, ...] = ()  # damaged input, no face: the run went on, the user should know


def expected_length(source: VideoSource, config: SyncConfig, audio: Fraction) -> Fraction | None:
    """How long the output will be, as far as known before decoding."""
    video = source.duration
    limit = video_limit(config.fit, audio)
    if config.fit == "shortest" and video is not None:
        limit = min(audio, video)
    elif limit is None:
        limit = video
    return limit


def estimate_frames(source: VideoSource, config: SyncConfig, audio: Fraction) -> int | None:
    length = expected_length(source, config, audio)
    return None if length is None else math.ceil(length * source.average_rate)


def asked_length(config: SyncConfig, source: VideoSource, audio: Fraction) -> Fraction | None:
    """The length the user asked for, where the input declares enough to know it."""
    if config.fit == "audio":
        return audio
    video = source.declared_duration
    if video is None:
        return None
    return video if config.fit == "video" else min(audio, video)


async def run_sync(
    video: Source,
    audio: Source,
    output: Path | BinaryIO | None,
    config: SyncConfig = SyncConfig(),
    *,
    on_progress: ProgressCallback | None = None,
    on_fragment: FragmentCallback | None = None,
    farm: Farm | None = None,
) -> JobResult:
    """Lip-sync `video` to `audio` into `output` (a path, a pipe, or None for `on_fragment`).

    `farm`: workers elsewhere (Ray) encode the segments; this run journals and joins them.
    """
    if isinstance(output, Path):
        check_output(output, video, audio)
    if config.resume:
        _check_resumable(video, audio, output)
    if farm is not None:
        _check_farmable(video, audio, output)
    plan = await asyncio.to_thread(build_stages, config)
    new_audio = await _opened(AudioInput, audio)
    try:
        source = await _opened(VideoSource, video)
        try:
            return await _run(plan, source, new_audio, video, audio, output, on_progress, on_fragment, farm)
        finally:
            source.close()
    finally:
        new_audio.close()


async def _run(
    plan: Plan,
    source: VideoSource,
    new_audio: AudioInput,
    video: Source,
    audio: Source,
    output: Path | BinaryIO | None,
    on_progress: ProgressCallback | None,
    on_fragment: FragmentCallback | None,
    farm: Farm | None = None,
) -> JobResult:
    config = plan.config
    tracked = any(stage.name == "face" for stage in plan.stages)
    files: SegmentFiles | None = None
    target: Output
    if isinstance(output, Path):
        key = await asyncio.to_thread(_run_key, plan, video, audio)
        files = SegmentFiles(output, new_audio, config.encode, rate=source.average_rate, traits=source.traits, key=key, resume=config.resume)
        opening = asyncio.ensure_future(asyncio.to_thread(files.open))
        try:
            await asyncio.shield(opening)
        except asyncio.CancelledError:  # interrupted while the thread opens: let it finish, then let go of the folder
            if (await asyncio.gather(opening, return_exceptions=True))[0] is None:
                files.close(success=False)
            raise
        target = files
    else:
        target = StreamOutput(output, new_audio, config.encode, rate=source.average_rate, traits=source.traits)
    success = False
    peaks: list[int] = []
    try:
        if files is not None:
            _check_space(files.final, source, config, new_audio)
        if farm is not None and files is not None:
            peaks = await _farm_out(farm, files, plan, source, new_audio, video, audio, on_progress)

        def check(tally: Tally, video_end: Fraction) -> None:
            asked = asked_length(config, source, new_audio.duration)
            if source.damaged and asked is not None and video_end < asked - Fraction(3, 2) * source.frame_duration:
                raise MediaError(
                    f"{source.name} is damaged or cut short: {source.damaged} frame(s) could not be decoded and the video ends at "
                    f"{float(video_end):.2f} s of {float(asked):.2f} s; repair or re-export it, or pass --fit audio to fill the length"
                )
            if config.strict and tracked and tally.faces == 0:
                raise InputError(f"no target face was found in {source.name}, so nothing would be re-animated (--strict); check the video or --target")

        outcome = await run_segments(
            plan,
            source,
            new_audio,
            target,
            total_frames=estimate_frames(source, config, new_audio.duration),
            on_progress=on_progress,
            on_fragment=on_fragment,
            check=check,
            audio_end=lambda end: audio_end(config.fit, new_audio.duration, end),
            video_file=Path(video) if isinstance(video, (str, Path)) else None,
            first=0 if files is None else _resume_point(files),
        )
        success = True
    except BaseException:
        await asyncio.shield(asyncio.to_thread(target.abort))
        raise
    finally:
        if files is not None:
            files.close(success)
    tally = outcome.tally
    warnings = []
    if source.damaged:
        warnings.append(f"{source.name}: {source.damaged} damaged frame(s) could not be decoded and were skipped (damaged or truncated input)")
    if files is not None and files.restarted:
        warnings.append(f"the interrupted run for {files.final} had other inputs, options or versions; it was started over")
    if tracked and tally.faces == 0:
        warnings.append(f"no target face was found in {source.name}: nothing was re-animated (the output is the video with the new audio)")
    checkpoints = {name: [str(p) for p in paths] for name, paths in plan.found.files.items()}
    stats = {**outcome.stats, **({"worker_peak_rss_mb": round(max(peaks) / 2**20, 1)} if peaks else {})}
    end = outcome.video_end
    return JobResult(
        tally.frames,
        end,
        audio_end(config.fit, new_audio.duration, end),
        output if isinstance(output, Path) else None,
        plan.engine.name,
        checkpoints,
        stats,
        damaged_frames=source.damaged,
        faces=tally.faces,
        reanimated=tally.edited,
        tracked=tracked,
        segments=outcome.segments,
        resumed=files.resumed if farm is not None and files is not None else outcome.resumed,
        notes=target.notes,
        warnings=tuple(warnings),
    )


def _check_resumable(video: Source, audio: Source, output: Path | BinaryIO | None) -> None:
    if not isinstance(output, Path):
        raise InputError("--resume needs -o FILE: a pipe cannot be continued")
    if not isinstance(video, (str, Path)) or not isinstance(audio, (str, Path)):
        raise InputError("--resume needs VIDEO and AUDIO as files: standard input cannot be read again")


def _resume_point(files: SegmentFiles) -> int:
    """The segment decoding can start at: the first unfinished one, or the last one when every recorded one is finished."""
    done = {index for index in files.journal.segments if files.skip(index)}
    first = 0
    while first in done:
        first += 1
    return min(first, max(done)) if done else 0


def _check_farmable(video: Source, audio: Source, output: Path | BinaryIO | None) -> None:
    if not isinstance(output, Path) or not isinstance(video, (str, Path)) or not isinstance(audio, (str, Path)):
        raise InputError("segments on workers need VIDEO, AUDIO and -o OUT as files the workers can reach, not pipes")


async def _farm_out(
    farm: Farm,
    files: SegmentFiles,
    plan: Plan,
    source: VideoSource,
    audio: AudioInput,
    video: Source,
    speech: Source,
    on_progress: ProgressCallback | None,
) -> list[int]:
    """Have the farm encode the segments the journal lacks, journaling each as it comes back; the workers' peak RSS."""
    count = segment_count(expected_length(source, plan.config, audio.duration), segment_plan(plan))
    if count == 0:
        log.warning("the length of %s is not known before decoding; its segments are processed here, not on workers", source.name)
    todo = tuple(index for index in range(count) if not files.skip(index))
    peaks: list[int] = []
    meter = ProgressMeter(estimate_frames(source, plan.config, audio.duration))

    def record(done: SegmentsDone) -> None:
        for entry in done.segments:
            files.record(entry, done.time_base, done.notes)
            if on_progress is not None:
                on_progress(meter.advance(entry.frames))
        peaks.append(done.peak_rss)

    if todo:
        # absolute paths: a worker on another machine does not share this process's folder
        job = FarmJob(Path(video).resolve(), Path(speech).resolve(), files.final.resolve(), plan.config, todo)  # type: ignore[arg-type]
        await farm.run(job, record)
    return peaks


def _check_space(final: Path, source: VideoSource, config: SyncConfig, audio: AudioInput) -> None:
    """Before any work: the segment files and the joined output (twice the output) must fit where they go."""
    length = expected_length(source, config, audio.duration)
    encoding = choose_encoding(config.encode, source.traits, (2, 2))
    needed = None if length is None else estimated_bytes(encoding, float(length), config.encode.audio_bitrate)
    if needed is not None:
        check_free_space(final.parent, 2 * needed)


def _run_key(plan: Plan, video: Source, audio: Source) -> str:
    """Everything a file output depends on: inputs and checkpoints by size and time, options, engine, versions."""
    config = replace(plan.config, resume=False, strict=False, weights=())

    def identity(source: Source) -> object:
        return file_identity(Path(source)) if isinstance(source, (str, Path)) else "stdin"

    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return run_key(
        {
            "video": identity(video),
            "audio": identity(audio),
            "engine": plan.engine.name,
            "checkpoints": {name: [file_identity(p) for p in paths] for name, paths in plan.found.files.items()},
            "config": asdict(config),
            "versions": versions,
        }
    )


async def _opened(factory: Callable[[Source], T], source: Source) -> T:
    """Open an input on a worker thread; if the job is cancelled meanwhile, close what it opened (a spooled pipe)."""
    future = asyncio.ensure_future(asyncio.to_thread(factory, source))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        done = await asyncio.gather(future, return_exceptions=True)
        close = getattr(done[0], "close", None)
        if close is not None:
            close()
        raise
