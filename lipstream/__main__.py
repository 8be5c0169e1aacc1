"""`python -m lipstream` and the `lipstream` command.

Signal handlers go in before anything else is imported (the builtin
`_signal`, not `signal`, whose enum set-up alone takes milliseconds), so
Ctrl-C or SIGTERM during start-up ends with one line and the documented
code, not a traceback.
"""

import _signal
import sys

_NAMES = {_signal.SIGINT: ("SIGINT", 130), _signal.SIGTERM: ("SIGTERM", 143)}


class _EarlySignal(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _early(signum: int, frame: object) -> None:
    raise _EarlySignal(signum)


for _signum in _NAMES:
    _signal.signal(_signum, _early)


def entry() -> None:
    try:
        from lipstream.interrupt import install

        install()
        from lipstream.cli import main
    except BaseException as exc:  # only the start-up signals are expected here
        signum = getattr(exc, "signum", None)
        if signum not in _NAMES:
            raise
        name, code = _NAMES[signum]
        sys.stderr.write(f"lipstream: error: interrupted by {name} during start-up; nothing was written\n")
        sys.exit(code)
    sys.exit(main())


if __name__ == "__main__":
    entry()
