"""Batch manifests, per-job retries and the record of finished jobs (no media: the runner is a stand-in)."""

import asyncio
import json
from pathlib import Path

import pytest

from lipstream.config import SyncConfig
from lipstream.errors import InputError
from lipstream.pipeline.jobs.batch import BatchRun, Finished, JobReport, read_manifest


def manifest(tmp_path, *lines):
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_a_manifest_line_is_a_job_with_paths_from_the_manifest_folder(tmp_path):
    path = manifest(tmp_path, "# comment", {"video": "v.mp4", "audio": "/abs/a.wav", "out": "o.mp4", "engine": "warp", "crf": 30, "segment": 4})
    (job,) = read_manifest(path)
    assert (job.line, job.video, job.audio, job.out) == (2, tmp_path / "v.mp4", Path("/abs/a.wav"), tmp_path / "o.mp4")
    config = job.config(SyncConfig(device="cuda:0"))
    assert (config.engine, config.encode.crf, config.segment.seconds, config.device) == ("warp", 30, 4.0, "cuda:0")


@pytest.mark.parametrize(
    "line, says",
    [
        ("{not json", "not a JSON object"),
        ({"video": "v", "audio": "a"}, "out missing"),
        ({"video": "v", "audio": "a", "out": "o", "colour": "red"}, "unknown option 'colour'"),
        ({"video": "v", "audio": "a", "out": "o", "fit": "longest"}, "fit must be one of audio, video, shortest"),
        ({"video": "v", "audio": "a", "out": "o", "crf": "20"}, "crf must be a int"),
        ({"video": "v", "audio": "a", "out": "o", "segment": 0}, "segments must last at least 0.1 s"),
    ],
)
def test_a_bad_line_is_one_error_naming_it(tmp_path, line, says):
    with pytest.raises(InputError, match=says) as error:
        read_manifest(manifest(tmp_path, line))
    assert "jobs.jsonl:1" in str(error.value) or "segments" in says


def test_two_jobs_may_not_write_one_output(tmp_path):
    job = {"video": "v", "audio": "a", "out": "same.mp4"}
    with pytest.raises(InputError, match="also the output of line 1"):
        read_manifest(manifest(tmp_path, job, {**job, "video": "w"}))


def test_failed_jobs_are_retried_bad_input_is_not_and_finished_ones_are_skipped_next_time(tmp_path):
    path = manifest(tmp_path, *({"video": "v", "audio": "a", "out": f"{n}.mp4"} for n in range(3)))
    jobs = read_manifest(path)
    calls = []

    async def runner(todo, done):
        for job in todo:
            calls.append(job.line)
            if job.line == 1 or (job.line == 2 and calls.count(2) == 2):  # 2 crashes once, then works
                job.out.write_bytes(b"video")
                done(job, JobReport(job.line, "", "", str(job.out), "ok"))
            else:
                bad_input = job.line == 3
                done(job, JobReport(job.line, "", "", str(job.out), "error", error="no", retriable=not bad_input))

    reports = []
    results = asyncio.run(BatchRun(jobs, Finished(path), 2, reports.append).run(runner))
    assert [(r.line, r.status, r.attempts) for r in results] == [(1, "ok", 1), (2, "ok", 2), (3, "error", 1)]
    assert len(reports) == 3 and calls == [1, 2, 3, 2]

    again = asyncio.run(BatchRun(jobs, Finished(path), 0, lambda r: None).run(runner))
    assert [r.status for r in again] == ["skipped", "skipped", "error"]
    jobs[0].out.write_bytes(b"changed since")  # an output that is no longer the one recorded is made again
    assert not Finished(path).done(jobs[0]) and Finished(path).done(jobs[1])
