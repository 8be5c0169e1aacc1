"""Benchmark: live mode as a voice agent uses it, speech replayed in real time.

Starts the installed CLI (`lipstream live --face FACE --port 0 --json`),
connects `--sessions` clients to /live and replays speech into each at
real time, in 20 ms chunks, as utterances separated by pauses (so every
utterance starts from the idle face). Measures, per session:

- frames received per second and the longest gap between frames,
- frames dropped: drawn too late (server), skipped (not pulled in time),
  dropped for a slow client;
- audio in to first frame out, per utterance: from sending its first chunk
  to receiving the first frame that plays it (raw format: the first frame
  whose audio is not silent);
- per-chunk latency p95, as the server measured it (push to the frame that
  plays the chunk's first sample);
- the server's draw time per frame, peak RSS and CPU use.

Run from the repository root (the face is prepared once and cached):

    python tools/bench_live.py                                 # demo1 face, 60 s, exemplar, 512x512
    python tools/bench_live.py --engine warp --seconds 20 --sessions 2
    python tools/bench_live.py --format fmp4 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect

from lipstream.pipeline.metrics.lipsync_metric import read_audio
from lipstream.server.live_protocol import HEADER

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
RATE = 16000
CHUNK = 320  # 20 ms


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    command = ["lipstream", "live", "--face", str(args.face), "--engine", args.engine, "--size", str(args.size),
               "--port", "0", "--json", "--max-sessions", str(max(args.sessions, 1)), "--device", args.device]
    if args.weights:
        command += ["--weights", str(args.weights)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while True:
        ready, _, _ = select.select([process.stderr], [], [], 300)
        line = process.stderr.readline() if ready else ""
        if not line:
            process.kill()
            raise SystemExit("the live server did not start")
        event = json.loads(line)
        if event.get("event") == "listening":
            return process, event["websocket"]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def session(url: str, speech: np.ndarray, args: argparse.Namespace) -> dict:
    async with connect(url, max_size=None) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "start", "format": args.format}))
        utterances: list[float] = []  # send time of each utterance's first chunk
        first_frames: list[float] = []
        arrivals: list[float] = []
        stats: dict = {}
        done = asyncio.Event()

        async def feed() -> None:
            await asyncio.sleep(1.0)
            start = time.monotonic()
            at = 0
            clock = 0.0  # seconds of stream time since start (speech and pauses)
            while clock < args.seconds:
                length = min(int(args.utterance * RATE), int((args.seconds - clock) * RATE))
                voiced = at + int(np.argmax(np.abs(speech[at:]) > 300))  # each utterance starts on its first sound
                piece = speech[voiced : voiced + length] if voiced + length <= len(speech) else np.resize(speech, length)
                at = (voiced + length) % max(len(speech) - length, 1)
                for k in range(0, len(piece), CHUNK):
                    await asyncio.sleep(max(0.0, start + clock + k / RATE - time.monotonic()))
                    if k == 0:
                        utterances.append(time.monotonic())
                    await ws.send(piece[k : k + CHUNK].tobytes())
                clock += len(piece) / RATE + args.pause
            await asyncio.sleep(max(0.0, start + clock - time.monotonic()) + 0.5)
            done.set()

        feeder = asyncio.create_task(feed())
        waiting_first = 0
        quiet = 100  # consecutive silent frames: after 10 (0.4 s) the next sound starts an utterance
        while not done.is_set():
            try:
                message = await asyncio.wait_for(ws.recv(), 0.5)
            except asyncio.TimeoutError:
                continue
            now = time.monotonic()
            if isinstance(message, str):
                data = json.loads(message)
                if data["type"] == "stats":
                    stats = data
                continue
            kind = message[:1]
            if kind == b"v":
                arrivals.append(now)
            elif kind == b"a" and args.format == "i420":
                loud = bool(np.abs(np.frombuffer(message[HEADER.size :], np.int16)).max() > 300)
                if loud and quiet >= 10 and waiting_first < len(utterances):
                    first_frames.append(now - utterances[waiting_first])
                    waiting_first += 1
                quiet = 0 if loud else quiet + 1
        await feeder
        await ws.send('{"type": "stop"}')
        async for message in ws:
            if isinstance(message, str) and json.loads(message)["type"] == "stopped":
                stats = json.loads(message)
    gaps = np.diff(arrivals) if len(arrivals) > 1 else np.zeros(1)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    return {
        "frames": len(arrivals),
        "fps": round((len(arrivals) - 1) / span, 2),
        "max_gap_ms": round(1000 * float(gaps.max()), 1),
        "first_frame_ms": [round(1000 * x) for x in first_frames],
        "server": stats,
    }


async def main_async(args: argparse.Namespace, url: str) -> list[dict]:
    speech = (np.clip(read_audio(args.audio, RATE), -1, 1) * 32767).astype(np.int16)
    return await asyncio.gather(*(session(url, speech, args) for _ in range(args.sessions)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--face", type=Path, default=MEDIA / "demo1_video.mp4")
    parser.add_argument("--audio", type=Path, default=MEDIA / "demo1_audio.wav")
    parser.add_argument("--engine", default="exemplar", choices=("exemplar", "warp", "wav2lip"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", type=Path, help="checkpoint folder (wav2lip; else $LIPSTREAM_WEIGHTS)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=60.0, help="stream time replayed per session (speech and pauses)")
    parser.add_argument("--utterance", type=float, default=8.0, help="seconds of speech per utterance")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds of silence between utterances")
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--format", default="i420", choices=("i420", "fmp4"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    process, url = start_server(args)
    try:
        cpu0, wall0 = cpu_seconds(process.pid), time.monotonic()
        results = asyncio.run(main_async(args, url))
        cpu = (cpu_seconds(process.pid) - cpu0) / (time.monotonic() - wall0)
        rss = peak_rss_mb(process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
    summary = {"engine": args.engine, "size": args.size, "format": args.format, "seconds": args.seconds, "sessions": results,
               "server_peak_rss_mb": round(rss), "server_cpu_cores": round(cpu, 2)}
    if args.json:
        print(json.dumps(summary))
        return
    print(f"live: {args.engine}, {args.size}x{args.size}, {args.format}, {args.seconds:g} s per session, {args.sessions} session(s)")
    print(f"server: peak RSS {rss:.0f} MB, CPU {cpu:.2f} cores")
    for k, r in enumerate(results):
        s = r["server"]
        firsts = r["first_frame_ms"]
        print(
            f"session {k}: {r['frames']} frames, {r['fps']} fps, longest gap {r['max_gap_ms']} ms; "
            f"dropped {s.get('dropped')} / skipped {s.get('skipped')} / slow-client {s.get('send_dropped')}; "
            f"draw {s.get('draw_ms')} ms/frame; chunk latency p95 {1000 * s.get('latency_p95', 0):.0f} ms; "
            f"first frame per utterance (client) {firsts} ms, max {max(firsts) if firsts else '-'}; "
            f"(server) max {1000 * s.get('first_frame_latency', 0):.0f} ms"
        )


if __name__ == "__main__":
    sys.exit(main())
