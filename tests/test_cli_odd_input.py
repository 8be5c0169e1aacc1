"""What lipstream does with odd input, as the README's table says, run as a user runs it and decoded to check."""

import io
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media import SAMPLE_AUDIO, SAMPLE_VIDEO, read_index, run_cli, tone_samples, video_frames, write_indexed_clip, write_wav
from test_memory import lavfi_clip


def events(result):
    return [json.loads(line) for line in result.stderr.decode().splitlines() if line.startswith("{")]


def done(result):
    assert result.returncode == 0, result.stderr.decode()
    return events(result)[-1]


def sync(*args, engine="passthrough", stdin=None):
    return run_cli(["sync", *args, "--engine", engine], stdin=stdin)


@pytest.fixture(scope="module")
def truncated(tmp_path_factory):
    """150 frames (6 s) whose file was cut after a little more than half: the index still promises 150."""
    folder = tmp_path_factory.mktemp("damaged")
    full = write_indexed_clip(folder / "full.mp4", 150, options={"movflags": "+faststart"})
    data = full.read_bytes()
    cut = folder / "cut.mp4"
    cut.write_bytes(data[: len(data) * 55 // 100])
    flipped = bytearray(data)
    for at in range(len(data) // 2, len(data) // 2 + 3000, 7):
        flipped[at] ^= 0x5A
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes(bytes(flipped))
    return cut, corrupt


def test_a_truncated_video_is_an_error_when_the_output_cannot_cover_the_asked_length(tmp_path, truncated):
    cut, _ = truncated
    audio = write_wav(tmp_path / "a.wav", tone_samples(6.0))
    out = tmp_path / "out.mp4"
    result = sync(cut, audio, "-o", out, "--fit", "video")
    text = result.stderr.decode()
    assert result.returncode == 2, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "is damaged or cut short: 70 frame(s) could not be decoded" in lines[0] and "3.20 s of 6.00 s" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]


def test_a_truncated_video_still_fills_the_audio_and_says_how_much_was_lost(tmp_path, truncated):
    cut, _ = truncated
    audio = write_wav(tmp_path / "a.wav", tone_samples(6.0))
    out = tmp_path / "out.mp4"
    result = sync(cut, audio, "-o", out, "--json")
    summary = done(result)
    assert summary["damaged_frames"] == 70 and summary["video_duration"] == 6.0
    warnings = [e["message"] for e in events(result) if e["event"] == "warning"]
    assert len(warnings) == 1 and "70 damaged frame(s) could not be decoded" in warnings[0]
    shown = [read_index(rgb) for _, rgb in video_frames(out)]
    assert len(shown) == 150 and max(shown) == 79  # the 80 frames that decode, played forwards and back
    plain = sync(cut, audio, "-o", tmp_path / "plain.mp4")
    lines = plain.stderr.decode().strip().splitlines()
    assert plain.returncode == 0 and lines[0].startswith("lipstream: warning: ") and lines[-1].startswith("wrote 150 frames")


def test_damaged_packets_in_the_middle_are_skipped_and_counted(tmp_path, truncated):
    _, corrupt = truncated
    audio = write_wav(tmp_path / "a.wav", tone_samples(6.0))
    out = tmp_path / "out.mp4"
    summary = done(sync(corrupt, audio, "-o", out, "--fit", "video", "--json"))
    assert summary["damaged_frames"] > 0 and abs(summary["video_duration"] - 6.0) < 0.05
    shown = [read_index(rgb) for _, rgb in video_frames(out)]
    assert shown[0] == 0 and shown[-1] == 149 and len(shown) == 150 - summary["damaged_frames"]


def test_a_video_without_a_face_says_nothing_was_reanimated_and_strict_refuses_it(tmp_path):
    clip = write_indexed_clip(tmp_path / "noface.mp4", 25)
    audio = write_wav(tmp_path / "a.wav", tone_samples(1.0))
    result = sync(clip, audio, "-o", tmp_path / "out.mp4", "--json", engine="warp")
    summary = done(result)
    assert summary["reanimated"] == 0.0 and summary["face_frames"] == 0.0
    assert [e["message"] for e in events(result) if e["event"] == "warning"] == [
        f"no target face was found in {clip}: nothing was re-animated (the output is the video with the new audio)"
    ]
    strict = sync(clip, audio, "-o", tmp_path / "strict.mp4", "--strict", engine="warp")
    lines = strict.stderr.decode().strip().splitlines()
    assert strict.returncode == 2 and len(lines) == 1 and "no target face was found" in lines[0] and "--strict" in lines[0]
    assert not (tmp_path / "strict.mp4").exists()


def test_a_video_with_a_face_reports_the_share_reanimated(tmp_path):
    summary = done(sync(SAMPLE_VIDEO, SAMPLE_AUDIO, "-o", tmp_path / "out.mp4", "--json", "--strict", engine="warp"))
    assert summary["face_frames"] == 1.0 and summary["reanimated"] > 0.9


def ends(data):
    """(frame times, video end, audio end, decoded audio samples) as a player reads them."""
    with av.open(io.BytesIO(data)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        last_audio = [p for p in container.demux(audio) if p.size][-1]
        audio_end = (last_audio.pts + last_audio.duration) * audio.time_base
        video_end = video.duration * video.time_base
    with av.open(io.BytesIO(data)) as container:
        times = [f.time for f in container.decode(video=0)]
    with av.open(io.BytesIO(data)) as container:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    return times, video_end, audio_end, samples


@pytest.fixture(scope="module")
def odd_timing(tmp_path_factory):
    folder = tmp_path_factory.mktemp("timing")
    gap = write_indexed_clip(folder / "gap.mkv", 10, pts=[0, 40, 80, 120, 900, 940, 980, 1020, 1060, 1100])
    ntsc = write_indexed_clip(folder / "ntsc.mp4", 90, time_base=Fraction(1001, 30000), rate=Fraction(30000, 1001), pts=list(range(90)))
    return {"gap": (gap, Fraction(1140, 1000)), "ntsc": (ntsc, Fraction(90 * 1001, 30000))}


@pytest.mark.slow
@pytest.mark.parametrize("fit", ["audio", "video", "shortest"])
@pytest.mark.parametrize("name", ["gap", "ntsc"])
def test_lengths_are_exact_for_gaps_and_ntsc_rates_and_file_and_pipe_agree(tmp_path, odd_timing, name, fit):
    video, video_length = odd_timing[name]
    audio_length = Fraction(2)
    audio = write_wav(tmp_path / "a.wav", tone_samples(float(audio_length)))
    out = tmp_path / "out.mp4"
    filed = sync(video, audio, "-o", out, "--fit", fit)
    piped = sync(video, audio, "-o", "-", "--fit", fit)
    assert filed.returncode == 0 and piped.returncode == 0, filed.stderr.decode() + piped.stderr.decode()
    expected = {"audio": audio_length, "video": video_length, "shortest": min(audio_length, video_length)}[fit]
    file_times, file_video, file_audio, file_samples = ends(out.read_bytes())
    pipe_times, pipe_video, pipe_audio, pipe_samples = ends(piped.stdout)
    assert file_video == pipe_video == expected, (float(file_video), float(pipe_video), float(expected))
    assert file_audio == pipe_audio == expected
    assert file_times == pipe_times and file_times[-1] < expected
    assert len(file_samples) == len(pipe_samples) and np.array_equal(file_samples, pipe_samples)


def test_silent_audio_gives_a_closed_mouth_not_an_error(tmp_path):
    audio = write_wav(tmp_path / "silence.wav", np.zeros(32000, np.float32))
    summary = done(sync(SAMPLE_VIDEO, audio, "-o", tmp_path / "out.mp4", "--json", engine="warp"))
    assert summary["video_duration"] == 2.0 and summary["audio_duration"] == 2.0 and summary["face_frames"] == 1.0


def test_the_videos_own_sound_is_replaced_by_the_new_audio(tmp_path):
    clip = write_indexed_clip(tmp_path / "with_sound.mp4", 25, with_audio=True)
    silence = write_wav(tmp_path / "silence.wav", np.zeros(16000, np.float32))
    out = tmp_path / "out.mp4"
    assert done(sync(clip, silence, "-o", out, "--json"))["audio_duration"] == 1.0
    with av.open(str(out)) as container:
        loudest = max(float(np.abs(f.to_ndarray()).max()) for f in container.decode(audio=0))
    assert loudest < 1e-3  # the clip's 220 Hz tone is gone


def test_audio_from_stdin_is_named_so_and_its_copy_never_outlives_the_run(tmp_path):
    clip = write_indexed_clip(tmp_path / "clip.mkv", 5)
    spool = tmp_path / "spool"
    spool.mkdir()

    def run(audio_bytes):
        args = [sys.executable, "-m", "lipstream", "sync", clip, "-", "-o", tmp_path / "out.mp4", "--engine", "passthrough"]
        return subprocess.run(args, input=audio_bytes, capture_output=True, env={**os.environ, "TMPDIR": str(spool)}, timeout=120)

    result = run(b"not audio at all" * 100)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "standard input is not a readable media file" in lines[0], lines
    good = run(write_wav(tmp_path / "a.wav", tone_samples(0.2)).read_bytes())
    assert good.returncode == 0, good.stderr.decode()
    assert list(spool.iterdir()) == []


@pytest.fixture(scope="module")
def hevc_clip(tmp_path_factory):
    """A 4 s 640x360 HEVC clip at about 150 kbit/s."""
    options = {"preset": "ultrafast", "b": "150000", "x265-params": "log-level=error"}
    return lavfi_clip(tmp_path_factory.mktemp("hevc") / "hevc.mp4", 4, codec="libx265", size=(640, 360), options=options)


def video_bit_rate(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        size = sum(p.size for p in container.demux(stream))
        return stream.codec_context.name, size * 8 / float(stream.duration * stream.time_base)


def test_hevc_in_hevc_out_near_the_inputs_size_and_the_codec_can_be_chosen(tmp_path, hevc_clip):
    audio = write_wav(tmp_path / "a.wav", tone_samples(4.0))
    codec_in, rate_in = video_bit_rate(hevc_clip)
    assert sync(hevc_clip, audio, "-o", tmp_path / "same.mp4").returncode == 0
    codec_out, rate_out = video_bit_rate(tmp_path / "same.mp4")
    assert (codec_in, codec_out) == ("hevc", "hevc") and rate_out <= 1.3 * rate_in, (rate_in, rate_out)
    assert sync(hevc_clip, audio, "-o", tmp_path / "h264.mp4", "--codec", "h264").returncode == 0
    codec, rate = video_bit_rate(tmp_path / "h264.mp4")
    assert codec == "h264" and rate <= 1.5 * 1.3 * rate_in, (rate_in, rate)
    assert sync(hevc_clip, audio, "-o", tmp_path / "capped.mp4", "--codec", "h264", "--bitrate", "60k").returncode == 0
    assert video_bit_rate(tmp_path / "capped.mp4")[1] <= 60_000 * 1.3
