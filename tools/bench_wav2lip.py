"""Benchmark of the Wav2Lip engine (not part of the timed test suite).

    python tools/bench_wav2lip.py [--media DIR] [--seconds S] [--batch N] [--weights DIR] [--device cpu]

Runs `run_sync` with the wav2lip engine on demo2 (1080x1920 HEVC, 25 fps)
and prints the job's throughput and a per-stage breakdown taken from the
runner's progress events (busy seconds per stage), plus the share of the
wav2lip stage spent in the network. Without `--weights` the checkpoint is
a Wav2Lip filled by the golden fill rule (tests/golden_fill.py), written in
the official layout to a temporary folder: same cost as the real weights,
meaningless pictures.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lipstream.config import SyncConfig
from lipstream.models.wav2lip import Wav2Lip
from lipstream.pipeline import engines
from lipstream.pipeline.jobs.sync import run_sync
from lipstream.pipeline.progress import ProgressEvent
from lipstream.pipeline.engines import wav2lip as wav2lip_engine
from lipstream.pipeline.engines.wav2lip.config import Wav2LipConfig
from lipstream.pipeline.engines.wav2lip.stage import Wav2LipStage
from lipstream.stream.audio import AudioInput

HERE = Path(__file__).resolve().parent
ENGINE = "wav2lip_bench"


def filled_checkpoint(folder: Path) -> None:
    """wav2lip.pth in the official layout ('state_dict', keys prefixed 'module.'), filled like the goldens."""
    spec = importlib.util.spec_from_file_location("golden_fill", HERE.parent / "tests" / "golden_fill.py")
    assert spec is not None and spec.loader is not None
    golden_fill = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(golden_fill)
    manifest = json.loads((HERE.parent / "tests" / "golden" / "wav2lip" / "manifest.json").read_text())
    network = golden_fill.fill(Wav2Lip(), manifest["fill"]["mode"], manifest["fill"]["gain"])
    state = {"module." + k: v for k, v in network.state_dict().items()}
    torch.save({"state_dict": state}, folder / "wav2lip.pth")


def cut_audio(audio: Path, seconds: float, out: Path) -> Path:
    """The first `seconds` of `audio` as 16 kHz mono wav (shorter runs while tuning)."""
    import av

    source = AudioInput(audio)
    try:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in source.chunks(16000)])[: int(seconds * 16000)]
    finally:
        source.close()
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
    with av.open(str(out), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out


class NetworkClock:
    """Seconds spent in `Wav2LipStage._forward` (the network, whichever region path feeds it), summed over the run."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.frames = 0
        original = Wav2LipStage._forward
        clock = self

        def timed(stage: Wav2LipStage, faces: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
            start = time.perf_counter()
            try:
                out = original(stage, faces, mels)
                if out.is_cuda:
                    torch.cuda.synchronize(out.device)  # the network's time, not its launch
                return out
            finally:
                clock.seconds += time.perf_counter() - start
                clock.frames += len(faces)

        Wav2LipStage._forward = timed  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description="Wav2Lip engine benchmark")
    parser.add_argument("--media", type=Path, default=HERE.parent.parent / "shared" / "media", help="folder with demo2_video.mp4 and demo2_audio.wav")
    parser.add_argument("--video", default="demo2_video.mp4")
    parser.add_argument("--audio", default="demo2_audio.wav")
    parser.add_argument("--seconds", type=float, default=None, help="use only the first S seconds of the audio")
    parser.add_argument("--batch", type=int, default=Wav2LipConfig.batch_size, help="frames per forward pass")
    parser.add_argument("--weights", type=Path, default=None, help="folder with the real wav2lip.pth (default: a filled one)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    engine = Wav2LipConfig(batch_size=args.batch)
    bench = engines.Engine(
        ENGINE,
        "wav2lip with --batch",
        lambda config, found: wav2lip_engine.build(config, found, engine),
        context=engine.min_overlap,
        checkpoints=wav2lip_engine.ENGINE.checkpoints,
    )
    engines.ENGINES[ENGINE] = bench
    clock = NetworkClock()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        weights = args.weights
        if weights is None:
            filled_checkpoint(folder)
            weights = folder
        audio = args.media / args.audio
        if args.seconds is not None:
            audio = cut_audio(audio, args.seconds, folder / "cut.wav")
        events: list[ProgressEvent] = []
        start = time.perf_counter()
        result = asyncio.run(
            run_sync(args.media / args.video, audio, folder / "out.mp4", SyncConfig(engine=ENGINE, device=args.device, weights=(weights,)), on_progress=events.append)
        )
        wall = time.perf_counter() - start
    last = events[-1]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = sys.stdout
    out.write(f"## wav2lip engine on {args.video} ({result.frames} frames, batch {args.batch}, {args.device}, torch threads {torch.get_num_threads()})\n")
    out.write(f"wall {wall:.1f} s (incl. model load) | pipeline {last.elapsed:.1f} s | {last.fps:.2f} fps | peak RSS {rss:.0f} MB\n\n")
    out.write("| stage | busy s | ms/frame | share of pipeline time |\n|---|---|---|---|\n")
    for stage in last.stages:
        out.write(f"| {stage.name} | {stage.busy:.1f} | {1000 * stage.busy / result.frames:.1f} | {stage.busy / last.elapsed:.0%} |\n")
    if clock.frames:
        out.write(f"| wav2lip: network only | {clock.seconds:.1f} | {1000 * clock.seconds / clock.frames:.1f} | {clock.seconds / last.elapsed:.0%} |\n")
    out.write("\n(busy = time inside the stage; decode and encode run on their own threads alongside)\n")


if __name__ == "__main__":
    main()
