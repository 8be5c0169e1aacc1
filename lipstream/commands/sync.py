"""`lipstream sync VIDEO AUDIO -o OUT`: the lip-sync job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lipstream import interrupt
from lipstream.config import ENHANCES, FITS, PRECISIONS, QUALITIES, VIDEO_CODECS, EncodeConfig, SegmentConfig, SyncConfig, WindowConfig
from lipstream.console import Console
from lipstream.errors import InputError, Interrupted, OutputError
from lipstream.pipeline.engines import AUTO, ENGINES

from ._args import add_face_options, add_ray_options, bit_rate, face_config, non_negative, positive, ray_options, seconds


def add_parser(commands: argparse._SubParsersAction) -> None:
    sync = commands.add_parser("sync", help="lip-sync VIDEO to AUDIO", description="Re-animate the speaker in VIDEO to AUDIO.")
    sync.add_argument("video", help="talking-head video file, or - for stdin")
    sync.add_argument("audio", help="new speech (any audio FFmpeg reads), or - for stdin")
    sync.add_argument("-o", "--output", required=True, help="output file (.mp4 .mov .mkv .ts), or - for stdout")
    sync.add_argument("--engine", default=AUTO, choices=sorted([AUTO, *ENGINES]), help="lip engine; auto takes the best one whose checkpoints are found, else warp (default: %(default)s)")
    sync.add_argument("--fit", default="audio", choices=FITS, help="output length follows the audio (default), the video, or the shorter")
    sync.add_argument("--window", type=positive, default=WindowConfig.size, help="frames per window (default: %(default)s)")
    sync.add_argument("--overlap", type=non_negative, default=WindowConfig.overlap, help="frames shared by neighbouring windows (default: %(default)s)")
    sync.add_argument("--in-flight", type=positive, default=None, metavar="N", help="windows between decoder and encoder at once: memory is about N x window pictures; more keeps more cores busy (default: 2, plus 1 per model stage on a GPU, or on a CPU with more than 4 cores)")
    sync.add_argument("--format", dest="container", default="mp4", choices=("mp4", "mkv"), help="container when writing to stdout (default: fragmented mp4)")
    sync.add_argument("--codec", default="auto", choices=VIDEO_CODECS, help="output video codec; auto keeps HEVC as HEVC, else H.264 (default: %(default)s)")
    sync.add_argument("--preset", default=None, help="x264/x265 preset (default: veryfast for h264, ultrafast for hevc)")
    sync.add_argument("--crf", type=int, default=None, help="quality, lower is better, 0 lossless (default: near the input's size: h264 20, hevc 24, capped at the input's bitrate)")
    sync.add_argument("--bitrate", type=bit_rate, default=None, help="video bits/s, e.g. 800k or 2M; with --crf a cap (default: near the input's)")
    sync.add_argument("--tune", choices=("zerolatency", "film", "animation"), help="encoder tune; zerolatency makes streamed output start sooner")
    sync.add_argument("--resume", action="store_true", help="continue an interrupted run for OUT from its finished segments, and keep them if this run stops too")
    sync.add_argument("--segment", type=seconds, default=SegmentConfig.seconds, metavar="SECONDS", help="output seconds per independently processed segment: what a killed --resume run can lose (default: %(default)s)")
    sync.add_argument("--strict", action="store_true", help="exit 2 instead of warning when no target face is found anywhere")
    sync.add_argument("--device", default="cpu", help="torch device for model stages, e.g. cuda:0 (default: %(default)s)")
    sync.add_argument("--weights", type=Path, action="append", default=[], metavar="DIR", help="folder with checkpoints, searched before $LIPSTREAM_WEIGHTS and the cache (repeatable)")
    sync.add_argument("--quality", choices=QUALITIES, default="balanced", help="retalking: fast generates at reduced size and rate (~3-4x faster); best is VideoReTalking's recipe (GPEN references, GFPGAN mouth; needs their checkpoints)")
    sync.add_argument("--enhance", choices=ENHANCES, default="auto", help="restore the re-drawn mouth with GPEN-BFR-512 or GFPGAN (wav2lip, retalking; needs the checkpoint and ParseNet-latest.pth); auto: GFPGAN for retalking best, else none")
    sync.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto: float16 on CUDA, bfloat16 on CPUs that have it, for the networks measured to stay within 1-2 levels (wav2lip, GPEN); float32: full precision everywhere (default: %(default)s)")
    add_face_options(sync)
    add_ray_options(sync, "the segments")
    sync.add_argument("--json", action="store_true", help="JSON lines on stderr instead of a progress bar")
    sync.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from lipstream.pipeline.jobs.sync import run_sync

    if args.video == "-" and args.audio == "-":
        raise InputError("VIDEO and AUDIO cannot both be stdin; pass one of them as a file")
    if args.output == "-" and sys.stdout is None:
        raise OutputError("standard output is closed, so -o - has nowhere to write; redirect it to a file or pipe, or use -o FILE")
    if (args.video == "-" or args.audio == "-") and sys.stdin is None:
        raise InputError("standard input is closed, so - has nothing to read; pass a file")
    config = SyncConfig(
        engine=args.engine,
        fit=args.fit,
        device=args.device,
        weights=tuple(args.weights),
        quality=args.quality,
        enhance=args.enhance,
        precision=args.precision,
        window=WindowConfig(size=args.window, overlap=args.overlap, in_flight=args.in_flight),
        encode=EncodeConfig(codec=args.codec, preset=args.preset, crf=args.crf, bitrate=args.bitrate, tune=args.tune, container=args.container),
        face=face_config(args),
        segment=SegmentConfig(seconds=args.segment),
        resume=args.resume,
        strict=args.strict,
    )
    video = sys.stdin.buffer if args.video == "-" else Path(args.video)
    audio = sys.stdin.buffer if args.audio == "-" else Path(args.audio)
    output = sys.stdout.buffer if args.output == "-" else Path(args.output)
    farm = None
    if args.ray is not None:
        from lipstream.pipeline.jobs.ray_farm import RayFarm, connect

        options = ray_options(args)
        connect(options)  # a missing extra or an unreachable address is one line before any work
        farm = RayFarm(options)
    try:
        result = interrupt.run(run_sync(video, audio, output, config, on_progress=console.progress, farm=farm))
    except Interrupted as exc:
        if args.resume:
            kept = "the finished segments are kept: run the same command with --resume to continue"
        else:
            kept = "the output on stdout is incomplete" if args.output == "-" else "no output was kept"
        raise Interrupted(exc.signum, f"{exc}; {kept}") from None
    where = "stdout" if result.output is None else str(result.output)
    for note in result.notes:
        console.warn(note, "note")
    for warning in result.warnings:
        console.warn(warning)
    share = round(result.reanimated / result.frames, 4) if result.frames else 0.0
    resumed = f", {result.resumed} of {result.segments} segments resumed" if result.resumed else ""
    console.done(
        {
            "frames": result.frames,
            "video_duration": float(result.video_duration),
            "audio_duration": float(result.audio_duration),
            "output": where,
            "engine": result.engine,
            "checkpoints": result.checkpoints,
            "damaged_frames": result.damaged_frames,
            "reanimated": share,
            "face_frames": round(result.faces / result.frames, 4) if result.tracked and result.frames else None,
            "segments": result.segments,
            "resumed_segments": result.resumed,
            **result.stats,
        },
        f"wrote {result.frames} frames ({float(result.video_duration):.2f} s) to {where} with the {result.engine} engine"
        f" ({share:.0%} re-animated{resumed})",
    )
    return 0
