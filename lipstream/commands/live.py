"""`lipstream live`: a face that speaks live audio, served over a websocket with a page to watch it."""

from __future__ import annotations

import argparse
from pathlib import Path

from lipstream.console import Console

from ._args import positive
from .serve import add_server_arguments, serve_until_stopped, server_config


def add_parser(commands: argparse._SubParsersAction) -> None:
    live = commands.add_parser(
        "live",
        help="serve a face that lip-syncs live speech (voice agents, live dubbing)",
        description=(
            "Prepare a face once (cached), then serve live sessions at ws://HOST:PORT/live: clients send 16 kHz mono "
            "s16le speech as it is spoken and receive the face's frames (fMP4 or raw I420) with the same audio; "
            "between utterances the face idles. A page to watch it is at /live. Lip-sync jobs stay at /ws."
        ),
    )
    live.add_argument("--face", type=Path, required=True, metavar="VIDEO_OR_IMAGE", help="the speaker: a video (its first --loop seconds are the idle loop) or an image")
    live.add_argument("--engine", choices=("auto", "exemplar", "warp", "wav2lip"), default="auto",
                      help="mouth engine (default: auto = wav2lip on a CUDA --device when its checkpoint is found, else exemplar)")
    live.add_argument("--size", type=positive, default=512, help="output side in pixels; the face's square crop is scaled to it (default: %(default)s)")
    live.add_argument("--fps", type=positive, default=25, help="output frame rate (default: %(default)s)")
    live.add_argument("--loop", type=float, default=8.0, metavar="SECONDS", help="seconds of the face video the face idles on (default: %(default)s)")
    live.add_argument("--delay", type=float, metavar="SECONDS",
                      help="speech starts this long after it arrives: the jitter buffer (default: what the engine reads ahead + 34 ms: 0.16 for exemplar/warp, 0.32 for wav2lip)")
    live.add_argument("--max-sessions", type=positive, default=4, help="live sessions at once (default: %(default)s)")
    add_server_arguments(live)
    live.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from lipstream.errors import InputError
    from lipstream.pipeline.live import FaceOptions, LiveConfig
    from lipstream.server.limits import LiveSetup

    if not args.face.is_file():
        raise InputError(f"face file not found: {args.face} (check the path)")
    if args.size % 2:
        raise InputError(f"--size {args.size} must be even (4:2:0 video)")
    options = FaceOptions(size=args.size, fps=args.fps, loop_seconds=args.loop)
    config = LiveConfig(engine=_engine(args), delay=args.delay)
    if config.engine == "wav2lip":  # before the face is prepared: a missing checkpoint is said at once
        from lipstream.pipeline.engines import ENGINES
        from lipstream.pipeline.engines.base import resolve

        resolve(ENGINES["wav2lip"], args.weights)
    setup = LiveSetup(args.face.resolve(), options, config, max_sessions=args.max_sessions)
    if console.json:
        console.emit({"event": "preparing", "face": str(args.face)})
    else:
        console.stream.write(f"preparing the face in {args.face} (cached after the first time)\n")
    return serve_until_stopped(server_config(args, live=setup), console, "/live")


def _engine(args: argparse.Namespace) -> str:
    """`auto`: wav2lip where it keeps real time (a CUDA device) and its checkpoint is found, else exemplar."""
    if args.engine != "auto":
        return args.engine
    from lipstream.pipeline.engines import ENGINES
    from lipstream.pipeline.engines.base import missing_requirements

    if args.device.startswith("cuda") and not missing_requirements(ENGINES["wav2lip"], args.weights):
        return "wav2lip"
    return "exemplar"
