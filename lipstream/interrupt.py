"""Signals as documented exit codes: SIGINT ends with 130, SIGTERM with 143, one line, no traceback.

Two phases, because a signal can come at any time:

- outside the event loop (imports, argument parsing, after the job): a
  Python-level handler raises `SignalExit`, a BaseException, so no
  `except Exception` on the way swallows it and `cli.main` turns it into
  the one line;
- inside the event loop: `loop.add_signal_handler`. Its C handler writes to
  the loop's wakeup fd, so the loop wakes even when the kernel delivers the
  signal to a decode or encode thread (a plain Python handler would wait for
  the main thread to run bytecode). The handler cancels the job's task, the
  job cleans up (threads finish their window, partial files are removed),
  then `Interrupted` is raised.

Standard library only: `__main__` imports this before anything heavy.
"""

from __future__ import annotations

import logging
import signal
from typing import Any, Coroutine, TypeVar

from lipstream.errors import Interrupted

log = logging.getLogger(__name__)

T = TypeVar("T")

EXIT_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}


class SignalExit(BaseException):
    """SIGINT or SIGTERM outside the event loop; `cli.main` turns it into the exit code."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(signum: int) -> int:
    return EXIT_CODES.get(signum, 128 + signum)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


_pending: list[int] = []  # signals raised as `SignalExit`, kept in case something swallowed the exception


def _raise(signum: int, frame: object) -> None:
    _pending.append(signum)
    raise SignalExit(signum)


def install() -> None:
    """Make SIGINT and SIGTERM raise `SignalExit` in the main thread (idempotent; forgets earlier ones)."""
    _pending.clear()
    for sig in EXIT_CODES:
        signal.signal(sig, _raise)


def pending() -> int | None:
    """A signal whose `SignalExit` was raised but may not have got through.

    A signal that lands while an extension module initialises (the lazy
    imports of a command's first lines) can come out as an ImportError that
    an optional-import guard catches, or not come out at all; the job must
    still not start, and an error it causes must read as the interruption.
    """
    return _pending[0] if _pending else None


def run(job: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(job)` where SIGINT and SIGTERM cancel the job; `Interrupted` once its cleanup is done."""
    import asyncio  # here, not at the top: start-up imports stay short until the handlers are in

    if (signum := pending()) is not None:
        job.close()  # never started
        raise SignalExit(signum)
    return asyncio.run(_guarded(job))


async def _guarded(job: Coroutine[Any, Any, T]) -> T:
    import asyncio

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if received:
            log.info("%s received while stopping; waiting for the current window to finish", signal_name(signum))
            return
        received.append(signum)
        task.cancel()

    for sig in EXIT_CODES:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        if (signum := pending()) is not None:  # came while the loop was being set up
            job.close()
            raise SignalExit(signum)
        return await job
    except asyncio.CancelledError:
        if received:
            raise Interrupted(received[0], f"interrupted by {signal_name(received[0])}") from None
        raise
    finally:
        for sig in EXIT_CODES:
            loop.remove_signal_handler(sig)
        install()  # back to raising SignalExit for what runs after the loop
