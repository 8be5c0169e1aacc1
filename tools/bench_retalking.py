"""Per-frame cost of the retalking engine against the original VideoReTalking pipeline (not part of the tests).

    python tools/bench_retalking.py [--media ../shared/media] [--frames 48] [--quality balanced fast]
                                    [--weights DIR] [--goldens ../shared/golden] [--threads N]

Engine: the whole job (decode, face stage, stabilise, generate, compose,
encode) on the first --frames frames of demo2 (1080x1920 HEVC) with its new
audio cut to that length, through `run_sync` with the stages built
beforehand (loading is not timed). Wall seconds and process CPU seconds per
frame, and each stage's busy time. Without --weights the networks carry the
golden fill (random weights of the official shapes: the same arithmetic as
the real ones) and the BFM data is the tests' stand-in.

Original: its per-frame model cost, network by network as
RETALKING_PIPELINE.md counts them (face3d, D-Net, GPEN, 3 ParseNet, E-Net
with its style branch, GFPGAN, 2 FAN, S3FD, 3 RetinaFace-R50), batch 1.
E-Net, D-Net and face3d are timed here, now; the networks lipstream does
not have are taken from their golden manifests (--goldens) and scaled by
the ratio between this run's timings and the manifests' for the three
timed ones, so machine load cancels out. S3FD and RetinaFace were timed on
~200x150 inputs; the original runs them on whole frames, so the estimate
is a lower bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"

# how many times the original runs each network per output frame (RETALKING_PIPELINE.md)
ORIGINAL = {
    "face3d_recon": 1,
    "dnet": 1,
    "gpen512": 1,
    "parsenet": 3,
    "enet": 1,
    "gfpgan_v1_clean": 1,
    "fan2d": 2,
    "s3fd": 1,
    "retinaface_r50": 3,
}
TIMED = ("face3d_recon", "dnet", "enet")


def networks(weights: Path | None) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module, np.ndarray, np.ndarray]:
    """(face3d, dnet, enet, template5, expression): official files when --weights is given, else stand-ins."""
    if weights is not None:
        from lipstream.models._loading import load_model
        from lipstream.pipeline.engines import retalking
        from lipstream.pipeline.engines.base import resolve
        from lipstream.pipeline.engines.retalking.build import load_face3d_data

        resolve(retalking.ENGINE, (weights,))
        template5, expression = load_face3d_data((weights,))
        face3d, dnet, enet = (load_model(n, weights_dirs=(weights,)) for n in TIMED)
        return face3d, dnet, enet, template5, expression
    sys.path[:0] = [str(TESTS), str(TESTS / "support")]
    from retalking_fixtures import bfm_landmarks, expression_templates, filled_networks

    from lipstream.models._face3d_coeffs import five_points

    face3d, dnet, enet = filled_networks()
    return face3d, dnet, enet, five_points(bfm_landmarks()), expression_templates()["expression_center"]


def manifest_ms(goldens: Path, name: str) -> float:
    data = json.loads((goldens / name / "manifest.json").read_text())
    return float(data.get("cpu_ms_batch1_min", data["cpu_ms_batch1"]))


def time_original(face3d, dnet, enet, repeat: int = 5) -> dict[str, tuple[float, float]]:  # type: ignore[no-untyped-def]
    """Batch-1 (wall, cpu) seconds of the timed networks as the original runs them (E-Net with its style branch)."""
    inputs = {
        "face3d_recon": (face3d, (torch.rand(1, 3, 224, 224),)),
        "dnet": (dnet, (torch.rand(1, 3, 256, 256) * 2 - 1, torch.randn(1, 73, 26))),
        "enet": (enet, (torch.rand(1, 1, 80, 16) * 8 - 4, torch.rand(1, 6, 384, 384))),
    }
    out = {}
    with torch.inference_mode():
        torch.set_flush_denormal(True)
        for name, (net, args) in inputs.items():
            net(*args)
            runs = []
            for _ in range(repeat):
                wall, cpu = time.perf_counter(), time.process_time()
                net(*args)
                runs.append((time.perf_counter() - wall, time.process_time() - cpu))
            out[name] = min(runs)
    return out


def cut_audio(audio: Path, frames: int, folder: Path) -> Path:
    sys.path.insert(0, str(TESTS))
    from media import write_wav

    from lipstream.stream.audio import AudioInput

    source = AudioInput(audio)
    try:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in source.chunks(16000)])
    finally:
        source.close()
    folder.mkdir(parents=True, exist_ok=True)
    return write_wav(folder / "cut.wav", samples[: frames * 640])


class Metered:
    """A stage wrapper that adds up the CPU time of the calling thread (all of it at --threads 1)."""

    def __init__(self, stage) -> None:  # type: ignore[no-untyped-def]
        self.stage, self.name, self.device, self.cpu = stage, stage.name, stage.device, 0.0

    def __call__(self, window):  # type: ignore[no-untyped-def]
        start = time.thread_time()
        try:
            return self.stage(window)
        finally:
            self.cpu += time.thread_time() - start


def run_engine(video: Path, audio: Path, stages: list, folder: Path) -> tuple[int, float, float, dict[str, float]]:  # type: ignore
    """(frames, wall s, cpu s, thread cpu s per stage) of one job with prebuilt stages."""
    from lipstream.config import SyncConfig
    from lipstream.pipeline import engines
    from lipstream.pipeline.faces.stage import FaceStage
    from lipstream.pipeline.jobs.sync import run_sync
    from lipstream.pipeline.engines.retalking.config import MIN_OVERLAP

    metered = [Metered(s) for s in stages]

    def build(config: SyncConfig, found: object) -> list:  # type: ignore[type-arg]
        metered.insert(0, Metered(FaceStage(config.face, config.window)))
        return list(metered)

    engines.ENGINES["retalking-bench"] = engines.Engine("retalking-bench", "bench", build, context=MIN_OVERLAP)
    events = []
    wall, cpu = time.perf_counter(), time.process_time()
    job = run_sync(video, audio, folder / "out.mp4", SyncConfig(engine="retalking-bench"), on_progress=events.append)
    result = asyncio.run(job)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return result.frames, wall, cpu, {m.name: m.cpu for m in metered}


def make_stages(nets: tuple, config) -> list:  # type: ignore[no-untyped-def, type-arg]
    """Fresh stages for every job (the stabiliser keeps per-job state), as the factory builds them."""
    from lipstream.pipeline.engines.retalking.build import model_stages

    return model_stages(*nets, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--media", type=Path, default=HERE.parent.parent / "shared" / "media")
    parser.add_argument("--goldens", type=Path, default=HERE.parent.parent / "shared" / "golden")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--quality", nargs="+", default=["balanced", "fast"], choices=["fast", "balanced", "best"])
    parser.add_argument("--weights", type=Path, help="official weights folder (default: golden-filled stand-ins)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--warmup", type=int, default=8, help="frames of an untimed run first (0: none)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from lipstream.pipeline.engines.retalking.config import RetalkingConfig

    nets = networks(args.weights)
    face3d, dnet, enet, _, _ = nets
    kind = "official" if args.weights else "golden-filled"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; networks: {kind}")

    before = time_original(face3d, dnet, enet)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = args.media / "demo2_video.mp4"
        audio = cut_audio(args.media / "demo2_audio.wav", args.frames, folder)
        warm = cut_audio(args.media / "demo2_audio.wav", args.warmup, folder / "warm") if args.warmup else audio
        for quality in args.quality:
            config = RetalkingConfig(quality)  # type: ignore[arg-type]
            if args.warmup:  # first calls build oneDNN kernels and the face models
                run_engine(video, warm, make_stages(nets, config), folder)
            results.append((quality, *run_engine(video, audio, make_stages(nets, config), folder)))
    after = time_original(face3d, dnet, enet)
    # the quieter of the two measurements, network by network: other jobs on the machine only slow things down
    timed = {n: (min(before[n][0], after[n][0]), min(before[n][1], after[n][1])) for n in TIMED}

    listed = {name: manifest_ms(args.goldens, name) / 1000 for name in ORIGINAL}
    scale_wall = sum(timed[n][0] for n in TIMED) / sum(listed[n] for n in TIMED)
    scale_cpu = sum(timed[n][1] for n in TIMED) / sum(listed[n] for n in TIMED)
    original_wall = sum(count * (timed[n][0] if n in TIMED else listed[n] * scale_wall) for n, count in ORIGINAL.items())
    original_cpu = sum(count * (timed[n][1] if n in TIMED else listed[n] * scale_cpu) for n, count in ORIGINAL.items())
    print("\noriginal pipeline, model cost per output frame (batch 1):")
    for name, count in ORIGINAL.items():
        how = "timed here" if name in TIMED else f"manifest {listed[name] * 1000:.0f} ms x {scale_wall:.2f}"
        wall = timed[name][0] if name in TIMED else listed[name] * scale_wall
        print(f"  {count} x {name:16s} {wall:6.2f} s wall  ({how})")
    listed_total = sum(c * listed[n] for n, c in ORIGINAL.items())
    print(f"  total {original_wall:.1f} s wall, {original_cpu:.1f} s cpu per frame (manifests alone: {listed_total:.1f} s)")

    print(f"\nengine on demo2 (1080x1920 HEVC), {args.frames} frames, whole job (decode to encode):")
    for quality, frames, wall, cpu, busy in results:
        stage_text = ", ".join(f"{name} {seconds / frames:.2f}" for name, seconds in busy.items())
        print(
            f"  {quality:8s} {wall / frames:5.2f} s wall, {cpu / frames:5.2f} s cpu per frame "
            f"-> {original_wall / (wall / frames):4.1f}x less wall, {original_cpu / (cpu / frames):4.1f}x less cpu "
            f"than the original's models\n           stage cpu s/frame (exact at --threads 1): {stage_text}"
        )
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores; other jobs inflate every number)")

if __name__ == "__main__":
    main()
