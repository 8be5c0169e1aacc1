"""Many lip-sync jobs from a manifest: each tried up to `retries` more times, one result per job, finished ones skipped on a rerun.

A manifest is JSON lines, one job each: {"video", "audio", "out"} plus
options that override the batch's (`OPTIONS`); relative paths are taken
from the manifest's folder. Jobs run here one after another, or on Ray
actors (`ray_farm.run_batch_on_ray`), each with the one-process `run_sync`.
A job whose output was published is recorded in `.MANIFEST.done.jsonl`
beside the manifest; a later run skips it while its output is still the
file that was recorded (same size and time) and its line is unchanged.
Bad input (a missing file, a bad option) is not retried: it fails the same
way again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

from lipstream.config import ENHANCES, FITS, QUALITIES, VIDEO_CODECS, SegmentConfig, SyncConfig
from lipstream.errors import Cancelled, InputError, LipstreamError

from ..engines import AUTO, ENGINES
from .segments import run_key
from .sync import run_sync

log = logging.getLogger(__name__)

# what a manifest line may set, and what it must be
OPTIONS: dict[str, tuple[type, tuple[str, ...] | None]] = {
    "engine": (str, (AUTO, *sorted(ENGINES))),
    "fit": (str, FITS),
    "quality": (str, QUALITIES),
    "enhance": (str, ENHANCES),
    "codec": (str, VIDEO_CODECS),
    "crf": (int, None),
    "preset": (str, None),
    "segment": (float, None),
    "strict": (bool, None),
}
REQUIRED = ("video", "audio", "out")


@dataclass(frozen=True)
class BatchJob:
    """One manifest line: inputs and output as paths, the options it sets."""

    line: int
    video: Path
    audio: Path
    out: Path
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What the job is: a changed line is a new job, even for the same output."""
        return run_key({"video": str(self.video), "audio": str(self.audio), "out": str(self.out), "options": self.options})

    def config(self, base: SyncConfig) -> SyncConfig:
        """The batch's configuration with this line's options."""
        options = dict(self.options)
        encode = {k: options.pop(k) for k in ("codec", "crf", "preset") if k in options}
        config = replace(base, encode=replace(base.encode, **encode)) if encode else base
        if "segment" in options:
            config = replace(config, segment=replace(config.segment, seconds=float(options.pop("segment"))))
        return replace(config, **options)


@dataclass(frozen=True)
class JobReport:
    """One result line: `status` ok, error or skipped (finished by an earlier run)."""

    line: int
    video: str
    audio: str
    out: str
    status: str
    attempts: int = 0
    seconds: float = 0.0  # wall time of the last attempt
    frames: int = 0
    duration: float = 0.0  # seconds of output video
    error: str | None = None
    retriable: bool = False  # the error may not happen again (a crash), unlike bad input

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("retriable")
        return {k: v for k, v in data.items() if v is not None}


def read_manifest(path: Path) -> list[BatchJob]:
    """The jobs of a JSONL manifest; anything wrong in it is an InputError naming the line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read the manifest {path}: {exc.strerror or exc}") from None
    folder = path.parent.resolve()  # absolute: workers elsewhere do not share this process's folder
    jobs: list[BatchJob] = []
    outputs: dict[Path, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InputError(f"{where}: not a JSON object ({exc.msg}); each line is one job like {{\"video\": ..., \"audio\": ..., \"out\": ...}}") from None
        if not isinstance(data, dict):
            raise InputError(f"{where}: a job is a JSON object with video, audio and out")
        missing = [k for k in REQUIRED if not isinstance(data.get(k), str) or not data[k]]
        if missing:
            raise InputError(f"{where}: {', '.join(missing)} missing (each job needs video, audio and out as paths)")
        options = {k: v for k, v in data.items() if k not in REQUIRED}
        _check_options(where, options)
        video, audio, out = (folder / data[k] for k in REQUIRED)
        if out.resolve() in outputs:
            raise InputError(f"{where}: {out} is also the output of line {outputs[out.resolve()]}; give each job its own out")
        outputs[out.resolve()] = number
        jobs.append(BatchJob(number, video, audio, out, options))
    if not jobs:
        raise InputError(f"{path} has no jobs; write one JSON object per line with video, audio and out")
    return jobs


def _check_options(where: str, options: dict[str, Any]) -> None:
    for name, value in options.items():
        if name not in OPTIONS:
            raise InputError(f"{where}: unknown option {name!r}; a job may set {', '.join(sorted(OPTIONS))}")
        kind, choices = OPTIONS[name]
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok or (choices is not None and value not in choices):
            wanted = f"one of {', '.join(choices)}" if choices else f"a {kind.__name__}"
            raise InputError(f"{where}: {name} must be {wanted}, got {value!r}")
    if "segment" in options:
        SegmentConfig(seconds=float(options["segment"]))  # its own check, as an InputError


async def attempt(job: BatchJob, base: SyncConfig) -> JobReport:
    """Run the job once with the one-process `run_sync`; a failure becomes the report's error (bad input: not retriable)."""
    start = time.monotonic()
    failed = _report(job, "error", 1, 0.0)
    try:
        result = await run_sync(job.video, job.audio, job.out, job.config(base))
    except Cancelled:
        raise
    except InputError as exc:
        return replace(failed, seconds=round(time.monotonic() - start, 3), error=str(exc))
    except LipstreamError as exc:
        return replace(failed, seconds=round(time.monotonic() - start, 3), error=str(exc), retriable=True)
    except Exception as exc:  # a bug or a crash in one job must not end the batch
        log.debug("job %d failed", job.line, exc_info=True)
        return replace(failed, seconds=round(time.monotonic() - start, 3), error=f"internal error: {exc!r}", retriable=True)
    return replace(failed, status="ok", seconds=round(time.monotonic() - start, 3), frames=result.frames, duration=float(result.video_duration))


