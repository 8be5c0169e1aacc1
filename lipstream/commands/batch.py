"""`lipstream batch MANIFEST.jsonl [--ray [ADDRESS]]`: many lip-sync jobs, one JSON result line per job.

Exit codes: 0 every job ok (or skipped: finished by an earlier run); 1 at
least one job failed (its result line says why; the others still ran);
2 the manifest or the options are wrong, or Ray is missing or unreachable
(nothing ran); 130/143 interrupted (finished jobs stay recorded, a rerun
skips them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from lipstream import interrupt
from lipstream.config import SegmentConfig, SyncConfig
from lipstream.console import Console
from lipstream.errors import OutputError
from lipstream.pipeline.engines import AUTO, ENGINES

from ._args import add_ray_options, ray_options, seconds

EXIT_SOME_FAILED = 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    batch = commands.add_parser(
        "batch",
        help="run many lip-sync jobs from a JSONL manifest",
        description=(
            'Run the jobs of MANIFEST (JSON lines: {"video": ..., "audio": ..., "out": ..., options}), here or on Ray. '
            "Prints one JSON result line per job; a rerun skips the jobs that finished. "
            "Exit 0 all ok, 1 some jobs failed, 2 bad manifest or options."
        ),
    )
    batch.add_argument("manifest", type=Path, help="JSON lines, one job each; relative paths are from the manifest's folder")
    batch.add_argument("--engine", default=AUTO, choices=sorted([AUTO, *ENGINES]), help="engine for jobs that do not set one (default: %(default)s)")
    batch.add_argument("--segment", type=seconds, default=SegmentConfig.seconds, metavar="SECONDS", help="output seconds per segment (default: %(default)s)")
    batch.add_argument("--device", default="cpu", help="torch device for model stages, e.g. cuda:0 (default: %(default)s)")
    batch.add_argument("--weights", type=Path, action="append", default=[], metavar="DIR", help="folder with checkpoints (repeatable)")
    batch.add_argument("--results", type=Path, default=None, metavar="FILE", help="append the result lines to FILE instead of stdout")
    add_ray_options(batch, "the jobs")
    batch.add_argument("--json", action="store_true", help="JSON lines on stderr: one per settled job and a summary")
    batch.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from lipstream.pipeline.jobs.batch import BatchRun, Finished, JobReport, read_manifest, run_here

    jobs = read_manifest(args.manifest)
    base = SyncConfig(engine=args.engine, device=args.device, weights=tuple(args.weights), segment=SegmentConfig(seconds=args.segment))
    for job in jobs:
        job.config(base)  # every line's options make a valid configuration before anything runs
    if args.ray is not None:
        from lipstream.pipeline.jobs.ray_farm import connect, ray_runner

        options = ray_options(args)
        connect(options)  # a missing extra or an unreachable address is one line before any work
        runner = ray_runner(options, base)
    else:
        runner = run_here(base)
    results = _results(args.results)
    settled = 0

    def on_result(report: JobReport) -> None:
        nonlocal settled
        settled += 1
        results.write(json.dumps(report.to_dict(), separators=(",", ":")) + "\n")
        results.flush()
        if console.json:
            console.emit({"event": "job", "done": settled, "total": len(jobs), **report.to_dict()})
        elif report.status == "error":
            console.warn(f"job on line {report.line} failed: {report.error}")

    try:
        batch = BatchRun(jobs, Finished(args.manifest), args.retries, on_result)
        reports = interrupt.run(batch.run(runner))
    finally:
        if results is not sys.stdout:
            results.close()
    counts = {status: sum(1 for r in reports if r.status == status) for status in ("ok", "error", "skipped")}
    console.done(
        {"jobs": len(reports), "ok": counts["ok"], "failed": counts["error"], "skipped": counts["skipped"]},
        f"{len(reports)} job(s): {counts['ok']} ok, {counts['error']} failed, {counts['skipped']} skipped (finished before)",
    )
    return EXIT_SOME_FAILED if counts["error"] else 0


def _results(path: Path | None) -> TextIO:
    if path is None:
        return sys.stdout
    try:
        return open(path, "a")
    except OSError as exc:
        raise OutputError(f"cannot write the results to {path}: {exc.strerror or exc}") from None
