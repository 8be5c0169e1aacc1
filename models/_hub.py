"""Download official weight files into a weights folder, checked and written atomically.

A file is streamed to a temporary file next to its destination while its
sha256 is computed, checked against the registry (size and hash when
declared; otherwise the computed hash is logged so it can be pinned), and
only then renamed into place, so an interrupted or bad download never
leaves a file that looks complete. Files published inside a zip archive
(``BFM.zip``) are extracted from the downloaded archive the same way.
Nothing here runs unless the user asks for it (`lipstream weights fetch`).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lipstream import __version__
from lipstream.errors import WeightsError

from ._registry import Checkpoint, WeightFile, cache_dir, get

__all__ = ["DownloadProgress", "fetch"]

log = logging.getLogger(__name__)

CHUNK = 1 << 20
_WRITE_ERRORS = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT, errno.EPERM}


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes received so far for one file; `total` is None when the server does not say."""

    file: str
    url: str
    done: int
    total: int | None
    finished: bool = False


ProgressCallback = Callable[[DownloadProgress], None]


class _Failed(Exception):
    """One URL did not give the right file; the next URL may."""


def fetch(
    name: str | Checkpoint,
    dest: Path | None = None,
    *,
    urls: Mapping[str, Sequence[str]] | None = None,
    force: bool = False,
    timeout: float = 60.0,
    on_progress: ProgressCallback | None = None,
) -> list[Path]:
    """Download the files of `name` into `dest` (default: the cache folder); return their paths.

    `urls` replaces the registry's URLs per file name (mirrors, tests). A file
    already in `dest` that matches the declared size/hash is kept unless
    `force`. Raises WeightsError naming the file, the URLs tried and why.
    """
    entry = name if isinstance(name, Checkpoint) else get(name)
    dest = cache_dir() if dest is None else Path(dest)
    paths = []
    for spec in entry.files:
        target = dest / spec.relpath
        if target.is_file() and not force and _matches(spec, target):
            log.info("%s already in %s", spec.relpath, dest)
        else:
            sources = tuple(urls[spec.filename]) if urls and spec.filename in urls else spec.urls
            _download_any(spec, sources, target, timeout, on_progress)
        paths.append(target)
    return paths


def _matches(spec: WeightFile, path: Path) -> bool:
    from ._loading import file_sha256

    size = path.stat().st_size
    if size == 0 or (spec.size is not None and size != spec.size):
        return False
    return spec.sha256 is None or file_sha256(path) == spec.sha256.lower()


def _download_any(spec: WeightFile, sources: Sequence[str], target: Path, timeout: float, on_progress: ProgressCallback | None) -> None:
    if not sources:
        where = " or ".join(spec.pages) if spec.pages else "its authors"
        raise WeightsError(f"{spec.filename} has no direct download; get it from {where} and save it as {target}")
    errors = []
    for url in sources:
        try:
            _download(spec, url, target, timeout, on_progress)
            return
        except _Failed as exc:
            log.info("%s", exc)
            errors.append(str(exc))
    raise WeightsError(f"could not download {spec.filename}: {'; '.join(errors)}; try again later or download it by hand into {target.parent}")


def _download(spec: WeightFile, url: str, target: Path, timeout: float, on_progress: ProgressCallback | None) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"cannot create the weights folder {target.parent} ({exc.strerror or exc}); choose another with --dest") from None
    temps: list[Path] = []
    try:
        received = _new_temp(target, temps)
        digest, size = _receive(url, spec.filename if spec.member is None else url.rsplit("/", 1)[-1], received, timeout, on_progress)
        if spec.member is not None:
            extracted = _new_temp(target, temps)
            digest, size = _extract(url, received, spec.member, extracted)
            received = extracted
        if spec.size is not None and size != spec.size:
            raise _Failed(f"{url}: {size:,} bytes instead of {spec.size:,}")
        if spec.sha256 is not None and digest != spec.sha256.lower():
            raise _Failed(f"{url}: sha256 {digest[:16]}... differs from the official {spec.sha256[:16]}...")
        if spec.sha256 is None:
            log.info("sha256 of %s: %s (not declared in the registry)", spec.filename, digest)
        os.replace(received, target)
        temps.remove(received)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


def _new_temp(target: Path, temps: list[Path]) -> Path:
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    temps.append(Path(name))
    return Path(name)


def _receive(url: str, label: str, path: Path, timeout: float, on_progress: ProgressCallback | None) -> tuple[str, int]:
    """Stream `url` into `path`; return (sha256, bytes)."""
    request = urllib.request.Request(url, headers={"User-Agent": f"lipstream/{__version__}"})
    digest = hashlib.sha256()
    done = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, path.open("wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if on_progress:
                on_progress(DownloadProgress(label, url, 0, total))
            while block := response.read(CHUNK):
                out.write(block)
                digest.update(block)
                done += len(block)
                if on_progress:
                    on_progress(DownloadProgress(label, url, done, total))
            out.flush()
            os.fsync(out.fileno())
    except urllib.error.HTTPError as exc:
        raise _Failed(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _Failed(f"{url}: {exc.reason}") from None
    except http.client.HTTPException as exc:
        raise _Failed(f"{url}: {type(exc).__name__} {exc}") from None
    except OSError as exc:
        if exc.errno in _WRITE_ERRORS:
            raise WeightsError(f"cannot write {path.parent}: {exc.strerror or exc}; free some space or choose another --dest") from None
        raise _Failed(f"{url}: {exc or type(exc).__name__}") from None
    if total is not None and done != total:
        raise _Failed(f"{url}: the connection ended after {done:,} of {total:,} bytes")
    if on_progress:
        on_progress(DownloadProgress(label, url, done, total, finished=True))
    return digest.hexdigest(), done


def _extract(url: str, archive: Path, member: str, path: Path) -> tuple[str, int]:
    """Copy the archive member whose base name is `member` into `path`; return (sha256, bytes)."""
    digest = hashlib.sha256()
    done = 0
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == member and not n.startswith("__MACOSX/")]
            if not names:
                raise _Failed(f"{url}: the archive has no {member}")
            with zf.open(names[0]) as source, path.open("wb") as out:
                while block := source.read(CHUNK):
                    out.write(block)
                    digest.update(block)
                    done += len(block)
    except zipfile.BadZipFile as exc:
        raise _Failed(f"{url}: not a zip archive ({exc})") from None
    except OSError as exc:
        raise WeightsError(f"cannot write {path.parent}: {exc.strerror or exc}; free some space or choose another --dest") from None
    return digest.hexdigest(), done
