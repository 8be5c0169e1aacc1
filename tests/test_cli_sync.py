"""`lipstream sync --engine passthrough` end to end, as a user runs it; outputs are decoded and checked."""

import json
import math
from fractions import Fraction

import numpy as np
import pytest

from media import (
    SAMPLE_AUDIO,
    SAMPLE_VIDEO,
    audio_samples,
    index_image,
    read_index,
    run_cli,
    tone_samples,
    video_frames,
    video_times,
    write_indexed_clip,
    write_wav,
)

AAC_FRAME = 1024


def sync(*args, stdin=None):
    return run_cli(["sync", *args, "--engine", "passthrough"], stdin=stdin)


def one_line_error(result):
    text = result.stderr.decode()
    assert result.returncode == 2, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lipstream: error: "), text
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize("seconds", [6.0, 2.5])
@pytest.mark.parametrize("fit", ["audio", "video", "shortest"])
def test_fit_policies_on_the_demo_excerpt(tmp_path, fit, seconds):
    audio = write_wav(tmp_path / "new.wav", tone_samples(seconds))
    out = tmp_path / "out.mp4"
    result = sync(SAMPLE_VIDEO, audio, "-o", out, "--fit", fit)
    assert result.returncode == 0, result.stderr.decode()
    video_seconds = 4.0  # the sample is 100 frames at 25 fps
    length = {"audio": seconds, "video": video_seconds, "shortest": min(seconds, video_seconds)}[fit]
    times = video_times(out)
    assert len(times) == math.ceil(length * 25)
    assert all(b > a for a, b in zip(times, times[1:])), "timestamps must increase"
    assert all(abs(float(t) - i / 25) < 1e-3 for i, t in enumerate(times))
    samples, rate = audio_samples(out)
    assert abs(samples - length * rate) <= AAC_FRAME, (samples, length * rate)


def test_frame_order_and_ping_pong_on_a_seekable_file(tmp_path):
    clip = write_indexed_clip(tmp_path / "clip.mp4", 20, options={"movflags": "+faststart"})
    audio = write_wav(tmp_path / "a.wav", tone_samples(2.0))
    out = tmp_path / "out.mp4"
    assert sync(clip, audio, "-o", out).returncode == 0
    shown = [read_index(rgb) for _, rgb in video_frames(out)]
    expected = (list(range(20)) + list(range(18, -1, -1)) + list(range(1, 20)))[:50]
    assert shown == expected


