"""The `lipstream` command line: argument parsing, exit codes, progress display.

Exit codes: 0 success, 2 bad usage or input (one line on stderr naming the
problem and the fix), 1 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import BinaryIO, NoReturn, Sequence

from lipstream import __version__
from lipstream.config import EncodeConfig, SyncConfig, WindowConfig
from lipstream.console import Console
from lipstream.errors import InputError, LipstreamError
from lipstream.pipeline.engines import ENGINES
from lipstream.stream.timeline import FITS

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"lipstream: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_INPUT)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lipstream", description="Streaming lip-sync: re-animate a speaker's mouth to new audio.")
    parser.add_argument("--version", action="version", version=f"lipstream {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (repeat for debug)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sync = commands.add_parser("sync", help="lip-sync VIDEO to AUDIO", description="Re-animate the speaker in VIDEO to AUDIO.")
    sync.add_argument("video", help="talking-head video file, or - for stdin")
    sync.add_argument("audio", help="new speech (any audio FFmpeg reads), or - for stdin")
    sync.add_argument("-o", "--output", required=True, help="output file (.mp4 .mov .mkv .ts), or - for stdout")
    sync.add_argument("--engine", default="passthrough", choices=sorted(ENGINES), help="lip engine (default: %(default)s)")
    sync.add_argument("--fit", default="audio", choices=FITS, help="output length follows the audio (default), the video, or the shorter")
    sync.add_argument("--window", type=_positive, default=WindowConfig.size, help="frames per window (default: %(default)s)")
    sync.add_argument("--overlap", type=_non_negative, default=WindowConfig.overlap, help="frames shared by neighbouring windows (default: %(default)s)")
    sync.add_argument("--format", dest="container", default="mp4", choices=("mp4", "mkv"), help="container when writing to stdout (default: fragmented mp4)")
    sync.add_argument("--preset", default=EncodeConfig.preset, help="libx264 preset (default: %(default)s)")
    sync.add_argument("--crf", type=int, default=EncodeConfig.crf, help="libx264 quality, lower is better (default: %(default)s)")
    sync.add_argument("--device", default="cpu", help="torch device for model stages, e.g. cuda:0 (default: %(default)s)")
    sync.add_argument("--json", action="store_true", help="JSON lines on stderr instead of a progress bar")
    sync.set_defaults(handler=_sync)
    return parser


def _stdin() -> BinaryIO:
    return sys.stdin.buffer


def _sync(args: argparse.Namespace, console: Console) -> int:
    from lipstream.pipeline.job import run_sync

    if args.video == "-" and args.audio == "-":
        raise InputError("VIDEO and AUDIO cannot both be stdin; pass one of them as a file")
    if args.overlap >= args.window:
        raise InputError(f"--overlap ({args.overlap}) must be smaller than --window ({args.window})")
    config = SyncConfig(
        engine=args.engine,
        fit=args.fit,
        device=args.device,
        window=WindowConfig(size=args.window, overlap=args.overlap),
        encode=EncodeConfig(preset=args.preset, crf=args.crf, container=args.container),
    )
    video = _stdin() if args.video == "-" else Path(args.video)
    audio = _stdin() if args.audio == "-" else Path(args.audio)
    output = sys.stdout.buffer if args.output == "-" else Path(args.output)
    result = asyncio.run(run_sync(video, audio, output, config, on_progress=console.progress))
    where = "stdout" if result.output is None else str(result.output)
    console.done(
        {"frames": result.frames, "video_duration": float(result.video_duration), "audio_duration": float(result.audio_duration), "output": where},
        f"wrote {result.frames} frames ({float(result.video_duration):.2f} s) to {where}",
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
        format="lipstream: %(levelname)s: %(name)s: %(message)s",
        stream=sys.stderr,
    )
    console = Console(json_lines=getattr(args, "json", False))
    try:
        return args.handler(args, console)
    except InputError as exc:
        console.error(str(exc))
        return EXIT_INPUT
    except LipstreamError as exc:
        console.error(str(exc))
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        console.error("interrupted; no output was kept")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        console.error("the reader of stdout went away; output stopped")
        return EXIT_INTERNAL
    except Exception as exc:  # a bug: one line for the user, the traceback with -v
        logging.getLogger("lipstream").debug("internal error", exc_info=True)
        console.error(f"internal error: {exc!r} (run with -vv for the traceback and please report it)")
        return EXIT_INTERNAL
