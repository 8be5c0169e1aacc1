"""Segments on Ray: one process against a local Ray with 1 and 2 workers (not part of the test suite).

    python tools/bench_ray.py [--media ../shared/media] [--engine warp] [--segment 2.5] [--cpus 2]

Each run is `lipstream sync` in its own process on demo1 (1080x1920 HEVC,
10 s): wall time (a `--ray` run includes starting the local Ray), the
driver's peak RSS, the workers' peak RSS (each reports its own; the largest
is shown), and whether the output is byte-identical to the one-process run.
The Ray start-up alone is timed too, so the rest is the segments' work.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "support"))

from peak_rss import Measured  # noqa: E402  (a child's own peak RSS)


def run(command: list[str]) -> tuple[float, float, dict[str, object]]:
    """(wall seconds, the process's peak RSS in MiB, its `done` event)."""
    start = time.perf_counter()
    job = Measured(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = job.proc.stderr.read().decode()
    if job.wait() != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err}")
    wall = time.perf_counter() - start
    done = next(json.loads(line) for line in err.splitlines() if line.startswith('{"event":"done"'))
    return wall, job.peak_mb, done


def ray_start_seconds(cpus: int) -> float:
    code = f"import time,ray; t=time.perf_counter(); ray.init(num_cpus={cpus}, include_dashboard=False); print(time.perf_counter()-t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()[-1])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=HERE.parent.parent / "shared" / "media")
    parser.add_argument("--engine", default="warp")
    parser.add_argument("--segment", default="2.5", help="segment seconds (demo1 is 10 s: 4 segments)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs of this machine (for the Ray start-up timing)")
    args = parser.parse_args()
    video, audio = args.media / "demo1_video.mp4", args.media / "demo1_audio.wav"
    with tempfile.TemporaryDirectory() as folder:
        base = [sys.executable, "-m", "lipstream", "sync", str(video), str(audio), "--engine", args.engine, "--segment", args.segment, "--json"]
        rows = []
        reference = Path(folder) / "one.mp4"
        wall, rss, done = run([*base, "-o", str(reference)])
        rows.append(("one process", wall, rss, None, done, True))
        for workers in (1, 2):
            out = Path(folder) / f"ray{workers}.mp4"
            wall, rss, done = run([*base, "-o", str(out), "--ray", "--workers", str(workers)])
            rows.append((f"Ray, {workers} worker{'s' if workers > 1 else ''}", wall, rss, done.get("worker_peak_rss_mb"), done, digest(out) == digest(reference)))
        start = ray_start_seconds(args.cpus)
    frames = rows[0][4]["frames"]
    print(f"demo1, engine {args.engine}, {rows[0][4]['segments']} segments of {args.segment} s, {frames} frames, {os.cpu_count()} CPUs")
    print(f"local Ray start-up alone: {start:.1f} s (included in the Ray rows)")
    print("| run | wall s | fps | driver peak RSS MiB | worker peak RSS MiB | identical to one process |")
    print("|---|---|---|---|---|---|")
    for name, wall, rss, worker, _, same in rows:
        print(f"| {name} | {wall:.1f} | {frames / wall:.1f} | {rss:.0f} | {'-' if worker is None else f'{worker:.0f}'} | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
