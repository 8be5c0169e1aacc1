"""`lipstream serve`: the websocket server with a progressive preview page."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lipstream.console import Console
from lipstream.errors import InputError

from ._args import positive

if TYPE_CHECKING:
    from lipstream.server import ServerConfig


def add_parser(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the lip-sync pipeline over a websocket, with a preview page",
        description="Serve lip-sync jobs over a websocket at /ws and a page at / that previews the result while it is made.",
    )
    add_server_arguments(serve)
    serve.set_defaults(handler=run)


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every server command takes (`serve`, `live`)."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s; use 0.0.0.0 with --token)")
    parser.add_argument("--port", type=int, default=8765, help="port, 0 for any free one (default: %(default)s)")
    parser.add_argument("--token", default=os.environ.get("LIPSTREAM_TOKEN"), help="bearer token clients must send (default: $LIPSTREAM_TOKEN; none: open)")
    parser.add_argument("--max-upload-mb", type=positive, default=512, help="largest video + audio upload per job, MiB (default: %(default)s)")
    parser.add_argument("--max-jobs", type=positive, default=1, help="jobs running at once; others wait in line (default: %(default)s)")
    parser.add_argument("--root", type=Path, help="folder whose files clients may name instead of uploading (default: uploads only)")
    parser.add_argument("--origin", action="append", default=[], help="also accept websockets from this page origin, e.g. https://app.example (repeatable)")
    parser.add_argument("--device", default="cpu", help="torch device for model stages, e.g. cuda:0 (default: %(default)s)")
    parser.add_argument("--weights", type=Path, action="append", default=[], metavar="DIR", help="folder with checkpoints, searched before $LIPSTREAM_WEIGHTS and the cache (repeatable)")
    parser.add_argument("--json", action="store_true", help="JSON lines on stderr")


def run(args: argparse.Namespace, console: Console) -> int:
    return serve_until_stopped(server_config(args), console)


def server_config(args: argparse.Namespace, **extra: Any) -> ServerConfig:
    """The ServerConfig of the common server options (plus `extra` fields)."""
    from lipstream.server import ServerConfig

    if args.root is not None and not args.root.is_dir():
        raise InputError(f"--root {args.root} is not a folder; pass an existing folder")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port} is not a port number (0-65535)")
    return ServerConfig(
        host=args.host,
        port=args.port,
        token=args.token or None,
        root=args.root.resolve() if args.root else None,
        origins=tuple(args.origin),
        device=args.device,
        weights=tuple(args.weights),
        max_upload_bytes=args.max_upload_mb << 20,
        max_jobs=args.max_jobs,
        **extra,
    )


def serve_until_stopped(config: ServerConfig, console: Console, page: str = "") -> int:
    """Run the server until SIGINT/SIGTERM; say where it listens (`page`: the path of the page to open)."""
    from lipstream.server import serve

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # not on this platform: Ctrl-C still ends the process
                pass
        try:
            async with serve(config) as running:
                url = running.url + page.lstrip("/")
                websocket = running.ws_url if not page else running.ws_url.rsplit("/", 1)[0] + page
                line = f"serving on {url} (websocket {websocket}); Ctrl-C stops"
                if console.json:
                    console.emit({"event": "listening", "url": url, "websocket": websocket})
                else:
                    console.stream.write(line + "\n")
                    console.stream.flush()
                await stop.wait()
        except OSError as exc:
            raise InputError(f"cannot listen on {config.host}:{config.port} ({exc.strerror or exc}); choose another --host/--port") from None

    asyncio.run(main())
    console.done({"stopped": True}, "server stopped")
    return 0
