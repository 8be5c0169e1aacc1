"""Memory does not grow with video length: peak RSS of a 6-minute job vs a 1-minute one (9,000 frames more:
a leak of 3 KB a frame would show), and the default engine's resident memory over a 120 s job."""

import json
import os
import subprocess
import sys
import threading
import time

import av
import numpy as np
import pytest
from peak_rss import Measured


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
    """The job's own peak (see tests/support/peak_rss.py: a child spawned from this big test process
    would otherwise read as at least this process's size)."""
    job = Measured([sys.executable, "-m", "lipstream", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = job.proc.stderr.read()
    assert job.wait() == 0, err.decode()
    return job.peak_mb


@pytest.mark.slow
def test_peak_rss_does_not_grow_with_length(tmp_path):
    peaks = {}
    for minutes in (1, 6):
        video = lavfi_clip(tmp_path / f"v{minutes}.mkv", 60 * minutes)
        audio = lavfi_audio(tmp_path / f"a{minutes}.wav", 60 * minutes)
        peaks[minutes] = peak_rss_mb(["sync", video, audio, "-o", tmp_path / f"out{minutes}.mp4", "--engine", "passthrough"])
    assert peaks[6] <= peaks[1] * 1.10, peaks


def rss_trace(args, every: float = 0.2) -> list[tuple[int, float]]:
    """(frames written so far, resident MB) sampled while `lipstream ARGS --json` runs (Linux /proc)."""
    proc = subprocess.Popen([sys.executable, "-m", "lipstream", *map(str, args), "--json"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    frames = [0]

    def follow() -> None:
        for line in proc.stderr:
            if line.startswith("{") and '"progress"' in line:
                frames[0] = json.loads(line)["frames"]

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    trace = []
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as status:
                rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
        except (OSError, StopIteration):
            break
        trace.append((frames[0], rss / 1024))
        time.sleep(every)
    reader.join()
    assert proc.wait() == 0
    return trace


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads resident memory from /proc")
def test_default_engine_memory_does_not_grow_with_length(tmp_path):
    """The default (exemplar) engine, which runs the warp engine's stage inside, on a real face: the 4 s
    sample ping-pongs to fit 120 s of speech (3,000 frames, 12 segments).

    Resident memory climbs while the allocator and the caches warm up (to
    ~600 MB by frame ~900 here) and then stays flat; so the job's second half
    is held to its first half's peak after the first 600 frames (a 15 s run
    against a 120 s one would compare a warm-up with a plateau); the margin is
    ~48 MB. Holding one 540x960 frame per window would add 73 MB (YUV) to 146 MB
    (RGB) over the last 1,200 frames, every frame 0.9-1.9 GB. The exemplar
    bank is bounded (at most 252 exemplars, ~12 MB).
    """
    from lipstream.pipeline.metrics.lipsync_metric import read_audio
    from media import SAMPLE_AUDIO, SAMPLE_VIDEO, write_wav

    audio = write_wav(tmp_path / "a.wav", np.resize(read_audio(SAMPLE_AUDIO), 120 * 16000))
    trace = rss_trace(["sync", SAMPLE_VIDEO, audio, "-o", tmp_path / "out.mp4", "--engine", "exemplar"])
    warm = [rss for frames, rss in trace if 600 <= frames < 1800]
    late = [rss for frames, rss in trace if frames >= 1800]
    assert len(warm) > 5 and len(late) > 5, trace
    assert max(late) <= max(warm) * 1.08, (max(warm), max(late))


@pytest.mark.slow
def test_a_window_frame_costs_few_pictures(tmp_path):
    """Peak RSS of a passthrough job with 72-frame windows against 24-frame ones, per added window frame.

    The runner admits a budget of windows (passthrough: 2) between decode and
    encode, so each frame added to the window adds about two decoded pictures
    (640x360: 0.35 MB each). The queues per hop held up to eight windows in a
    passthrough job: about eight pictures a window frame. 30 s (750 frames,
    eleven 72-frame windows) in one segment, so the pipeline fills and nothing
    but the windows differs.
    """
    video = lavfi_clip(tmp_path / "v.mkv", 30, size=(640, 360))
    audio = lavfi_audio(tmp_path / "a.wav", 30)
    peaks = {
        size: peak_rss_mb(["sync", video, audio, "-o", tmp_path / f"out{size}.mp4", "--engine", "passthrough", "--segment", "60", "--window", size])
        for size in (24, 72)
    }
    picture_mb = 640 * 360 * 1.5 / 2**20
    per_window_frame = (peaks[72] - peaks[24]) / (72 - 24) / picture_mb
    # at least one picture a frame: the measurement sees the windows at all
    assert 1 <= per_window_frame <= 4, (peaks, per_window_frame)
