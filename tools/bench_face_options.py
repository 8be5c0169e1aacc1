"""Cost of each face option on real footage: detectors on the full frame and near the tracked face, FAN, the stage.

    python tools/bench_face_options.py [--media DIR] [--frames 48] [--weights DIR]

Without --weights the official networks get the golden references'
deterministic fills (same arithmetic as the published files). Prints ms per
frame, median over the frames:
  full   the detector on the whole frame (official ones see it shrunk to 640 px)
  near   the detector on the region the tracker searches after a loss (3 face sizes square)
  stage  the face stage per frame on the clip with this option (detector only when the target is lost)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "support")]

FILES = {
    "retinaface_r50": ("retinaface_r50", "detection_Resnet50_Final.pth"),
    "retinaface_mnet": ("retinaface_mnet", "detection_mobilenet0.25_Final.pth"),
    "s3fd": ("s3fd", "s3fd-619a316812.pth"),
    "fan2d": ("fan2d", "2DFAN4-11f355bf06.pth.tar"),
}


def write_filled(folder: Path) -> Path:
    from golden_fill import filled_state_dict, load_golden

    from lipstream.models.fan import FAN
    from lipstream.models.retinaface import RetinaFace
    from lipstream.models.s3fd import S3FD

    modules = {"retinaface_r50": RetinaFace("resnet50"), "retinaface_mnet": RetinaFace("mobilenet0.25"), "s3fd": S3FD(), "fan2d": FAN()}
    for name, (golden, filename) in FILES.items():
        manifest, _ = load_golden(golden)
        torch.save(filled_state_dict(modules[name], manifest["fill"]["mode"], manifest["fill"]["gain"]), folder / filename)
    return folder


def clip_frames(video: Path, count: int) -> list:
    from lipstream.stream.frames import Frame
    from lipstream.stream.source import VideoSource

    frames = []
    with VideoSource(video) as source:
        for index, pts, decoded in source.forward():
            frames.append(Frame(index, pts, source.time_base, index, decoded, source.rotation))
            if len(frames) == count:
                break
    return frames


def median_ms(fn, items) -> float:  # type: ignore[no-untyped-def]
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def stage_ms(stage, frames: list) -> float:  # type: ignore[no-untyped-def]
    """The face stage's ms per frame over the clip, in windows of 24 overlapping by 8."""
    from lipstream.stream.frames import Window
    from lipstream.stream.windows import plan_windows

    start = time.perf_counter()
    for n, (items, lo, hi) in enumerate(plan_windows(frames, 24, 8)):
        stage(Window(n, tuple(items), lo, hi))
    return 1000 * (time.perf_counter() - start) / len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--weights", type=Path, help="folder with the real checkpoints (default: filled ones)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from lipstream.config import FaceConfig, WindowConfig
    from lipstream.pipeline.faces.models import face_models
    from lipstream.pipeline.faces.stage import FaceStage, FaceTracker
    frames = clip_frames(args.media / "demo2_video.mp4", args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or write_filled(Path(tmp))
        tracker = FaceTracker(FaceConfig())
        boxes = [o.box if (o := tracker.observe(f)) is not None else None for f in frames]
        regions = []
        for frame, box in zip(frames, boxes):
            if box is None:
                continue
            size, (cx, cy) = max(box[2] - box[0], box[3] - box[1]), ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            width, height = frame.size
            regions.append(frame.rgb_region((max(int(cx - 1.5 * size), 0), max(int(cy - 1.5 * size), 0),
                                             min(int(cx + 1.5 * size), width), min(int(cy + 1.5 * size), height))))
        pictures = [f.rgb() for f in frames[:8]]
        print(f"demo2, {len(frames)} frames {frames[0].size[0]}x{frames[0].size[1]}, torch threads {torch.get_num_threads()}, device {args.device}")
        print(f"{'option':<28}{'full ms':>10}{'near ms':>10}{'stage ms/frame':>16}")
        for detector in ("blazeface", "blazeface-short", "retinaface-mnet", "retinaface", "s3fd"):
            config = FaceConfig(detector=detector)  # type: ignore[arg-type]
            models = face_models(config, args.device, (weights,))
            finder = models.detector or FaceTracker(config).detector
            full = median_ms(lambda p: finder.detect([p]), pictures[:4])
            near = median_ms(lambda p: finder.detect([p]), regions[:8])
            per_frame = stage_ms(FaceStage(config, WindowConfig(), models), frames)
            print(f"{'--detector ' + detector:<28}{full:>10.1f}{near:>10.1f}{per_frame:>16.1f}")
        config = FaceConfig(landmarks="fan")
        per_frame = stage_ms(FaceStage(config, WindowConfig(), face_models(config, args.device, (weights,))), frames)
        print(f"{'--landmarks fan':<28}{'':>10}{'':>10}{per_frame:>16.1f}")


if __name__ == "__main__":
    main()
