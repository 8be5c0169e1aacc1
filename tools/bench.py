"""Benchmarks (not part of the timed test suite).

    python tools/bench.py [--media ../shared/media] [--only passthrough]

passthrough: `lipstream sync --engine passthrough` on demo2 (1080x1920 HEVC,
20 s) against a bare PyAV decode -> libx264 -> mux loop with the same encoder
settings. Each run is a separate process so its peak RSS is its own.

face: ms per frame of detection, landmarks from a detection, and landmark
tracking from the previous frame on demo2 at full resolution, and the whole
pipeline with the face stage (`--engine faces`) against passthrough.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from lipstream.config import EncodeConfig
from lipstream.stream.encoding import VideoTraits, choose_encoding

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "support"))

from peak_rss import Measured  # noqa: E402  (a child's own peak RSS)


def bare_loop(video: Path, audio: Path, out: Path) -> int:
    """Decode, encode and mux with nothing in between: the floor for passthrough (same encoder and settings)."""
    frames = 0
    with av.open(str(video)) as src, av.open(str(out), "w", options={"movflags": "+faststart"}) as dst:
        vin = src.streams.video[0]
        vin.thread_type = "AUTO"
        ctx = vin.codec_context
        encoding = choose_encoding(EncodeConfig(), VideoTraits(ctx.name, vin.bit_rate, ctx.pix_fmt), (ctx.width, ctx.height))
        vout = dst.add_stream(encoding.encoder, rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = encoding.width, encoding.height, encoding.pix_fmt
        vout.time_base = vin.time_base
        vout.codec_context.time_base = vin.time_base
        vout.codec_context.thread_type = "AUTO"
        vout.options = encoding.options
        aout = dst.add_stream("aac", rate=16000, layout="mono")
        for frame in src.decode(vin):
            # Same policy as the sink: x264 picks the frame types (a decoded frame
            # would otherwise force the source's, which changes x264's work).
            frame.pict_type = av.video.frame.PictureType.NONE
            for packet in vout.encode(frame):
                dst.mux(packet)
            frames += 1
        for packet in vout.encode(None):
            dst.mux(packet)
        with av.open(str(audio)) as asrc:
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=16000, frame_size=1024)
            for frame in asrc.decode(audio=0):
                for chunk in resampler.resample(frame):
                    for packet in aout.encode(chunk):
                        dst.mux(packet)
            for chunk in resampler.resample(None):
                for packet in aout.encode(chunk):
                    dst.mux(packet)
        for packet in aout.encode(None):
            dst.mux(packet)
    return frames


def measure(cmd: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MB) of one child process.

    CPU time (user + system) is reported beside wall time because on a
    shared machine wall time swings with other people's load.
    """
    start = time.perf_counter()
    job = Measured(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = job.proc.stderr.read().decode()
    if job.wait() != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{err}")
    return time.perf_counter() - start, job.cpu_seconds, job.peak_mb


def bench_passthrough(media: Path, repeat: int) -> list[tuple[str, float, float, float, float]]:
    video, audio = media / "demo2_video.mp4", media / "demo2_audio.wav"
    frames = 496  # demo2_audio is 19.84 s; the passthrough output follows the audio at 25 fps
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "bare PyAV loop": [sys.executable, __file__, "--bare", str(video), str(audio), f"{tmp}/bare.mp4"],
            "lipstream passthrough": [sys.executable, "-m", "lipstream", "sync", str(video), str(audio), "-o", f"{tmp}/pt.mp4", "--engine", "passthrough"],
            "lipstream passthrough, one segment": [sys.executable, "-m", "lipstream", "sync", str(video), str(audio), "-o", f"{tmp}/pt1.mp4",
                                                   "--engine", "passthrough", "--segment", "1000"],
        }
        for name, cmd in runs.items():
            wall, cpu, rss = min((measure(cmd) for _ in range(repeat)), key=lambda r: r[0])
            n = 502 if name.startswith("bare") else frames
            rows.append((name, wall, cpu, n / wall, rss))
    return rows


