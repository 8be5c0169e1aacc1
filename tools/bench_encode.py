"""What each output encoding costs on demo2 (1080x1920 HEVC, 0.57 Mbit/s video): time, size, fidelity.

    python tools/bench_encode.py [--media ../shared/media] [--repeat 1]

Each row is a real `lipstream sync --engine passthrough` run (a separate
process: wall and CPU seconds are its own) with one choice of `--codec`,
`--crf`, `--bitrate`; the output's video bytes are compared with the input's
over the same frames, and PSNR (luma) is measured against the decoded input,
so "close to the input" is a number. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

from bench import measure  # tools/ is on the path when this runs as a script

HERE = Path(__file__).resolve().parent

CHOICES: list[tuple[str, list[str]]] = [
    ("default (auto: hevc, capped at the input's rate)", []),
    ("hevc crf 24 (no cap)", ["--codec", "hevc", "--crf", "24"]),
    ("hevc preset veryfast (capped)", ["--codec", "hevc", "--preset", "veryfast"]),
    ("h264 (capped at 1.5x the input's rate)", ["--codec", "h264"]),
    ("h264 crf 18 (the old default)", ["--codec", "h264", "--crf", "18"]),
    ("h264 crf 23", ["--codec", "h264", "--crf", "23"]),
    ("h264 --bitrate 570k (the input's)", ["--codec", "h264", "--bitrate", "570k"]),
]


def video_bytes(path: Path, frames: int) -> tuple[str, int]:
    """The codec and the bytes of the first `frames` video packets in presentation order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = sorted(((p.pts, p.size) for p in container.demux(stream) if p.size), key=lambda p: p[0])
        return stream.codec_context.name, sum(size for _, size in packets[:frames])


def psnr(reference: Path, output: Path, frames: int, step: int = 5) -> float:
    """Mean luma PSNR of every `step`-th frame of `output` against `reference`."""
    errors = []
    with av.open(str(reference)) as a, av.open(str(output)) as b:
        for i, (x, y) in enumerate(zip(a.decode(video=0), b.decode(video=0))):
            if i >= frames:
                break
            if i % step:
                continue
            ya = x.to_ndarray(format="gray").astype(np.float32)
            yb = y.to_ndarray(format="gray").astype(np.float32)
            errors.append(float(np.mean((ya - yb) ** 2)))
    mse = float(np.mean(errors))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description="encode cost of each output choice on demo2")
    parser.add_argument("--media", type=Path, default=HERE.parent.parent / "shared" / "media")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; the fastest counts")
    args = parser.parse_args()
    video, audio = args.media / "demo2_video.mp4", args.media / "demo2_audio.wav"
    frames = 496  # the output follows demo2_audio: 19.84 s at 25 fps
    _, input_bytes = video_bytes(video, frames)
    lines = [
        f"input: {video.name}, video {input_bytes * 8 / (frames / 25) / 1e6:.2f} Mbit/s over the {frames} frames the output keeps",
        "",
        "| choice | codec | wall s | CPU s | fps | video Mbit/s | size vs input | PSNR-Y dB vs input |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in CHOICES:
            out = Path(tmp) / "out.mp4"
            cmd = [sys.executable, "-m", "lipstream", "sync", str(video), str(audio), "-o", str(out), "--engine", "passthrough", *extra]
            wall, cpu, _ = min((measure(cmd) for _ in range(args.repeat)), key=lambda r: r[0])
            codec, size = video_bytes(out, frames)
            rate = size * 8 / (frames / 25) / 1e6
            lines.append(f"| {name} | {codec} | {wall:.1f} | {cpu:.1f} | {frames / wall:.1f} | {rate:.2f} | {size / input_bytes:.2f}x | {psnr(video, out, frames):.2f} |")
            sys.stderr.write(lines[-1] + "\n")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
