"""Cost of the enhancement networks and the enhance stage, and the mouth's flicker with and without it.

    python tools/bench_enhance.py [--media DIR] [--frames 12] [--weights DIR] [--device cuda:0]

Without --weights the networks get the golden references' deterministic
fills (the published files' arithmetic). On demo2 the warp engine edits the
frames first (as an engine hands them on), then the stage restores them.
Prints ms per forward of each network at batch 1, the stage's ms per frame,
and the mean frame-to-frame difference inside the mouth box without and
with each enhancer (the stage keeps it within 1.2x on real weights' output;
random weights are the harshest case: their output has no relation to the
face, so only the carrying of the residual keeps it still).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "support")]


def mouth_flicker(frames) -> float:  # type: ignore[no-untyped-def]
    diffs = []
    for previous, current in zip(frames, frames[1:]):
        if current.face is None or current.face.landmarks is None:
            continue
        xy = current.face.landmarks[[61, 291, 0, 17], :2]
        x0, y0 = np.floor(xy.min(axis=0)).astype(int) - 4
        x1, y1 = np.ceil(xy.max(axis=0)).astype(int) + 4
        a = current.rgb_region((x0, y0, x1, y1)).astype(float)
        b = previous.rgb_region((x0, y0, x1, y1)).astype(float)
        diffs.append(np.abs(a - b).mean())
    return float(np.mean(diffs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from official_weights import write_enhancers

    from lipstream.config import SyncConfig, WindowConfig
    from lipstream.models._loading import load_model
    from lipstream.pipeline.engines.base import find
    from lipstream.pipeline.engines.shared.enhance import enhance_stage
    from lipstream.pipeline.engines.shared.enhancers import ENHANCERS
    from lipstream.pipeline.engines.shared.rearticulate import WarpLips
    from lipstream.pipeline.faces.stage import FaceStage
    from lipstream.stream.audio import AudioFeed, AudioInput
    from lipstream.stream.source import VideoSource
    from lipstream.stream.timeline import output_frames
    from lipstream.stream.windows import frame_windows

    window = WindowConfig(size=args.frames + 8, overlap=8)
    audio = AudioInput(args.media / "demo2_audio.wav")
    with VideoSource(args.media / "demo2_video.mp4") as source:
        frames = list(islice(output_frames(source, "audio", audio.duration), args.frames + 4))
        for frame in frames:
            frame.rgb()
        windows = list(frame_windows(iter(frames), AudioFeed(audio), window))
    audio.close()
    faces, warp = FaceStage(window=window), WarpLips()
    edited = [warp(faces(w)) for w in windows]
    owned = [f for w in edited for f in w.owned]
    print(f"demo2 {owned[0].size[0]}x{owned[0].size[1]}, {len(owned)} frames, torch threads {torch.get_num_threads()}, {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or write_enhancers(Path(tmp))
        print(f"{'network':<18}{'ms / forward (batch 1)':>24}")
        for name in ("gpen512", "gfpgan_v1_4", "parsenet"):
            network = load_model(name, weights_dirs=(weights,), device=args.device)
            x = torch.zeros(1, 3, 512, 512, device=args.device)
            with torch.inference_mode():
                network(x)
                start = time.perf_counter()
                for _ in range(2):
                    network(x)
            print(f"{name:<18}{1000 * (time.perf_counter() - start) / 2:>24.0f}")
        print(f"\n{'stage':<18}{'ms / frame':>12}{'mouth flicker':>16}{'ratio':>8}")
        base = mouth_flicker(owned)
        print(f"{'none (warp only)':<18}{'':>12}{base:>16.2f}{1.0:>8.2f}")
        for kind in ("gpen", "gfpgan"):
            config = SyncConfig(enhance=kind, device=args.device, weights=(weights,))  # type: ignore[arg-type]
            stage = enhance_stage(config, find(ENHANCERS[kind], config.weights, kind))
            start = time.perf_counter()
            out = [f for w in edited for f in stage(w).owned]
            per_frame = 1000 * (time.perf_counter() - start) / len(owned)
            flicker = mouth_flicker(out)
            print(f"{kind:<18}{per_frame:>12.0f}{flicker:>16.2f}{flicker / base:>8.2f}")


if __name__ == "__main__":
    main()