def test_pipe_in_pipe_out_freezes_the_last_frame(tmp_path):
    clip = write_indexed_clip(tmp_path / "clip.mkv", 20)
    audio = write_wav(tmp_path / "a.wav", tone_samples(1.2))
    result = sync("-", audio, "-o", "-", stdin=clip.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout[4:8] == b"ftyp"
    shown = [read_index(rgb) for _, rgb in video_frames(result.stdout)]
    assert shown == list(range(20)) + [19] * 10
    samples, rate = audio_samples(result.stdout)
    assert abs(samples - 1.2 * rate) <= AAC_FRAME


def test_matroska_on_stdout(tmp_path):
    clip = write_indexed_clip(tmp_path / "clip.mkv", 10)
    audio = write_wav(tmp_path / "a.wav", tone_samples(0.4))
    result = sync(clip, audio, "-o", "-", "--format", "mkv")
    assert result.returncode == 0
    assert result.stdout[:4] == b"\x1a\x45\xdf\xa3"
    assert [read_index(rgb) for _, rgb in video_frames(result.stdout)] == list(range(10))


def test_moov_at_end_on_a_pipe_is_refused_with_the_fix(tmp_path):
    import av

    clip = tmp_path / "moov-at-end.mp4"  # the sample remuxed by PyAV, which writes the index last
    with av.open(str(SAMPLE_VIDEO)) as src, av.open(str(clip), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    data = clip.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")
    audio = write_wav(tmp_path / "a.wav", tone_samples(0.4))
    line = one_line_error(sync("-", audio, "-o", tmp_path / "out.mp4", stdin=clip.read_bytes()))
    assert "faststart" in line and "mkv" in line
    assert not list(tmp_path.glob("*out.mp4*"))


def test_variable_frame_rate_keeps_its_timing(tmp_path):
    pts = [0, 40, 80, 200, 240, 400, 433, 466, 500, 620]
    clip = write_indexed_clip(tmp_path / "vfr.mkv", len(pts), pts=pts)
    audio = write_wav(tmp_path / "a.wav", tone_samples(0.7))
    out = tmp_path / "out.mp4"
    assert sync(clip, audio, "-o", out, "--fit", "video").returncode == 0
    frames = video_frames(out)
    assert [read_index(rgb) for _, rgb in frames] == list(range(len(pts)))
    assert [round(float(t) * 1000) for t, _ in frames] == pts


def test_rotation_metadata_is_applied_to_the_pixels(tmp_path):
    clip = write_indexed_clip(tmp_path / "rot.mp4", 5, rotation=90)
    audio = write_wav(tmp_path / "a.wav", tone_samples(0.2))
    out = tmp_path / "out.mp4"
    assert sync(clip, audio, "-o", out).returncode == 0
    frames = video_frames(out)
    assert frames[0][1].shape == (320, 180, 3)
    upright = np.rot90(index_image(0), 1)
    assert np.abs(frames[0][1].astype(int) - upright).mean() < 4


def test_odd_sizes_are_encoded(tmp_path):
    clip = write_indexed_clip(tmp_path / "odd.mkv", 5, size=(322, 182))
    clip_odd = tmp_path / "odd2.mkv"
    # libx264 itself needs even sizes, so make the odd clip with a codec that does not
    import av

    with av.open(str(clip_odd), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 321, 181, "yuv444p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(index_image(i, 321, 181), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    audio = write_wav(tmp_path / "a.wav", tone_samples(0.2))
    out = tmp_path / "out.mp4"
    result = sync(clip_odd, audio, "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 2 and lines[0] == (  # one note saying what changed, then the summary
        "lipstream: note: the output is 320x180 yuv420p (the input is 321x181 yuv444p): players decode 4:2:0 video, which needs even sizes"
    )
    frames = video_frames(out)
    assert frames[0][1].shape == (180, 320, 3)
    assert [read_index(rgb) for _, rgb in frames] == list(range(5))
    assert clip.exists()


def test_json_progress_events(tmp_path):
    audio = write_wav(tmp_path / "a.wav", tone_samples(2.0))
    # one window in flight: decode, stages and encode take turns, and the events are the same
    result = sync(SAMPLE_VIDEO, audio, "-o", tmp_path / "out.mp4", "--json", "--window", "8", "--overlap", "2", "--in-flight", "1")
    assert result.returncode == 0
    events = [json.loads(line) for line in result.stderr.decode().splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["frames"] for e in progress] == list(range(6, 50, 6)) + [50]
    assert progress[-1]["total"] == 50 and progress[-1]["fps"] > 0 and progress[-1]["eta"] == 0
    assert events[-1]["event"] == "done" and events[-1]["frames"] == 50


@pytest.mark.parametrize(
    "case,needle",
    [
        ("missing-video", "video file not found"),
        ("not-media", "not a readable media file"),
        ("no-video-stream", "has no video stream"),
        ("unreadable-audio", "not a readable media file"),
        ("audio-without-audio", "has no audio stream"),
        ("bad-extension", "unknown output type"),
        ("overlap", "--overlap"),
        ("in-flight", "--in-flight"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, case, needle):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    silent = write_indexed_clip(tmp_path / "silent.mkv", 3)
    wav = write_wav(tmp_path / "a.wav", tone_samples(0.5))
    out = tmp_path / "out.mp4"
    args = {
        "missing-video": [tmp_path / "nope.mp4", wav, "-o", out],
        "not-media": [junk, wav, "-o", out],
        "no-video-stream": [wav, wav, "-o", out],
        "unreadable-audio": [silent, junk, "-o", out],
        "audio-without-audio": [silent, silent, "-o", out],
        "bad-extension": [silent, wav, "-o", tmp_path / "out.avi"],
        "overlap": [silent, wav, "-o", out, "--window", "4", "--overlap", "4"],
        "in-flight": [silent, wav, "-o", out, "--in-flight", "0"],
    }[case]
    line = one_line_error(sync(*args))
    assert needle in line
    assert not out.exists()


def test_a_failed_run_keeps_the_previous_output_and_the_inputs(tmp_path):
    clip = write_indexed_clip(tmp_path / "clip.mkv", 5)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + b"\0" * 64)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    before = clip.read_bytes()
    assert sync(clip, junk, "-o", out).returncode == 2
    assert out.read_bytes() == b"previous result"
    assert clip.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv", "junk.wav", "out.mp4"]


def test_ctrl_c_stops_and_removes_the_temporary_file(tmp_path):
    import signal
    import subprocess
    import sys

    from test_memory import lavfi_audio, lavfi_clip

    video, audio = lavfi_clip(tmp_path / "long.mkv", 60), lavfi_audio(tmp_path / "long.wav", 60)
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lipstream", "sync", video, audio, "-o", out, "--json", "--engine", "passthrough"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    first = json.loads(proc.stderr.readline())
    assert first["event"] == "progress" and first["frames"] < 1500
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mkv", "long.wav"]
