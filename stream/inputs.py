"""Open user media (a path or a pipe) with errors a person can act on."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

import av

from lipstream.errors import MediaError


class ReadOnlyPipe:
    """Expose only `read` so PyAV treats the stream as non-seekable."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        return self._raw.read(n)


def describe(source: str | Path | BinaryIO) -> str:
    return "standard input" if not isinstance(source, (str, Path)) else str(source)


def open_container(source: str | Path | BinaryIO, what: str, name: str | None = None) -> av.container.InputContainer:
    """Open `source` for reading or raise a `MediaError` naming the file (or `name`) and the fix."""
    name = name or describe(source)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise MediaError(f"{what} file not found: {name} (check the path)")
        if path.is_dir():
            raise MediaError(f"{what} path is a folder, not a file: {name}")
        if path.stat().st_size == 0:
            raise MediaError(f"{what} file is empty: {name}")
        target: str | ReadOnlyPipe = str(path)
    else:
        target = ReadOnlyPipe(source)
    try:
        return av.open(target, "r", timeout=None)
    except PermissionError:
        raise MediaError(f"cannot read {what} file {name}: permission denied") from None
    except (av.error.InvalidDataError, av.error.EOFError, av.error.PatchWelcomeError) as exc:
        raise MediaError(f"{name} is not a readable media file ({_reason(exc)}); pass a video/audio file FFmpeg can decode") from None
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot open {what} {name}: {_reason(exc)}") from None


class Spool:
    """A pipe copied to a temporary file so it can be read more than once; gone once closed.

    Where /proc exists (Linux) the file is unlinked as soon as it is created and
    read through /proc/self/fd, so not even a killed run leaves it behind.
    """

    def __init__(self, stream: BinaryIO, what: str, suffix: str = ".media") -> None:
        fd, name = tempfile.mkstemp(prefix=f"lipstream-{os.getpid()}-", suffix=suffix)
        self._fd: int | None = fd
        self._name: str | None = name
        self.path = Path(name)
        through_proc = Path(f"/proc/self/fd/{fd}")
        if through_proc.exists():
            os.unlink(name)
            self._name = None
            self.path = through_proc
        try:
            with os.fdopen(os.dup(fd), "wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
        except OSError as exc:
            self.close()
            raise MediaError(
                f"cannot copy {what} from standard input to {tempfile.gettempdir()} ({exc.strerror or exc}); "
                "free some space there, set TMPDIR to another folder, or pass a file"
            ) from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._name is not None:
            Path(self._name).unlink(missing_ok=True)
            self._name = None


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip() if text else type(exc).__name__
