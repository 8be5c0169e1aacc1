"""Benchmark: how long a finished window's fragment takes to reach a websocket client.

For every piece of output the sink hands over, the time from that moment
(the job thread's fragment callback, right after the sink's write returned)
to the moment the client has received its last byte. Server and client run
in one process on 127.0.0.1 (the server on its own thread and event loop,
the job on another), so both sides read the same monotonic clock.

Run from the repository root:

    python tools/bench_server.py                         # sample clip, 5 runs
    python tools/bench_server.py --runs 10 --window 8 --overlap 2 --fragment 0.25
    python tools/bench_server.py --stage-delay 0.05      # a stage that takes 50 ms per window, like a model
    python tools/bench_server.py --video V.mp4 --audio A.wav --json

Prints median and p95 latency over all fragments of all runs, the job time,
and the fragment count per run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from pathlib import Path

from websockets.asyncio.client import connect

from lipstream.pipeline.engines import ENGINES, Engine
from lipstream.server import ServerConfig, ServerThread

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 256 * 1024


class _Delay:
    name = "delay"
    device = None

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, window):
        time.sleep(self.seconds)
        return window


class Marks:
    """Sink hand-over times from the job thread, as (clock, cumulative bytes)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ends: list[tuple[float, int]] = []
        self._total = 0

    def reset(self) -> None:
        with self.lock:
            self.ends.clear()
            self._total = 0

    def __call__(self, size: int) -> None:
        now = time.perf_counter()
        with self.lock:
            self._total += size
            self.ends.append((now, self._total))


async def one_job(url: str, video: bytes, audio: bytes, options: dict) -> tuple[list[tuple[float, int]], float]:
    """Run a job; (arrival clock, cumulative bytes) of every binary message, and the job's wall time."""
    arrivals: list[tuple[float, int]] = []
    async with connect(url, max_size=None, compression=None) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        await ws.send(json.dumps({"type": "start", "video": {"size": len(video)}, "audio": {"size": len(audio)}, "options": options}))
        accepted = json.loads(await ws.recv())
        if accepted["type"] != "accepted":
            raise SystemExit(f"refused: {accepted}")
        data = video + audio
        for at in range(0, len(data), CHUNK):
            await ws.send(data[at : at + CHUNK])
        started, total = time.perf_counter(), 0
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                total += len(message)
                arrivals.append((time.perf_counter(), total))
                continue
            event = json.loads(message)
            if event["type"] == "error":
                raise SystemExit(f"job failed: {event}")
            if event["type"] == "done":
                return arrivals, time.perf_counter() - started


def latencies(ends: list[tuple[float, int]], arrivals: list[tuple[float, int]]) -> list[float]:
    """For each hand-over, seconds until the client held all bytes up to its end."""
    out, i = [], 0
    for handed, end in ends:
        while arrivals[i][1] < end:
            i += 1
        out.append(arrivals[i][0] - handed)
    return out


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=ROOT / "tests/data/sample.mp4")
    parser.add_argument("--audio", type=Path, default=ROOT / "tests/data/sample.wav")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--overlap", type=int, default=4)
    parser.add_argument("--fragment", type=float, default=0.5, help="fragment_seconds")
    parser.add_argument("--stage-delay", type=float, default=0.0, help="seconds a stand-in stage sleeps per window")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    engine = "passthrough"
    if args.stage_delay > 0:
        engine = "bench-delay"
        ENGINES[engine] = Engine(engine, "benchmark: sleeps per window", lambda config, found: [_Delay(args.stage_delay)])
    options = {"engine": engine, "window": args.window, "overlap": args.overlap, "fragment_seconds": args.fragment}
    video, audio = args.video.read_bytes(), args.audio.read_bytes()
    marks = Marks()
    all_latencies: list[float] = []
    runs = []
    with ServerThread(ServerConfig(port=0), observe=marks) as running:
        for _ in range(args.runs):
            marks.reset()
            arrivals, took = asyncio.run(one_job(running.ws_url, video, audio, options))
            with marks.lock:
                ends = list(marks.ends)
            found = latencies(ends, arrivals)
            all_latencies += found
            runs.append({"seconds": round(took, 3), "fragments": len(ends), "bytes": ends[-1][1] if ends else 0})
    result = {
        "options": options,
        "fragments": len(all_latencies),
        "median_ms": round(statistics.median(all_latencies) * 1000, 3),
        "p95_ms": round(percentile(all_latencies, 0.95) * 1000, 3),
        "max_ms": round(max(all_latencies) * 1000, 3),
        "runs": runs,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['fragments']} fragments over {args.runs} runs of {args.video.name} with {options}")
        print(f"sink hand-over -> client: median {result['median_ms']:.2f} ms, p95 {result['p95_ms']:.2f} ms, max {result['max_ms']:.2f} ms")
        print("jobs: " + ", ".join(f"{r['seconds']:.2f} s / {r['fragments']} fragments" for r in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
