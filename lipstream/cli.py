"""The `lipstream` command line: subcommands, exit codes, progress display.

Exit codes: 0 success, 2 bad usage or input (one line on stderr naming the
problem and the fix), 1 internal error, 130 interrupted. Each subcommand
lives in `lipstream.commands.<name>`; this module only dispatches.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn, Sequence

from lipstream import __version__
from lipstream.commands import faces, score, serve, sync, weights
from lipstream.console import Console
from lipstream.errors import InputError, LipstreamError

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

COMMANDS = (sync, faces, serve, weights, score)


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
    except Exception as exc:  # a bug: one line for the user, the traceback with -vv
        logging.getLogger("lipstream").debug("internal error", exc_info=True)
        console.error(f"internal error: {exc!r} (run with -vv for the traceback and please report it)")
        return EXIT_INTERNAL
