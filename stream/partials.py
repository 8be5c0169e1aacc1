"""The files a run keeps beside OUT while it writes, and the errors of the place it writes to.

A run writes `.OUT.<pid>.<hex>.part` and renames it to OUT when complete;
its resumable state lives in `.OUT.lipstream/` (a lock, the journal, the
finished segments). The writer's pid in every partial name lets a later
run tell a killed run's leftovers from a live run's files: it removes them
only when that pid is gone, and only while it holds the state folder's
lock, so two runs never write the same OUT at once.

Failures of the place itself (read-only, full, a folder, permission) become
`OutputError`s that name the path and the fix, never "internal error".
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import IO

from lipstream.errors import OutputError

try:  # POSIX; elsewhere two runs on one OUT are not detected
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MIB = 1 << 20


def partial_path(final: Path, stem: str | None = None) -> Path:
    """A fresh partial name for `final` (or for `stem` inside its folder), carrying this process's pid."""
    base = stem if stem is not None else f".{final.name}"
    return final.with_name(f"{base}.{os.getpid()}.{secrets.token_hex(4)}.part")


def _pattern(base: str) -> re.Pattern[str]:
    return re.compile(re.escape(base) + r"\.(?P<pid>\d+)\.[0-9a-f]{8}\.part")


def writer_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (a reused pid errs on the safe side: kept)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def stale_partials(folder: Path, base: str) -> list[Path]:
    """Partial files named from `base` in `folder` whose writer is gone."""
    pattern = _pattern(base)
    found = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for path in entries:
        match = pattern.fullmatch(path.name)
        if match and not writer_alive(int(match["pid"])):
            found.append(path)
    return found


def remove_stale_partials(final: Path) -> list[Path]:
    """Remove the partial outputs of earlier, killed runs for `final`; never a live run's."""
    removed = []
    for path in stale_partials(final.parent, f".{final.name}"):
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            log.debug("cannot remove stale partial %s", path, exc_info=True)
    if removed:
        log.info("removed %d partial file(s) of killed runs for %s", len(removed), final)
    return removed


def state_folder(final: Path) -> Path:
    """Where a file output's lock, journal and finished segments live."""
    return final.with_name(f".{final.name}.lipstream")


class StateLock:
    """Exclusive hold on `.OUT.lipstream/`: one run writes OUT at a time; released by the kernel if the run is killed."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.folder = state_folder(final)
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        try:
            self.folder.mkdir(exist_ok=True)
            file = open(self.folder / "lock", "a+")
        except OSError as exc:
            raise output_error(exc, self.final) from None
        if fcntl is not None:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.seek(0)
                other = file.read().strip() or "another process"
                file.close()
                raise OutputError(
                    f"{self.final} is being written by another lipstream run (pid {other}); wait for it or choose another output"
                ) from None
            except OSError:  # a file system without locks: go on unguarded
                log.debug("no file locks in %s", self.folder, exc_info=True)
        file.seek(0)
        file.truncate()
        file.write(str(os.getpid()))
        file.flush()
        self._file = file

    def release(self, remove: bool) -> None:
        """Let go; with `remove`, delete the whole state folder first (nothing left to resume)."""
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
        if self._file is not None:
            self._file.close()
            self._file = None


def check_free_space(folder: Path, needed: int) -> None:
    """Refuse to start when `folder` has clearly less room than `needed` bytes."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed:
        raise OutputError(
            f"not enough free space in {folder}: the output needs about {_mb(needed)} and {_mb(free)} are free; "
            "free some space or write the output to another folder"
        )


def _mb(size: int) -> str:
    return f"{size / MIB:.1f} MB" if size < 100 * MIB else f"{size / MIB:.0f} MB"


def output_error(exc: OSError, path: Path) -> OutputError:
    """The one-line OutputError for an OSError met writing `path`."""
    folder = path.parent if str(path.parent) else Path(".")
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"no space left in {folder} while writing {path.name}; free some space or write the output to another folder")
    if code == errno.EROFS:
        return OutputError(f"cannot write to {folder}: read-only file system; write the output to another folder")
    if code in (errno.EACCES, errno.EPERM):
        return OutputError(f"cannot write to {folder}: permission denied; choose a folder you can write to")
    if code == errno.EISDIR:
        return OutputError(f"the output {path} is a folder; name a file, e.g. {path / 'out.mp4'}")
    if code == errno.EFBIG:
        return OutputError(f"{path.name} grew larger than {folder} allows (file size limit); write the output to another folder")
    reason = getattr(exc, "strerror", None) or str(exc)
    return OutputError(f"cannot write {path}: {reason}; check the folder or write the output elsewhere")
