"""`lipstream sync VIDEO AUDIO -o OUT`: the lip-sync job."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from lipstream.config import ENHANCES, FITS, QUALITIES, EncodeConfig, SyncConfig, WindowConfig
from lipstream.console import Console
from lipstream.errors import InputError
from lipstream.pipeline.engines import AUTO, ENGINES

from ._args import add_face_options, face_config, non_negative, positive


def add_parser(commands: argparse._SubParsersAction) -> None:
    sync = commands.add_parser("sync", help="lip-sync VIDEO to AUDIO", description="Re-animate the speaker in VIDEO to AUDIO.")
    sync.add_argument("video", help="talking-head video file, or - for stdin")
    sync.add_argument("audio", help="new speech (any audio FFmpeg reads), or - for stdin")
    sync.add_argument("-o", "--output", required=True, help="output file (.mp4 .mov .mkv .ts), or - for stdout")
    sync.add_argument("--engine", default=AUTO, choices=sorted([AUTO, *ENGINES]), help="lip engine; auto takes the best one whose checkpoints are found, else warp (default: %(default)s)")
    sync.add_argument("--fit", default="audio", choices=FITS, help="output length follows the audio (default), the video, or the shorter")
    sync.add_argument("--window", type=positive, default=WindowConfig.size, help="frames per window (default: %(default)s)")
    sync.add_argument("--overlap", type=non_negative, default=WindowConfig.overlap, help="frames shared by neighbouring windows (default: %(default)s)")
    sync.add_argument("--format", dest="container", default="mp4", choices=("mp4", "mkv"), help="container when writing to stdout (default: fragmented mp4)")
    sync.add_argument("--preset", default=EncodeConfig.preset, help="libx264 preset (default: %(default)s)")
    sync.add_argument("--crf", type=int, default=EncodeConfig.crf, help="libx264 quality, lower is better (default: %(default)s)")
    sync.add_argument("--tune", choices=("zerolatency", "film", "animation"), help="libx264 tune; zerolatency makes streamed output start sooner")
    sync.add_argument("--device", default="cpu", help="torch device for model stages, e.g. cuda:0 (default: %(default)s)")
    sync.add_argument("--weights", type=Path, action="append", default=[], metavar="DIR", help="folder with checkpoints, searched before $LIPSTREAM_WEIGHTS and the cache (repeatable)")
    sync.add_argument("--quality", choices=QUALITIES, default="balanced", help="retalking: fast generates at reduced size and rate (~3-4x faster); best is VideoReTalking's recipe (GPEN references, GFPGAN mouth; needs their checkpoints)")
    sync.add_argument("--enhance", choices=ENHANCES, default="auto", help="restore the re-drawn mouth with GPEN-BFR-512 or GFPGAN (wav2lip, retalking; needs the checkpoint and ParseNet-latest.pth); auto: GFPGAN for retalking best, else none")
    add_face_options(sync)
    sync.add_argument("--json", action="store_true", help="JSON lines on stderr instead of a progress bar")
    sync.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from lipstream.pipeline.jobs.sync import run_sync

    if args.video == "-" and args.audio == "-":
        raise InputError("VIDEO and AUDIO cannot both be stdin; pass one of them as a file")
    config = SyncConfig(
        engine=args.engine,
        fit=args.fit,
        device=args.device,
        weights=tuple(args.weights),
        quality=args.quality,
        enhance=args.enhance,
        window=WindowConfig(size=args.window, overlap=args.overlap),
        encode=EncodeConfig(preset=args.preset, crf=args.crf, tune=args.tune, container=args.container),
        face=face_config(args),
    )
    video = sys.stdin.buffer if args.video == "-" else Path(args.video)
    audio = sys.stdin.buffer if args.audio == "-" else Path(args.audio)
    output = sys.stdout.buffer if args.output == "-" else Path(args.output)
    result = asyncio.run(run_sync(video, audio, output, config, on_progress=console.progress))
    where = "stdout" if result.output is None else str(result.output)
    console.done(
        {
            "frames": result.frames,
            "video_duration": float(result.video_duration),
            "audio_duration": float(result.audio_duration),
            "output": where,
            "engine": result.engine,
            "checkpoints": result.checkpoints,
            **result.stats,
        },
        f"wrote {result.frames} frames ({float(result.video_duration):.2f} s) to {where} with the {result.engine} engine",
    )
    return 0