def attempt_now(work: tuple[BatchJob, SyncConfig]) -> JobReport:
    """`attempt` in a worker process (blocking)."""
    return asyncio.run(attempt(*work))


def _report(job: BatchJob, status: str, attempts: int, seconds: float) -> JobReport:
    return JobReport(job.line, str(job.video), str(job.audio), str(job.out), status, attempts, round(seconds, 3))


class Finished:
    """The record of published outputs beside the manifest (`.MANIFEST.done.jsonl`): what a rerun skips."""

    def __init__(self, manifest: Path) -> None:
        self.path = manifest.with_name(f".{manifest.name}.done.jsonl")
        self._entries: dict[str, dict[str, Any]] = {}
        try:
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    self._entries[str(entry["key"])] = entry
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a kill
        except OSError:
            pass

    def done(self, job: BatchJob) -> bool:
        entry = self._entries.get(job.key)
        if entry is None:
            return False
        try:
            stat = job.out.stat()
        except OSError:
            return False
        return stat.st_size == entry.get("size") and stat.st_mtime_ns == entry.get("mtime_ns")

    def add(self, job: BatchJob) -> None:
        stat = job.out.stat()
        entry = {"key": job.key, "line": job.line, "out": str(job.out), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        self._entries[job.key] = entry
        try:
            with open(self.path, "a") as file:
                file.write(json.dumps(entry) + "\n")
                file.flush()
                os.fsync(file.fileno())
        except OSError as exc:
            log.warning("cannot record finished job %d in %s (%s); a rerun will redo it", job.line, self.path, exc.strerror)


Done = Callable[[BatchJob, JobReport], None]
Runner = Callable[[Sequence[BatchJob], Done], Awaitable[None]]


@dataclass
class BatchRun:
    """Drives the jobs of a manifest through `attempts` rounds of a runner; reports each job once, when it is settled."""

    jobs: Sequence[BatchJob]
    finished: Finished
    retries: int
    on_result: Callable[[JobReport], None]
    results: dict[int, JobReport] = field(default_factory=dict)

    async def run(self, runner: Runner) -> list[JobReport]:
        """`runner(jobs, done)` runs each job once and calls `done(job, report)`; failed retriable jobs go round again."""
        todo: list[BatchJob] = []
        for job in self.jobs:
            if self.finished.done(job):
                self._settle(job, _report(job, "skipped", 0, 0.0))
            else:
                todo.append(job)
        tries: dict[int, int] = {}
        for _ in range(self.retries + 1):
            if not todo:
                break
            again: list[BatchJob] = []

            def done(job: BatchJob, report: JobReport) -> None:
                tries[job.line] = tries.get(job.line, 0) + 1
                report = replace(report, attempts=tries[job.line])
                if report.status == "error" and report.retriable and tries[job.line] <= self.retries:
                    log.info("job %d failed (%s); trying it again", job.line, report.error)
                    again.append(job)
                    return
                if report.status == "ok":
                    self.finished.add(job)
                self._settle(job, report)

            await runner(todo, done)
            todo = again
        return [self.results[job.line] for job in self.jobs]

    def _settle(self, job: BatchJob, report: JobReport) -> None:
        self.results[job.line] = report
        self.on_result(report)


def run_here(base: SyncConfig) -> Runner:
    """A runner for `BatchRun.run`: the jobs one after another in this process."""

    async def runner(jobs: Sequence[BatchJob], done: Done) -> None:
        for job in jobs:
            done(job, await attempt(job, base))

    return runner
