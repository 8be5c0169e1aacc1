"""Benchmark and acceptance report for the embedded lip engine (`--engine warp`; not part of the test suite).

    python tools/bench_warp.py [--media ../shared/media] [--out bench_warp] [--skip-timing]

Runs on demo1 and demo2 (1080x1920 HEVC) with their new audio:
  * wall and CPU time of the whole job, warp vs passthrough (separate processes, best of --repeat);
  * lip-sync r (FaceMesh re-detected on the OUTPUT, band-passed 1-8 Hz, mouth leading 0-200 ms)
    for the input video and the output, and the silence/speech opening ratio;
  * PSNR outside the face box of the warp output against the passthrough output;
  * a contact sheet PNG of input/output face crops (`<out>/contact_<demo>.png`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from bench import measure  # tools/ is the script's folder, so its sibling imports directly

HERE = Path(__file__).resolve().parent


def run_job(engine: str, video: Path, audio: Path, out: Path) -> None:
    from lipstream.config import SyncConfig
    from lipstream.pipeline.jobs.sync import run_sync

    asyncio.run(run_sync(video, audio, out, SyncConfig(engine=engine)))


def face_boxes(path: Path, grow: float = 0.4) -> list[tuple[int, int, int, int] | None]:
    """Per frame, the landmark box grown by `grow` of its size on each side (the face crop's margin)."""
    from lipstream.pipeline.faces.stage import FaceTracker
    from lipstream.config import FaceConfig
    from lipstream.pipeline.metrics.lipsync_metric import decode_rgb
    from lipstream.stream.frames import Frame

    tracker = FaceTracker(FaceConfig())
    boxes: list[tuple[int, int, int, int] | None] = []
    for i, (_, rgb) in enumerate(decode_rgb(path)):
        o = tracker.observe(Frame(i, i, Fraction(1, 25), i, image=rgb))
        if o is None:
            boxes.append(None)
            continue
        x0, y0, x1, y1 = o.box
        mx, my = grow * (x1 - x0), grow * (y1 - y0)
        boxes.append((int(x0 - mx), int(y0 - my), int(np.ceil(x1 + mx)), int(np.ceil(y1 + my))))
    return boxes


def psnr_outside_faces(warp: Path, passthrough: Path, boxes: list) -> float:
    """PSNR over every pixel outside the face boxes, all frames pooled."""
    from lipstream.pipeline.metrics.lipsync_metric import decode_rgb, outside_box

    total, count = 0.0, 0
    for (_, a), (_, b), box in zip(decode_rgb(warp), decode_rgb(passthrough), boxes):
        keep = outside_box(a.shape, box) if box is not None else np.ones(a.shape[:2], bool)
        d = a.astype(np.float64)[keep] - b.astype(np.float64)[keep]
        total += float((d * d).sum())
        count += d.size
    mse = total / max(count, 1)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def contact_sheet(video: Path, output: Path, boxes: list, path: Path, count: int = 8, tile: int = 256) -> None:
    """Input (top) and output (bottom) face crops at `count` evenly spaced frames."""
    from lipstream.pipeline.metrics.lipsync_metric import decode_rgb

    usable = [i for i, b in enumerate(boxes) if b is not None]
    picks = set(np.array(usable)[np.linspace(0, len(usable) - 1, count).astype(int)].tolist()) if usable else set()
    columns = []
    for i, ((t, a), (_, b)) in enumerate(zip(decode_rgb(video), decode_rgb(output))):
        if i not in picks:
            continue
        x0, y0, x1, y1 = boxes[i]
        x0, y0 = max(x0, 0), max(y0, 0)
        pair = [cv2.resize(img[y0:y1, x0:x1], (tile, int(tile * (y1 - y0) / max(x1 - x0, 1)))) for img in (a, b)]
        height = min(p.shape[0] for p in pair)
        col = np.vstack([p[:height] for p in pair])
        cv2.putText(col, f"{t:.2f}s", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
        columns.append(col)
    if columns:
        height = min(c.shape[0] for c in columns)
        sheet = np.hstack([c[:height] for c in columns])
        cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def quality(name: str, media: Path, out: Path, warp: Path, passthrough: Path) -> list[str]:
    from lipstream.pipeline.metrics.lipsync_metric import lipsync_score, read_audio, silence_ratio, video_openings

    video, audio = media / f"{name}_video.mp4", media / f"{name}_audio.wav"
    samples = read_audio(audio)
    rows = []
    for label, path in (("input video", passthrough), ("warp output", warp)):
        times, openings = video_openings(path)
        score = lipsync_score(openings, times, samples, 16000)
        ratio = silence_ratio(openings, times, samples, 16000)
        rows.append(f"| {name} | {label} | {score.r:.3f} | {score.lead * 1000:.0f} | {score.found:.0%} | {ratio:.2f} |")
    boxes = face_boxes(passthrough)
    rows.append(f"| {name} | PSNR outside face box vs passthrough | {psnr_outside_faces(warp, passthrough, boxes):.1f} dB | | | |")
    contact_sheet(passthrough, warp, boxes, out / f"contact_{name}.png")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="benchmark of the embedded lip engine")
    parser.add_argument("--media", type=Path, default=HERE.parent.parent / "shared" / "media")
    parser.add_argument("--out", type=Path, default=Path("bench_warp"))
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per engine; the fastest counts")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--run", nargs=4, metavar=("ENGINE", "VIDEO", "AUDIO", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        engine, video, audio, out = args.run
        run_job(engine, Path(video), Path(audio), Path(out))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    lines = ["| video | run | r | lead ms | face found | silence/speech opening |", "|---|---|---|---|---|---|"]
    timing = ["| run (demo2, 1080x1920, 20 s) | wall s | CPU s | peak RSS MB |", "|---|---|---|---|"]
    walls: dict[str, tuple[float, float]] = {}
    for name in ("demo1", "demo2"):
        video, audio = args.media / f"{name}_video.mp4", args.media / f"{name}_audio.wav"
        outputs = {}
        for engine in ("passthrough", "warp"):
            outputs[engine] = args.out / f"{name}_{engine}.mp4"
            cmd = [sys.executable, __file__, "--run", engine, str(video), str(audio), str(outputs[engine])]
            runs = 1 if (args.skip_timing or name != "demo2") else args.repeat
            wall, cpu, rss = min((measure(cmd) for _ in range(runs)), key=lambda r: r[0])
            if name == "demo2":
                walls[engine] = (wall, cpu)
                timing.append(f"| {engine} | {wall:.2f} | {cpu:.2f} | {rss:.0f} |")
        lines += quality(name, args.media, args.out, outputs["warp"], outputs["passthrough"])
    wall_ratio = walls["warp"][0] / walls["passthrough"][0]
    cpu_ratio = walls["warp"][1] / walls["passthrough"][1]
    report = "\n".join(timing) + f"\n\nwarp / passthrough: wall {wall_ratio:.3f}, CPU {cpu_ratio:.3f} (goal <= 1.25)\n\n"
    report += "\n".join(lines) + f"\n\ncontact sheets: {args.out}/contact_demo1.png, {args.out}/contact_demo2.png\n"
    sys.stdout.write(report)


if __name__ == "__main__":
    main()
