"""`python -m lipstream` and the `lipstream` command.

The signal handlers go in before the heavy imports, so Ctrl-C or SIGTERM
during start-up ends with one line and the documented code, not a traceback.
"""

import sys

from lipstream.interrupt import SignalExit, exit_code, install, signal_name


def entry() -> None:
    install()
    try:
        from lipstream.cli import main
    except SignalExit as exc:
        sys.stderr.write(f"lipstream: error: interrupted by {signal_name(exc.signum)} during start-up; nothing was written\n")
        sys.exit(exit_code(exc.signum))
    sys.exit(main())


if __name__ == "__main__":
    entry()
