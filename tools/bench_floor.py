"""The least resident memory a job on VIDEO can have, whatever the pipeline does: its parts, measured.

    python tools/bench_floor.py VIDEO [--engine wav2lip] [--weights DIR] [--frames 100] [--goal 700]

A job holds at least: the interpreter with the CLI's imports, the engine's
models as the CLI builds them (default settings, their libraries included),
the decoder and the sink as the job runs them (`VideoSource`, `Sink`: the
encoder the output gets at default settings, libx265 for an HEVC input),
and the decoded pictures that the default window budget admits at once.
Each part is a fresh process's own high-water mark (imports, then models,
in one process; the decoder alone; the decoder with the sink), so the parts
add up; the pictures are counted, not sampled. The sum leaves out what
depends on the pipeline: network activations, per-window copies and memory
the allocator keeps after it was freed (`tools/bench_memory.py` shows
those for a real job).
A goal below the sum cannot be met at default settings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# Each part runs in a fresh process and prints one JSON line.
_MODELS = r"""
import json, sys
from pathlib import Path

def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmRSS"))

start = rss()
import lipstream.cli
from lipstream.config import SyncConfig
from lipstream.pipeline.engines import build_stages
from lipstream.pipeline.runner import default_in_flight
engine, weights = sys.argv[1], tuple(Path(w) for w in sys.argv[2:])
imported = rss()
plan = build_stages(SyncConfig(engine=engine, weights=weights))
window = plan.config.window
in_flight = window.in_flight or default_in_flight(plan.stages)
print(json.dumps({"start": start, "imports": imported, "models": rss(), "engine": plan.engine.name,
                  "in_flight": in_flight, "size": window.size, "overlap": window.overlap}))
"""

_CODEC = r"""
import json, sys, tempfile
from pathlib import Path
from lipstream.stream.frames import Frame
from lipstream.stream.sink import Sink
from lipstream.stream.source import VideoSource

def peak():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM"))

video, frames, encode = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
start = peak()
picture, n = 0, 0
with VideoSource(video) as source, tempfile.TemporaryDirectory() as folder:
    # the job's own decoder and sink (encoder chosen from the input, default settings), no audio
    sink = Sink(Path(folder) / "floor.mp4", None, rate=1 / source.frame_duration, traits=source.traits) if encode else None
    for index, pts, decoded in source.forward():
        picture = max(picture, sum(p.buffer_size for p in decoded.planes))
        if sink is not None:
            frame = Frame(n, pts, source.time_base, index, decoded, source.rotation)
            sink.write([frame])
        n += 1
        if n == frames:
            break
    if sink is not None:
        sink.close(frame.time, frame.time)
print(json.dumps({"start": start, "peak": peak(), "picture": picture / 2**20, "frames": n,
                  "encoder": sink.encoding.encoder if sink is not None else None}))
"""


def _part(code: str, *args: object) -> dict[str, float | str]:
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench_floor: a part failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(video: Path, engine: str, weights: list[Path], frames: int) -> dict[str, object]:
    """The floor's parts in MB (and what they were measured with)."""
    models = _part(_MODELS, engine, *weights)
    decoder = _part(_CODEC, video, frames, 0)
    codec = _part(_CODEC, video, frames, 1)
    alive = int(models["in_flight"]) * (int(models["size"]) - int(models["overlap"])) + int(models["overlap"])
    parts = {
        "interpreter and the CLI's imports": float(models["imports"]),
        f"models ({models['engine']}, as the CLI builds them, with the libraries they load)": float(models["models"]) - float(models["imports"]),
        "video decoder": float(decoder["peak"]) - float(decoder["start"]),
        f"encoder ({codec['encoder']}, default settings)": float(codec["peak"]) - float(decoder["peak"]),
        f"decoded pictures alive ({alive}: {models['in_flight']} windows of {models['size']}, overlap {models['overlap']})": alive * float(decoder["picture"]),
    }
    return {"parts": {k: round(v, 1) for k, v in parts.items()}, "floor_mb": round(sum(parts.values()), 1), "engine": models["engine"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--engine", default="passthrough")
    parser.add_argument("--weights", type=Path, action="append", default=[], help="checkpoint folder (repeatable)")
    parser.add_argument("--frames", type=int, default=100, help="frames decoded and encoded for the codec parts (default 100)")
    parser.add_argument("--goal", type=float, default=700.0, help="peak RSS goal in MB to compare with (default 700)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.video, args.engine, args.weights, args.frames)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.video.name}, engine {result['engine']}: what any job holds at least")
    print("| part | MB |\n|---|---|")
    for name, mb in result["parts"].items():
        print(f"| {name} | {mb:.0f} |")
    floor = result["floor_mb"]
    verdict = "below" if floor < args.goal else "ABOVE"
    print(f"| **floor** (before activations, copies and allocator retention) | **{floor:.0f}** ({verdict} the {args.goal:.0f} MB goal) |")


if __name__ == "__main__":
    main()
