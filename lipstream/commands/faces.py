"""`lipstream faces VIDEO`: show how the target speaker is found and followed."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from lipstream.config import WindowConfig
from lipstream.console import Console
from lipstream.errors import InputError
from lipstream.stream.frames import Frame

from ._args import add_face_options, face_config


def add_parser(commands: argparse._SubParsersAction) -> None:
    faces = commands.add_parser("faces", help="report the tracked target per frame", description="Find and follow the target speaker; print one JSON line per frame on stdout.")
    faces.add_argument("video", help="video file, or - for stdin")
    faces.add_argument("--overlay", type=Path, help="also write the video with boxes, crop and lip points drawn")
    faces.add_argument("--points", action="store_true", help="include the 468 landmarks (frame pixels) per frame")
    add_face_options(faces)
    faces.add_argument("--weights", type=Path, action="append", default=[], metavar="DIR", help="folder with the checkpoints of --detector/--landmarks (repeatable)")
    faces.add_argument("--device", default="cpu", help="torch device for --detector/--landmarks networks (default: %(default)s)")
    faces.add_argument("--json", action="store_true", help="progress as JSON lines on stderr")
    faces.set_defaults(handler=run)


def record(frame: Frame, landmarks: bool) -> dict[str, object]:
    face = frame.face
    data: dict[str, object] = {"frame": frame.index, "time": round(float(frame.time), 6), "present": face is not None}
    if face is not None:
        data.update(
            box=[round(v, 2) for v in face.box],
            crop=list(face.crop),
            presence=round(face.presence, 4),
            weight=round(face.weight, 3),
            small=face.small,
        )
        if landmarks and face.landmarks is not None:
            data["landmarks"] = [[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks[:, :2]]
    return data


def run(args: argparse.Namespace, console: Console) -> int:
    from lipstream.pipeline.jobs.faces import run_faces

    if args.overlay is not None and args.video != "-" and not Path(args.video).exists():
        raise InputError(f"video file not found: {args.video} (check the path)")
    video = sys.stdin.buffer if args.video == "-" else Path(args.video)
    out = sys.stdout
    stats = {"frames": 0, "present": 0}

    def on_frame(frame: Frame) -> None:
        stats["frames"] += 1
        stats["present"] += frame.face is not None
        out.write(json.dumps(record(frame, args.points), separators=(",", ":")) + "\n")

    asyncio.run(
        run_faces(
            video, on_frame, face=face_config(args), window=WindowConfig(), overlay=args.overlay,
            device=args.device, weights=tuple(args.weights), on_progress=console.progress,
        )
    )
    out.flush()
    share = stats["present"] / max(stats["frames"], 1)
    console.done({**stats, "overlay": str(args.overlay) if args.overlay else None}, f"target present on {stats['present']}/{stats['frames']} frames ({share:.1%})")
    return 0
