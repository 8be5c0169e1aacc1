"""Throughput on one device: the installed CLI's jobs against passthrough, and the networks alone.

    python tools/bench_device.py [--device cuda:0] [--media DIR] [--seconds S] [--weights DIR]
                                 [--only passthrough wav2lip retalking-fast retalking-balanced two-jobs networks original]
                                 [--wav2lip-repo PATH] [--wav2lip-python PYTHON] [--pairs N]

Every job row is `python -m lipstream sync` on demo2 (1080x1920 HEVC) as a
user runs it, in its own process: wall time, output fps, the ratio to
passthrough (decode + encode, the floor) measured in the same run, peak RSS,
GPU memory (nvidia-smi, polled, when the device is CUDA) and the stages' busy
seconds from the last `--json` progress event. `two-jobs` starts two wav2lip
jobs at once and reports their combined throughput over one job's.
`networks` times the Wav2Lip generator alone (fp32, synchronised) at batch 16
and 128 (CPU) or 512 (CUDA). `original` runs the original Wav2Lip
`inference.py` from a checkout (`--wav2lip-repo`, with its requirements
installed) with a fixed `--box` (no detection) and the same checkpoint,
side by side with our wav2lip engine on the same frames (`--pairs N`: the
two alternated N times, every pair's ratio and their median); without a
checkout that row says so and is skipped.

Without `--weights` the checkpoints are written in the official layouts with
the goldens' deterministic fills (tests/support/official_weights.py): the
real files' arithmetic, meaningless pictures.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "tests" / "support")]

from peak_rss import Measured  # noqa: E402  (a child's own peak RSS)

ROWS = ("passthrough", "wav2lip", "retalking-fast", "retalking-balanced", "two-jobs", "networks", "original")


@dataclass
class Run:
    wall: float
    frames: int
    rss_mb: float
    gpu_mb: float | None = None
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.wall if self.wall else 0.0


class GpuMemory:
    """Peak GPU memory of some jobs, polled with nvidia-smi (None when it is not there)."""

    def __init__(self, jobs: list[Measured]) -> None:
        self.jobs, self.peak, self._stop = jobs, 0.0, threading.Event()
        self.available = shutil.which("nvidia-smi") is not None
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> GpuMemory:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.available:
            self._thread.join()

    def _poll(self) -> None:
        query = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
        while not self._stop.is_set():
            pids = {str(job.job_pid()) for job in self.jobs}
            out = subprocess.run(query, capture_output=True, text=True, check=False).stdout
            used = sum(float(m) for p, m in (line.split(",") for line in out.splitlines() if "," in line) if p.strip() in pids)
            self.peak = max(self.peak, used)
            self._stop.wait(0.2)


def _wait(job: Measured) -> tuple[float, str]:
    """(peak RSS MB, stderr) of a finished job; raises with its stderr when it failed."""
    err = job.proc.stderr.read().decode() if job.proc.stderr else ""
    if job.wait() != 0:
        raise SystemExit(f"{' '.join(map(str, job.proc.args))} failed ({job.returncode}):\n{err[-3000:]}")
    return job.peak_mb, err


def sync_jobs(args: argparse.Namespace, video: Path, audio: Path, options: list[list[str]], out_dir: Path) -> list[Run]:
    """Run `lipstream sync` once per option list, all at once; one Run each."""
    started = time.perf_counter()
    jobs = []
    for k, extra in enumerate(options):
        command = [sys.executable, "-m", "lipstream", "sync", video, audio, "-o", out_dir / f"out{k}.mp4", "--json", *extra]
        jobs.append(Measured(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    gpu = GpuMemory(jobs) if args.device.startswith("cuda") else None
    runs = []
    with gpu if gpu is not None else _nothing():
        for job in jobs:
            rss, err = _wait(job)
            wall = time.perf_counter() - started
            events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
            done = next(e for e in reversed(events) if e.get("event") == "done")
            progress = [e for e in events if e.get("event") == "progress" and e.get("stages")]
            stages = {s["name"]: round(s["busy"], 1) for s in progress[-1]["stages"]} if progress else {}
            runs.append(Run(wall, int(done["frames"]), rss, stages=stages))
    if gpu is not None and gpu.available:
        for run in runs:
            run.gpu_mb = gpu.peak / len(runs)
    return runs


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def network_rows(device: str) -> list[tuple[str, float]]:
    """Wav2Lip generator alone, frames per second: float32 as loaded, and as the engine runs it
    (channels-last; float16 on CUDA, bfloat16 autocast on a CPU that has it)."""
    import torch

    from official_weights import _filled
    from lipstream.models._loading import cpu_autocast, inference_dtype
    from lipstream.models.wav2lip import Wav2Lip

    net = Wav2Lip()
    net.load_state_dict(_filled("wav2lip", net))
    net = net.eval().to(device)
    dtype, autocast = inference_dtype("wav2lip", device), cpu_autocast("wav2lip", device)
    engine = f"{'bfloat16 autocast' if autocast else dtype}, channels-last"
    converted = copy.deepcopy(net).to(dtype=dtype, memory_format=torch.channels_last)
    rows = []
    for batch in (16, 512 if device.startswith("cuda") else 128):
        for label, model, kind, cast in (("float32", net, torch.float32, None), (engine, converted, dtype, autocast)):
            mel = torch.randn(batch, 1, 80, 16, device=device, dtype=kind).contiguous(memory_format=torch.channels_last)
            face = torch.rand(batch, 6, 96, 96, device=device, dtype=kind).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), torch.autocast(torch.device(device).type, dtype=cast or torch.float32, enabled=cast is not None):
                model(mel, face)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                repeats, start = 3, time.perf_counter()
                for _ in range(repeats):
                    model(mel, face)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
            rows.append((f"Wav2Lip generator alone, batch {batch}, {label}", repeats * batch / (time.perf_counter() - start)))
    return rows


def original_row(args: argparse.Namespace, video: Path, audio: Path, weights: Path, out_dir: Path) -> str:
    """The original inference.py with a fixed box, beside our engine on the same input and checkpoint.

    `--pairs N` alternates the two N times: on a shared machine the original's
    time moves with the load more than ours, so one pair can say 2.0x and the
    next 2.5x; the line gives every pair's ratio and their median.
    """
    repo = args.wav2lip_repo
    if repo is None or not (repo / "inference.py").exists():
        return "original inference.py: skipped (pass --wav2lip-repo PATH, a Wav2Lip checkout with its requirements)"
    box = _first_face_box(video)
    command = [
        str(args.wav2lip_python or sys.executable), "inference.py", "--checkpoint_path", str(weights / "wav2lip.pth"), "--face", str(video),
        "--audio", str(audio), "--outfile", str(out_dir / "original.mp4"), "--box", *map(str, box),
    ]
    pairs: list[tuple[float, float, Run]] = []
    for _ in range(max(args.pairs, 1)):
        started = time.perf_counter()
        rss, _ = _wait(Measured(command, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        wall = time.perf_counter() - started
        ours = sync_jobs(args, video, audio, [["--engine", "wav2lip", "--device", args.device, "--weights", str(weights)]], out_dir)[0]
        pairs.append((wall, rss, ours))
    frames = pairs[0][2].frames
    speed = [wall / ours.wall for wall, _, ours in pairs]
    memory = [rss / ours.rss_mb for _, rss, ours in pairs]

    def spread(values: list[float], scale: float = 1.0) -> str:
        return "-".join(f"{scale * v:.0f}" for v in (min(values), max(values))) if len(values) > 1 else f"{scale * values[0]:.0f}"

    return (
        f"original inference.py --box {' '.join(map(str, box))}: {spread([w / frames for w, _, _ in pairs], 1000)} ms/frame, "
        f"peak RSS {spread([r for _, r, _ in pairs])} MB; lipstream wav2lip: {spread([o.wall / frames for _, _, o in pairs], 1000)} ms/frame, "
        f"peak RSS {spread([o.rss_mb for _, _, o in pairs])} MB; "
        f"{statistics.median(speed):.2f}x faster (pairs: {', '.join(f'{v:.2f}' for v in speed)}), "
        f"{statistics.median(memory):.1f}x less memory"
    )


def _first_face_box(video: Path) -> tuple[int, int, int, int]:
    """(y1, y2, x1, x2) of the face's landmarks on the first frame, the form inference.py's --box takes."""
    from lipstream.pipeline.metrics.lipsync_metric import decode_rgb, track_faces

    first = (rgb for _, rgb in decode_rgb(video))
    _, marks = next(track_faces(first))
    if marks is None:
        raise SystemExit(f"{video}: no face on the first frame")
    (x0, y0), (x1, y1) = marks.xy.min(axis=0), marks.xy.max(axis=0)
    return int(y0), int(y1), int(x0), int(x1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--media", type=Path, default=HERE.parent.parent / "shared" / "media")
    parser.add_argument("--seconds", type=float, help="use only this much of demo2's audio (default: all)")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--only", nargs="+", default=list(ROWS), help=f"rows: {' '.join(ROWS)}")
    parser.add_argument("--wav2lip-repo", type=Path)
    parser.add_argument("--wav2lip-python", type=Path, help="the Python that has the checkout's requirements (default: this one)")
    parser.add_argument("--pairs", type=int, default=1, help="original row: alternate the original and ours this many times (median ratio)")
    args = parser.parse_args()
    unknown = sorted(set(args.only) - set(ROWS))
    if unknown:
        parser.error(f"unknown rows {', '.join(unknown)}; choose from {', '.join(ROWS)}")

    from official_weights import write_retalking, write_wav2lip

    video = args.media / "demo2_video.mp4"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        audio = args.media / "demo2_audio.wav"
        if args.seconds:
            from lipstream.pipeline.metrics.lipsync_metric import read_audio
            from media import write_wav

            audio = write_wav(folder / "audio.wav", read_audio(audio)[: int(args.seconds * 16000)])
        weights = args.weights
        if weights is None:
            weights = folder / "weights"
            write_wav2lip(weights)
            if any(r.startswith("retalking") for r in args.only):
                write_retalking(weights)
        device = ["--device", args.device, "--weights", str(weights)]
        jobs = {
            "passthrough": ["--engine", "passthrough"],
            "wav2lip": ["--engine", "wav2lip", *device],
            "retalking-fast": ["--engine", "retalking", "--quality", "fast", *device],
            "retalking-balanced": ["--engine", "retalking", "--quality", "balanced", *device],
        }
        print(f"device {args.device}, demo2 1080x1920{'' if not args.seconds else f', first {args.seconds:g} s'}, {os.cpu_count()} cores")
        print("| run | fps | x passthrough | peak RSS MB | GPU MB | stage busy s |\n|---|---|---|---|---|---|")
        floor = one = None
        wanted = [n for n in jobs if n in args.only]
        if "two-jobs" in args.only and "wav2lip" not in wanted:
            wanted.append("wav2lip")
        for name in (["passthrough"] if wanted else []) + [n for n in wanted if n != "passthrough"]:
            (run,) = sync_jobs(args, video, audio, [jobs[name]], folder)
            floor = floor or run.fps
            gpu = "-" if run.gpu_mb is None else f"{run.gpu_mb:.0f}"
            busy = ", ".join(f"{k} {v}" for k, v in run.stages.items())
            print(f"| {name} | {run.fps:.1f} | {run.fps / floor:.2f} | {run.rss_mb:.0f} | {gpu} | {busy} |", flush=True)
            if name == "wav2lip":
                one = run
        if "two-jobs" in args.only and one is not None:
            pair = sync_jobs(args, video, audio, [jobs["wav2lip"], jobs["wav2lip"]], folder)
            wall = max(r.wall for r in pair)
            total = sum(r.frames for r in pair) / wall
            gpu = "-" if pair[0].gpu_mb is None else f"{pair[0].gpu_mb:.0f} each"
            print(f"| two wav2lip jobs at once | {total:.1f} together | {total / one.fps:.2f} x one job | "
                  f"{max(r.rss_mb for r in pair):.0f} | {gpu} | |", flush=True)
        if "networks" in args.only:
            for label, fps in network_rows(args.device):
                print(f"| {label} | {fps:.0f} | | | | |", flush=True)
        if "original" in args.only:
            print(original_row(args, video, audio, weights, folder))


if __name__ == "__main__":
    main()
