"""Benchmarks (not part of the timed test suite).

    python tools/bench.py [--media ../shared/media] [--only passthrough]

passthrough: `lipstream sync --engine passthrough` on demo2 (1080x1920 HEVC,
20 s) against a bare PyAV decode -> libx264 -> mux loop with the same encoder
settings. Each run is a separate process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from lipstream.config import EncodeConfig

HERE = Path(__file__).resolve().parent


def bare_loop(video: Path, audio: Path, out: Path) -> int:
    """Decode, encode and mux with nothing in between: the floor for passthrough."""
    cfg = EncodeConfig()
    frames = 0
    with av.open(str(video)) as src, av.open(str(out), "w", options={"movflags": "+faststart"}) as dst:
        vin = src.streams.video[0]
        vin.thread_type = "AUTO"
        vout = dst.add_stream(cfg.codec, rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        vout.time_base = vin.time_base
        vout.codec_context.time_base = vin.time_base
        vout.codec_context.thread_type = "AUTO"
        vout.options = {"crf": str(cfg.crf), "preset": cfg.preset}
        aout = dst.add_stream("aac", rate=16000, layout="mono")
        for frame in src.decode(vin):
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


def measure(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{proc.stderr.read().decode()}")
    return wall, usage.ru_maxrss / 1024


def bench_passthrough(media: Path, repeat: int) -> list[tuple[str, float, float, float]]:
    video, audio = media / "demo2_video.mp4", media / "demo2_audio.wav"
    frames = 496  # demo2_audio is 19.84 s; the passthrough output follows the audio at 25 fps
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "bare PyAV loop": [sys.executable, __file__, "--bare", str(video), str(audio), f"{tmp}/bare.mp4"],
            "lipstream passthrough": [sys.executable, "-m", "lipstream", "sync", str(video), str(audio), "-o", f"{tmp}/pt.mp4", "--engine", "passthrough"],
        }
        for name, cmd in runs.items():
            best = min((measure(cmd) for _ in range(repeat)), key=lambda r: r[0])
            n = 502 if name.startswith("bare") else frames
            rows.append((name, best[0], n / best[0], best[1]))
    return rows


def table(rows: list[tuple[str, float, float, float]]) -> str:
    lines = ["| run | wall s | fps | peak RSS MB |", "|---|---|---|---|"]
    lines += [f"| {name} | {wall:.2f} | {fps:.1f} | {rss:.0f} |" for name, wall, fps, rss in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="lipstream benchmarks")
    parser.add_argument("--media", type=Path, default=HERE.parent.parent / "shared" / "media")
    parser.add_argument("--repeat", type=int, default=2, help="runs per row; the fastest counts")
    parser.add_argument("--only", choices=("passthrough",), default=None)
    parser.add_argument("--bare", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare_loop(*args.bare)
        return
    rows = bench_passthrough(args.media, args.repeat)
    sys.stdout.write("## passthrough vs bare loop (demo2, 1080x1920 HEVC)\n" + table(rows) + "\n")
    ratio = rows[1][1] / rows[0][1]
    sys.stdout.write(f"\npassthrough / bare wall-time ratio: {ratio:.3f} (goal <= 1.10)\n")


if __name__ == "__main__":
    main()
