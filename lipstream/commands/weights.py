"""`lipstream weights list|verify|fetch`: what each engine needs, what is found, and getting it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from lipstream.console import Console
from lipstream.errors import InputError

EXIT_FAILED = 2


def add_parser(commands: argparse._SubParsersAction) -> None:
    weights = commands.add_parser(
        "weights",
        help="list, verify or download model weights",
        description=(
            "Weights are searched in the --weights folders, then $LIPSTREAM_WEIGHTS (folders separated by "
            "the path separator), then the user cache folder (where fetch writes by default)."
        ),
    )
    actions = weights.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", help="show what each engine needs and which files are found")
    _common(listing)
    listing.set_defaults(handler=run_list)

    verify = actions.add_parser("verify", help="load every found file into its network strictly and report")
    verify.add_argument("names", nargs="*", metavar="NAME", help="checkpoints or engines to verify (default: all)")
    _common(verify)
    verify.set_defaults(handler=run_verify)

    fetch = actions.add_parser("fetch", help="download checkpoints (with progress on stderr), checked and written atomically")
    fetch.add_argument("names", nargs="+", metavar="NAME", help="checkpoints or engines, e.g. lnet or retalking")
    fetch.add_argument("--dest", type=Path, help="folder to write to (default: the user cache folder)")
    fetch.add_argument(
        "--url",
        action="append",
        default=[],
        metavar="[FILE=]URL",
        help="download from URL instead of the official address (FILE= picks the file of a multi-file checkpoint)",
    )
    fetch.add_argument("--force", action="store_true", help="download again even if a matching file is there")
    fetch.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default: %(default)s)")
    fetch.add_argument("--json", action="store_true", help="JSON lines on stderr instead of a progress line")
    fetch.set_defaults(handler=run_fetch)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", action="append", default=[], metavar="DIR", help="folder searched first (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _requirements() -> dict[str, tuple[str, ...]]:
    """Checkpoint names each engine (and the `score` tool) can use, alternatives included."""
    from lipstream.pipeline.engines import ENGINES
    from lipstream.pipeline.metrics.sync_score import CHECKPOINTS as SCORE

    needs = {name: tuple(n for req in e.checkpoints for n in req) for name, e in ENGINES.items() if e.checkpoints}
    return {**needs, "score": SCORE}


def _expand(names: list[str]) -> list[str]:
    """Checkpoint names, with engine names replaced by what the engine needs; order kept, no repeats."""
    from lipstream.models._registry import CHECKPOINTS

    requirements = _requirements()
    out: list[str] = []
    for name in names:
        if name in CHECKPOINTS:
            items: tuple[str, ...] = (name,)
        elif name in requirements:
            items = requirements[name]
        else:
            known = ", ".join(sorted(CHECKPOINTS) + sorted(requirements))
            raise InputError(f"unknown checkpoint or engine {name!r}; choose from: {known}")
        out += [item for item in items if item not in out]
    return out


def _print(data: dict[str, Any], lines: list[str], as_json: bool) -> None:
    sys.stdout.write(json.dumps(data, separators=(",", ":")) + "\n" if as_json else "\n".join(lines) + "\n")
    sys.stdout.flush()


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


# ------------------------------------------------------------------ list


def run_list(args: argparse.Namespace, console: Console) -> int:
    from lipstream.models._registry import CHECKPOINTS, find_file, search_dirs
    from lipstream.pipeline.engines import ENGINES, available
    from lipstream.pipeline.metrics.sync_score import CHECKPOINTS as SCORE

    dirs = search_dirs(args.weights)
    found = {name: [find_file(f, dirs) for f in entry.files] for name, entry in CHECKPOINTS.items()}
    auto = available(args.weights)[0].name
    data: dict[str, Any] = {"dirs": [str(d) for d in dirs], "auto": auto, "engines": {}, "checkpoints": {}}
    lines = ["weights folders, searched in this order:", *(f"  {d}" for d in dirs), ""]
    needs_of = {name: e.checkpoints for name, e in ENGINES.items() if e.checkpoints}
    needs_of["score"] = (SCORE,)
    for engine, needs in needs_of.items():
        missing = [" or ".join(req) for req in needs if all(None in found[n] for n in req)]
        data["engines"][engine] = {"needs": [list(req) for req in needs], "missing": missing, "ready": not missing}
        state = "ready" if not missing else f"missing {', '.join(missing)}"
        lines.append(f"{engine:<10} needs {', '.join(' or '.join(req) for req in needs)}: {state}")
    lines += [f"--engine auto would use: {auto}", ""]
    for name, entry in CHECKPOINTS.items():
        files = []
        for n, (spec, path) in enumerate(zip(entry.files, found[name])):
            files.append(
                {
                    "file": spec.relpath,
                    "path": None if path is None else str(path),
                    "bytes": None if path is None else path.stat().st_size,
                    "sha256": spec.sha256,
                    "size": spec.size,
                    "urls": list(spec.urls),
                    "pages": list(spec.pages),
                }
            )
            if path is not None:
                where = f"found {path} ({_mb(path.stat().st_size)})"
            elif spec.urls:
                where = f"missing (lipstream weights fetch {name})"
            else:
                where = f"missing (get it from {spec.pages[0] if spec.pages else 'its authors'})"
            lines.append(f"{name if n == 0 else '':<16} {spec.relpath:<32} {where}")
        half = ("; float16 on CUDA" if entry.half else "") + ("; bfloat16 on CPUs that have it" if entry.bf16 else "")
        lines.append(f"{'':<16} {entry.title}{half}; licence: {entry.licence}")
        data["checkpoints"][name] = {
            "title": entry.title,
            "kind": entry.kind,
            "num_params": entry.num_params,
            "licence": entry.licence,
            "float16_on_cuda": entry.half,
            "bfloat16_on_cpu": entry.bf16,
            "files": files,
        }
    _print(data, lines, args.json)
    return 0


# ------------------------------------------------------------------ verify


def run_verify(args: argparse.Namespace, console: Console) -> int:
    from lipstream.models._loading import verify
    from lipstream.models._registry import CHECKPOINTS

    names = _expand(args.names) if args.names else list(CHECKPOINTS)
    results = []
    for name in names:
        if not args.json and sys.stderr.isatty():
            sys.stderr.write(f"verifying {name}...\r")
            sys.stderr.flush()
        results.append(verify(name, weights_dirs=args.weights))
    labels = {"ok": "ok", "missing": "missing", "failed": "FAILED"}
    lines = [f"{r.name:<16} {labels[r.status]:<8} {r.detail}" for r in results]
    _print({"results": [r.to_dict() for r in results]}, lines, args.json)
    failed = [r.name for r in results if r.status == "failed"]
    if failed:
        from lipstream.models._registry import how_to_get

        console.error(f"{', '.join(failed)} failed verification (see above); to replace them, {how_to_get(failed)}")
        return EXIT_FAILED
    return 0


# ------------------------------------------------------------------ fetch


class _FetchProgress:
    """Download progress on stderr: one rewritten line on a terminal, JSON lines with --json."""

    def __init__(self, console: Console, min_interval: float = 0.25) -> None:
        self.console = console
        self.min_interval = min_interval
        self._last = 0.0

    def __call__(self, event: Any) -> None:
        now = time.monotonic()
        if not (event.finished or event.done == 0) and now - self._last < self.min_interval:
            return
        self._last = now
        if self.console.json:
            self.console.emit({"event": "download", "file": event.file, "url": event.url, "bytes": event.done, "total": event.total, "finished": event.finished})
            return
        stream = self.console.stream
        if not stream.isatty():
            return
        share = f" {100 * event.done / event.total:3.0f}%" if event.total else ""
        total = f"/{_mb(event.total)}" if event.total else ""
        stream.write(f"\r{event.file}: {_mb(event.done)}{total}{share}" + ("\n" if event.finished else ""))
        stream.flush()


def _url_overrides(values: list[str], names: list[str]) -> dict[str, list[str]]:
    from lipstream.models._registry import get

    overrides: dict[str, list[str]] = {}
    for value in values:
        file, sep, url = value.partition("=")
        if sep and "://" not in file:
            overrides.setdefault(file, []).append(url)
            continue
        files = {spec.filename for name in names for spec in get(name).files}
        if len(files) != 1:
            raise InputError(f"--url {value} is ambiguous: {' '.join(names)} has several files; write --url FILE=URL with FILE one of {', '.join(sorted(files))}")
        overrides.setdefault(files.pop(), []).append(value)
    return overrides


def run_fetch(args: argparse.Namespace, console: Console) -> int:
    from lipstream.models._hub import fetch

    names = _expand(args.names)
    overrides = _url_overrides(args.url, names)
    progress = _FetchProgress(console)
    saved: list[str] = []
    for name in names:
        for path in fetch(name, args.dest, urls=overrides, force=args.force, timeout=args.timeout, on_progress=progress):
            if str(path) not in saved:
                saved.append(str(path))
    console.done({"files": saved}, "saved " + ", ".join(saved))
    return 0
