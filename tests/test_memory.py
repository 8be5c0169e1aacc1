"""Memory does not grow with video length: peak RSS of a 10-minute job vs a 1-minute one."""

import os
import subprocess
import sys

import av
import numpy as np
import pytest


def lavfi_clip(path, seconds, *, codec="libx264", size=(320, 180), options=None):
    """A test pattern made by FFmpeg's own sources (fast, no frames in Python)."""
    width, height = size
    with av.open(f"testsrc2=size={width}x{height}:rate=25:duration={seconds}", format="lavfi") as src, av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = options or {"preset": "ultrafast", "g": "50"}
        for frame in src.decode(video=0):
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def lavfi_audio(path, seconds):
    with av.open(f"sine=frequency=220:sample_rate=16000:duration={seconds}", format="lavfi") as src, av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=16000, layout="mono")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        for frame in src.decode(audio=0):
            for chunk in resampler.resample(frame):
                for packet in stream.encode(chunk):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def peak_rss_mb(args):
    proc = subprocess.Popen([sys.executable, "-m", "lipstream", *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, proc.stderr.read().decode()
    return usage.ru_maxrss / 1024


@pytest.mark.slow
def test_peak_rss_does_not_grow_with_length(tmp_path):
    peaks = {}
    for minutes in (1, 10):
        video = lavfi_clip(tmp_path / f"v{minutes}.mkv", 60 * minutes)
        audio = lavfi_audio(tmp_path / f"a{minutes}.wav", 60 * minutes)
        peaks[minutes] = peak_rss_mb(["sync", video, audio, "-o", tmp_path / f"out{minutes}.mp4", "--engine", "passthrough"])
    assert peaks[10] <= peaks[1] * 1.10, peaks


@pytest.mark.slow
def test_default_engine_memory_does_not_grow_with_length(tmp_path):
    """The default (exemplar) engine, which runs the warp engine's stage inside, on a real face:
    the 4 s sample ping-pongs to fit 15 s and 180 s of speech.

    Runs of one length peak anywhere in 313-361 MB (numpy temporaries in
    several threads' malloc arenas), hence the 25% margin; holding one
    decoded frame per window would add ~145 MB at 180 s, every frame ~3.5 GB.
    The exemplar bank is bounded (at most 252 exemplars, ~12 MB).
    """
    from lipstream.pipeline.metrics.lipsync_metric import read_audio
    from media import SAMPLE_AUDIO, SAMPLE_VIDEO, write_wav

    speech = read_audio(SAMPLE_AUDIO)
    peaks = {}
    for seconds in (15, 180):
        audio = write_wav(tmp_path / f"a{seconds}.wav", np.resize(speech, seconds * 16000))
        peaks[seconds] = peak_rss_mb(["sync", SAMPLE_VIDEO, audio, "-o", tmp_path / f"out{seconds}.mp4", "--engine", "exemplar"])
    assert peaks[180] <= peaks[15] * 1.25, peaks
