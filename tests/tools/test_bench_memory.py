"""The memory benchmark's sampler on a short passthrough job of the sample (the long runs stay out of the suite)."""

import pytest

from media import SAMPLE_AUDIO, SAMPLE_VIDEO
from tool_scripts import load_tool


@pytest.fixture(scope="module")
def bench_memory():
    yield from load_tool("bench_memory")


def test_samples_split_resident_memory_and_the_allocators_account(bench_memory, tmp_path):
    out = tmp_path / "out.mp4"
    code, samples = bench_memory.run(["sync", SAMPLE_VIDEO, SAMPLE_AUDIO, "-o", out, "--engine", "passthrough"], 0.1, False)
    assert code == 0 and out.stat().st_size > 0
    assert len(samples) >= 3, "sampled while the job ran, and once at its end"
    for s in samples:
        assert abs(s["RssAnon"] + s["RssFile"] - s["VmRSS"]) < 1.0, s
        # allocated bytes, resident or not yet touched (so no bound by RssAnon)
        assert s["in_use"] > 1.0 and s["kept_free"] >= 0.0, s
    assert max(s["in_use"] for s in samples) > 20, "a 540x960 job holds pictures and codec state"
    report = bench_memory.summary(samples)
    assert report["peak_mb"] >= report["sampled_peak_mb"] >= report["median_mb"] > 40, report
    assert report["peak_mb"] < 1000, report


def test_a_failing_job_reports_its_exit_code(bench_memory, tmp_path):
    code, _ = bench_memory.run(["sync", tmp_path / "missing.mp4", SAMPLE_AUDIO, "-o", tmp_path / "out.mp4"], 0.1, False)
    assert code == 2
