"""Per-frame cost of the Wav2Lip stage's region work, OpenCV path against torch path (not a test).

    python tools/bench_regions.py [--media DIR] [--frames N] [--repeat R] [--device cpu] [--pads T B L R] [--threads N]

Tracks the first frames of demo2 (1080x1920), then runs the Wav2Lip stage
on them with a stand-in network that hands back its reference crop, once
per region path: what is timed is everything around the network (box,
crop and colour conversion, resizes, mask, blend, patch). Prints the
median milliseconds per frame of each path and the box size (`--pads` grows
it, as Wav2Lip's option does: 0.2 0.25 0.25 0.25 gives ~400x450 px on
demo2); this is what `use_torch_regions` is chosen by. `--threads` sets
torch's and OpenCV's thread counts alike: on a CPU that other work shares,
torch's many small parallel ops stall on a descheduled thread (4x slower
at load 6 on 2 cores), so one thread gives the steadier comparison.
"""

from __future__ import annotations

import argparse
import statistics
import time
from itertools import islice
from pathlib import Path

import cv2
import torch
from torch import nn

from lipstream.config import WindowConfig
from lipstream.pipeline.engines.shared.face_region import face_box
from lipstream.pipeline.engines.wav2lip.config import Wav2LipConfig
from lipstream.pipeline.engines.wav2lip.stage import Wav2LipStage
from lipstream.pipeline.faces.stage import FaceStage
from lipstream.stream.audio import AudioFeed, AudioInput
from lipstream.stream.frames import Window
from lipstream.stream.source import VideoSource
from lipstream.stream.timeline import output_frames
from lipstream.stream.windows import frame_windows

HERE = Path(__file__).resolve().parent


class Reference(nn.Module):
    """A network that costs nothing: the generated face is the unmasked input crop."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        return face[:, 3:6]


def tracked(video: Path, audio_path: Path, count: int, window: WindowConfig) -> list[Window]:
    """Windows of the first `count` frames with the face stage's results."""
    audio = AudioInput(audio_path)
    try:
        with VideoSource(video) as source:
            frames = list(islice(output_frames(source, "audio", audio.duration), count))
            planned = list(frame_windows(iter(frames), AudioFeed(audio), window))
    finally:
        audio.close()
    faces = FaceStage(window=window)
    return [faces(w) for w in planned]


def per_frame_ms(stage: Wav2LipStage, windows: list[Window], repeat: int) -> float:
    """Median over `repeat` runs of the stage's milliseconds per owned frame."""
    owned = sum(w.own_stop - w.own_start for w in windows)
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for w in windows:
            stage(w)
        if stage._device.type == "cuda":
            torch.cuda.synchronize(stage._device)
        runs.append((time.perf_counter() - start) * 1000 / owned)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description="Wav2Lip region work: OpenCV against torch, per frame")
    parser.add_argument("--media", type=Path, default=HERE.parent.parent / "shared" / "media", help="folder with demo2_video.mp4 and demo2_audio.wav")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads for torch and OpenCV")
    parser.add_argument("--pads", type=float, nargs=4, default=Wav2LipConfig().pads, metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    window = WindowConfig(size=16, overlap=Wav2LipConfig().min_overlap)
    windows = tracked(args.media / "demo2_video.mp4", args.media / "demo2_audio.wav", args.frames, window)
    for w in windows:  # decoded pictures stay: neither path may lean on a cached full-frame RGB
        for f in w.frames:
            f._rgb = None
    network = Reference().to(args.device).eval()
    first = next(w for w in windows if any(f.face is not None for f in w.owned))
    k = next(k for k in range(first.own_start, first.own_stop) if first.frames[k].face is not None)
    x0, y0, x1, y1 = face_box(list(first.frames), k, pads=tuple(args.pads))  # type: ignore[arg-type,misc]
    print(f"demo2 1080x1920, {args.frames} frames, box {x1 - x0}x{y1 - y0} px, device {args.device}, "
          f"{torch.get_num_threads()} torch threads")
    for regions in ("opencv", "torch"):
        config = Wav2LipConfig(pads=tuple(args.pads), regions=regions)  # type: ignore[arg-type]
        stage = Wav2LipStage(network, config, device=args.device)
        stage(windows[0])  # warm-up
        print(f"{regions:>6}: {per_frame_ms(stage, windows, args.repeat):6.1f} ms per frame")


if __name__ == "__main__":
    main()
