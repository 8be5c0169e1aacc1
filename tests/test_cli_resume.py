"""`--resume`: real runs killed at several points (SIGKILL, SIGTERM) continue to the output an uninterrupted run writes.

The warp engine is used on purpose: its stages keep state across windows
(face track, crop smoother, articulation), so a resumed run can only match
when every segment's stages start from the same place, whatever came before.
Frames are compared decoded and bit for bit, the audio sample for sample.
"""

import hashlib
import json
import signal
import subprocess
import sys
import time

import av
import numpy as np
import pytest

from media import SAMPLE_VIDEO, tone_samples, write_wav

SECONDS = 6.0  # the 4 s sample ping-pongs to 150 frames in 6 one-second segments


def args(audio, out, *extra, engine="warp"):
    return [sys.executable, "-m", "lipstream", "sync", SAMPLE_VIDEO, audio, "-o", out, "--engine", engine, "--segment", "1", "--json", *map(str, extra)]


def decoded(path):
    """(frame times, a digest per frame, the audio samples)."""
    with av.open(str(path)) as container:
        frames = [(f.time, hashlib.sha256(f.to_ndarray(format="rgb24").tobytes()).hexdigest()) for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    return [t for t, _ in frames], [d for _, d in frames], samples


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    audio = write_wav(folder / "speech.wav", tone_samples(SECONDS))
    out = folder / "whole.mp4"
    result = subprocess.run(args(audio, out), capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    return audio, decoded(out)


def journal_segments(out):
    try:
        return len(json.loads((out.parent / f".{out.name}.lipstream" / "journal.json").read_text())["segments"])
    except (OSError, ValueError):
        return 0


def interrupt(audio, out, sig, when, engine="warp"):
    """Start a resumable run and send `sig` once `when` holds: ("frames", N) reported, or ("segments", N) journaled."""
    proc = subprocess.Popen(args(audio, out, "--resume", engine=engine), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kind, count = when
    if kind == "frames":
        while True:
            line = proc.stderr.readline()
            if not line:
                break
            event = json.loads(line)
            if event["event"] == "progress" and event["frames"] >= count:
                break
    else:
        deadline = time.monotonic() + 120
        while journal_segments(out) < count and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    proc.send_signal(sig)
    rest = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    return code, rest


@pytest.mark.slow
@pytest.mark.parametrize(
    "kills",
    [
        [(signal.SIGKILL, ("segments", 3))],  # right after a segment was journaled
        [(signal.SIGTERM, ("frames", 80))],  # mid-run, the polite way
        [(signal.SIGKILL, ("frames", 20)), (signal.SIGTERM, ("frames", 90)), (signal.SIGKILL, ("segments", 6))],  # inside the first segment, mid-run, while joining
    ],
    ids=["kill-after-segment", "term-mid-run", "kill-term-kill"],
)
def test_a_killed_run_resumes_to_the_same_frames_and_audio(tmp_path, reference, kills):
    audio, (times, digests, samples) = reference
    out = tmp_path / "out.mp4"
    for sig, when in kills:
        code, rest = interrupt(audio, out, sig, when)
        if code == 0:  # the run finished before the signal came (possible for the last kill): nothing to resume
            continue
        assert code == {signal.SIGKILL: -9, signal.SIGTERM: 143}[sig], rest
        if sig == signal.SIGTERM:
            message = json.loads(rest.strip().splitlines()[-1])["message"]
            assert message.startswith("interrupted by SIGTERM") and "--resume" in message
            # a polite stop removes what it was writing and keeps what it finished
            assert not list(tmp_path.glob(".out.mp4.*.part"))
            assert not list(tmp_path.glob(".out.mp4.lipstream/.seg-*"))
        assert not out.exists()
    result = subprocess.run(args(audio, out, "--resume"), capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads(result.stderr.decode().strip().splitlines()[-1])
    assert summary["frames"] == 150 and summary["segments"] == 6 and summary["reanimated"] > 0.9
    got_times, got_digests, got_samples = decoded(out)
    assert got_times == times
    differing = [i for i, (a, b) in enumerate(zip(got_digests, digests)) if a != b]
    assert differing == [], f"frames {differing[:10]} differ from the uninterrupted run"
    assert len(got_samples) == len(samples) and np.array_equal(got_samples, samples)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


@pytest.mark.slow
def test_resume_starts_over_when_the_inputs_changed(tmp_path, reference):
    audio, _ = reference
    out = tmp_path / "out.mp4"
    code, _ = interrupt(audio, out, signal.SIGKILL, ("segments", 4))
    assert code == -9
    other = write_wav(tmp_path / "other.wav", tone_samples(SECONDS) * 0.5)
    result = subprocess.run(args(other, out, "--resume"), capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    lines = [json.loads(line) for line in result.stderr.decode().splitlines()]
    assert lines[-1]["resumed_segments"] == 0
    assert any(e["event"] == "warning" and "started over" in e["message"] for e in lines)


@pytest.mark.slow
def test_an_engine_that_looks_over_the_file_first_resumes_the_same_way(tmp_path, reference):
    """The exemplar engine prepares a bank from the whole file before its first window: every segment's stages do."""
    audio, _ = reference
    whole = tmp_path / "whole.mp4"
    result = subprocess.run(args(audio, whole, engine="exemplar"), capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    first = json.loads(result.stderr.decode().strip().splitlines()[-1])
    out = tmp_path / "out.mp4"
    code, _ = interrupt(audio, out, signal.SIGKILL, ("segments", 3), engine="exemplar")
    assert code == -9
    result = subprocess.run(args(audio, out, "--resume", engine="exemplar"), capture_output=True, timeout=300)
    summary = json.loads(result.stderr.decode().strip().splitlines()[-1])
    assert result.returncode == 0 and summary["resumed_segments"] >= 3
    assert {k: summary[k] for k in ("exemplar_coverage", "exemplars")} == {k: first[k] for k in ("exemplar_coverage", "exemplars")}
    (_, digests, samples), (_, expected, expected_samples) = decoded(out), decoded(whole)
    assert digests == expected and np.array_equal(samples, expected_samples)


def test_resume_needs_files_on_both_ends(tmp_path):
    from media import SAMPLE_AUDIO, run_cli

    pipe_out = run_cli(["sync", SAMPLE_VIDEO, SAMPLE_AUDIO, "-o", "-", "--resume", "--engine", "passthrough"])
    pipe_in = run_cli(["sync", "-", SAMPLE_AUDIO, "-o", tmp_path / "o.mp4", "--resume", "--engine", "passthrough"], stdin=SAMPLE_VIDEO.read_bytes())
    assert pipe_out.returncode == 2 and "--resume needs -o FILE" in pipe_out.stderr.decode()
    assert pipe_in.returncode == 2 and "--resume needs VIDEO and AUDIO as files" in pipe_in.stderr.decode()