def bench_face(media: Path, frames: int = 200) -> str:
    import numpy as np

    from lipstream.models.blazeface import BlazeFace
    from lipstream.models.facemesh import FaceMesh

    detector, mesh = BlazeFace("full"), FaceMesh()
    timings: dict[str, list[float]] = {"detect (full range)": [], "landmarks from detection": [], "landmarks tracking": [], "face stage total": []}
    previous = None
    with av.open(str(media / "demo2_video.mp4")) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == frames:
                break
            rgb = frame.to_ndarray(format="rgb24")
            t0 = time.perf_counter()
            found = detector.detect_frame(rgb)
            t1 = time.perf_counter()
            marks = mesh.landmarks(rgb, found[0])
            t2 = time.perf_counter()
            if previous is not None:
                mesh.landmarks(rgb, previous)
                timings["landmarks tracking"].append(time.perf_counter() - t2)
            previous = marks
            timings["detect (full range)"].append(t1 - t0)
            timings["landmarks from detection"].append(t2 - t1)
    from lipstream.config import FaceConfig, WindowConfig
    from lipstream.pipeline.faces.stage import FaceStage
    from lipstream.stream.frames import Frame, Window
    from lipstream.stream.windows import plan_windows

    stage = FaceStage(FaceConfig(), WindowConfig())
    with av.open(str(media / "demo2_video.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), container.decode(video=0))]
    items = (Frame(i, i, Fraction(1, 25), i, image=img) for i, img in enumerate(decoded))
    t0 = time.perf_counter()
    for n, (window, lo, hi) in enumerate(plan_windows(items, 32, 8)):
        stage(Window(n, tuple(window), lo, hi))
    timings["face stage total"].append((time.perf_counter() - t0) / len(decoded))
    lines = ["| step (demo2, 1080x1920) | median ms/frame |", "|---|---|"]
    lines += [f"| {name} | {1000 * float(np.median(v)):.2f} |" for name, v in timings.items()]
    return "\n".join(lines)


def bench_faces_pipeline(media: Path) -> list[tuple[str, float, float, float, float]]:
    video, audio = media / "demo2_video.mp4", media / "demo2_audio.wav"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for engine in ("passthrough", "faces"):
            cmd = [sys.executable, "-m", "lipstream", "sync", str(video), str(audio), "-o", f"{tmp}/{engine}.mp4", "--engine", engine]
            wall, cpu, rss = measure(cmd)
            rows.append((f"lipstream --engine {engine}", wall, cpu, 496 / wall, rss))
    return rows


def table(rows: list[tuple[str, float, float, float, float]]) -> str:
    lines = ["| run | wall s | CPU s | fps | peak RSS MB |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {wall:.2f} | {cpu:.2f} | {fps:.1f} | {rss:.0f} |" for name, wall, cpu, fps, rss in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="lipstream benchmarks")
    parser.add_argument("--media", type=Path, default=HERE.parent.parent / "shared" / "media")
    parser.add_argument("--repeat", type=int, default=2, help="runs per row; the fastest counts")
    parser.add_argument("--only", choices=("passthrough", "face"), default=None)
    parser.add_argument("--bare", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare_loop(*args.bare)
        return
    if args.only in (None, "passthrough"):
        rows = bench_passthrough(args.media, args.repeat)
        sys.stdout.write("## passthrough vs bare loop (demo2, 1080x1920 HEVC)\n" + table(rows) + "\n")
        ratio = rows[1][1] / rows[0][1]
        sys.stdout.write(f"\npassthrough / bare wall-time ratio: {ratio:.3f} (goal <= 1.10)\n\n")
    if args.only in (None, "face"):
        sys.stdout.write("## face stage\n" + bench_face(args.media) + "\n\n")
        sys.stdout.write(table(bench_faces_pipeline(args.media)) + "\n")


if __name__ == "__main__":
    main()
