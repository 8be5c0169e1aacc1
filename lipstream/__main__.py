"""`python -m lipstream` and the `lipstream` command.

Signal handlers go in before anything else is imported (the builtin
`_signal`, not `signal`, whose enum set-up alone takes milliseconds), so
Ctrl-C or SIGTERM during start-up ends with one line and the documented
code, not a traceback (also when the signal lands inside an extension's
import, which turns it into an ImportError).

Then, before any thread exists, glibc is held to two malloc arenas. By
default every thread that allocates gets its own (up to 8 per core); the
decoder's, encoder's and stages' threads then keep fragmented arenas whose
resident size creeps up with a job's length. Measured with passthrough at
320x180: peak RSS 140, 160 and 178 MB after 1, 3 and 10 minutes of video by
default, 130, 133 and 135 MB with two arenas. A 1080x1920 exemplar job
peaks 190 MB lower, at the same speed within noise. `MALLOC_ARENA_MAX` in
the environment wins.
"""

import _signal
import os
import sys

_NAMES = {_signal.SIGINT: ("SIGINT", 130), _signal.SIGTERM: ("SIGTERM", 143)}


class _EarlySignal(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_received: list[int] = []  # the start-up signal, kept: C code that imports a module may swallow the exception


def _early(signum: int, frame: object) -> None:
    _received.append(signum)
    raise _EarlySignal(signum)


for _signum in _NAMES:
    _signal.signal(_signum, _early)


def _few_malloc_arenas() -> None:
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None).mallopt(-8, 2)  # M_ARENA_MAX; a libc without mallopt (musl) has nothing to limit
    except (OSError, AttributeError):
        pass


def entry() -> None:
    try:
        _few_malloc_arenas()
        from lipstream.interrupt import install

        install()
        from lipstream.cli import main
    except BaseException as exc:  # only the start-up signals are expected here (maybe turned into an ImportError)
        signum = _received[0] if _received else getattr(exc, "signum", None)
        if signum not in _NAMES:
            raise
        name, code = _NAMES[signum]
        sys.stderr.write(f"lipstream: error: interrupted by {name} during start-up; nothing was written\n")
        sys.exit(code)
    sys.exit(main())


if __name__ == "__main__":
    entry()
