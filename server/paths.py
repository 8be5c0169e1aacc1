"""Files named by a client: only regular files inside the server's root, after every symlink."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from .protocol import ProtocolError


def resolve_under(root: Path, name: str) -> Path:
    """The real path of `name` inside `root`, or ProtocolError; symlinks may not lead out.

    The returned path has no symlinks left in it, so the pipeline opens the
    very file that was checked (short of someone swapping files under the
    root while the job starts: keep the root read-only to clients).
    """
    if "\x00" in name or "\\" in name:
        raise ProtocolError("forbidden_path", "the path may not contain NUL or backslash characters")
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise ProtocolError("forbidden_path", f"{name!r} must be relative to the server root, without '..'")
    base = root.resolve(strict=True)
    try:
        real = (base / relative).resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise ProtocolError("not_found", f"{name} does not exist under the server root") from None
    except (OSError, RuntimeError):  # symlink loops, permissions
        raise ProtocolError("forbidden_path", f"{name} cannot be resolved under the server root") from None
    if not real.is_relative_to(base):
        raise ProtocolError("forbidden_path", f"{name} leads outside the server root")
    try:
        mode = os.stat(real).st_mode
    except OSError:
        raise ProtocolError("not_found", f"{name} cannot be read") from None
    if not stat.S_ISREG(mode):
        raise ProtocolError("forbidden_path", f"{name} is not a regular file")
    return real
