"""Peak resident memory of a child process, not of its parent.

On Linux a child's `ru_maxrss` starts from the RSS of the process that
spawned it (the kernel carries the old image's high-water mark over exec),
so a job started from a test or benchmark that already holds torch reads
as at least that big, and a memory test could not fail. The child is
therefore started by a tiny Python launcher, which reports the child's own
peak to a file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_LAUNCHER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


class Measured:
    """`subprocess.Popen(command, **kwargs)` through the launcher.

    Read its pipes first (`proc.stdout`, `proc.stderr`), then `wait()`:
    that sets `returncode`, `cpu_seconds` (user + system, the job included)
    and `peak_mb` (the job's own peak RSS).
    """

    def __init__(self, command: list[Any], **kwargs: Any) -> None:
        handle, report = tempfile.mkstemp(prefix="peak-rss-", suffix=".txt")
        os.close(handle)
        self.report = Path(report)
        self.proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, report, *map(str, command)], **kwargs)
        self.returncode: int | None = None
        self.cpu_seconds = 0.0
        self.peak_mb = 0.0

    @property
    def pid(self) -> int:
        """The launcher's pid (the job is its only child)."""
        return self.proc.pid

    def job_pid(self) -> int | None:
        """The job's own pid while it runs (Linux /proc), e.g. to find it in nvidia-smi."""
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def wait(self) -> int:
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = self.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        text = self.report.read_text()
        self.report.unlink(missing_ok=True)
        self.peak_mb = int(text) / 1024 if text else float("nan")
        return self.returncode
