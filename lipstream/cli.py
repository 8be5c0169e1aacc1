"""The `lipstream` command line: subcommands, exit codes, progress display.

Exit codes: 0 success; 2 bad usage, input or output place (one line on
stderr naming the problem and the fix: a damaged input, a read-only or full
folder, stdout closed, ...); 1 internal error; 141 the reader of stdout
closed the pipe early; 130 SIGINT, 143 SIGTERM (partial files removed).
Each subcommand lives in `lipstream.commands.<name>`; this module only
dispatches.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn, Sequence

from lipstream import __version__
from lipstream.commands import batch, faces, live, score, serve, sync, weights
from lipstream.console import Console
from lipstream.errors import InputError, Interrupted, LipstreamError, ReaderGone
from lipstream.interrupt import SignalExit, exit_code, install, pending, signal_name

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_READER_GONE = 0, 1, 2, 130, 141

COMMANDS = (sync, batch, faces, serve, live, weights, score)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"lipstream: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lipstream", description="Streaming lip-sync: re-animate a speaker's mouth to new audio.")
    parser.add_argument("--version", action="version", version=f"lipstream {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (repeat for debug)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    install()
    if sys.stderr is None:  # started with stderr closed: messages go nowhere, exit codes still tell
        sys.stderr = open(os.devnull, "w")
    try:
        args = build_parser().parse_args(argv)
    except SignalExit as exc:
        sys.stderr.write(f"lipstream: error: interrupted by {signal_name(exc.signum)} during start-up; nothing was written\n")
        return exit_code(exc.signum)
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
        format="lipstream: %(levelname)s: %(name)s: %(message)s",
        stream=sys.stderr,
    )
    console = Console(json_lines=getattr(args, "json", False))
    try:
        return args.handler(args, console)
    except Interrupted as exc:
        console.error(str(exc))
        return exit_code(exc.signum)
    except (SignalExit, KeyboardInterrupt, Exception) as exc:
        # a signal may also come out as another error (see `interrupt.pending`)
        signum = exc.signum if isinstance(exc, SignalExit) else 2 if isinstance(exc, KeyboardInterrupt) else pending()
        if signum is None:
            assert isinstance(exc, Exception)
            return _failed(exc, console)
        console.error(f"interrupted by {signal_name(signum)}; no output was kept")
        return exit_code(signum)


def _failed(exc: Exception, console: Console) -> int:
    """The exit code and one line for an error that is not an interruption."""
    if isinstance(exc, (ReaderGone, BrokenPipeError)):
        _silence_stdout()
        console.error(str(exc) if isinstance(exc, ReaderGone) else "the reader of stdout closed the pipe; output stopped")
        return EXIT_READER_GONE
    if isinstance(exc, LipstreamError):
        console.error(str(exc))
        return EXIT_INPUT if isinstance(exc, InputError) else EXIT_INTERNAL
    # a bug: one line for the user, the traceback with -vv
    logging.getLogger("lipstream").debug("internal error", exc_info=exc)
    console.error(f"internal error: {exc!r} (run with -vv for the traceback and please report it)")
    return EXIT_INTERNAL


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass
