"""How the CLI shows progress: a one-line bar on a terminal, JSON lines for machines."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from lipstream.pipeline.progress import ProgressEvent


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class Console:
    """Writes progress and results to stderr; never touches stdout (it may carry video)."""

    def __init__(self, json_lines: bool, stream: TextIO | None = None, min_interval: float = 0.2) -> None:
        self.json = json_lines
        self.stream = stream if stream is not None else sys.stderr  # looked up now: a caller may have redirected it
        self.tty = self.stream.isatty()
        self.min_interval = min_interval
        self._last = 0.0
        self._drawn = False

    def progress(self, event: ProgressEvent) -> None:
        if self.json:
            self.emit(event.to_dict())
            return
        if not self.tty:
            return
        now = time.monotonic()
        done = event.total is not None and event.frames >= event.total
        if now - self._last < self.min_interval and not done:
            return
        self._last = now
        self.stream.write("\r" + self._bar(event))
        self.stream.flush()
        self._drawn = True

    def _bar(self, event: ProgressEvent, width: int = 28) -> str:
        if event.total:
            share = min(event.frames / event.total, 1.0)
            filled = int(share * width)
            bar = "#" * filled + "-" * (width - filled)
            return f"[{bar}] {event.frames}/{event.total} frames  {event.fps:5.1f} fps  ETA {_clock(event.eta)}"
        return f"{event.frames} frames  {event.fps:5.1f} fps  {_clock(event.elapsed)}"

    def emit(self, data: dict[str, Any]) -> None:
        self.stream.write(json.dumps(data, separators=(",", ":")) + "\n")
        self.stream.flush()

    def done(self, summary: dict[str, Any], line: str) -> None:
        self._end_bar()
        if self.json:
            self.emit({"event": "done", **summary})
        else:
            self.stream.write(line + "\n")

    def warn(self, message: str, kind: str = "warning") -> None:
        """One line about something the user should know (`kind`: warning or note); the run goes on."""
        self._end_bar()
        if self.json:
            self.emit({"event": kind, "message": message})
            return
        self.stream.write(f"lipstream: {kind}: {message}\n")
        self.stream.flush()

    def error(self, message: str) -> None:
        self._end_bar()
        if self.json:  # machines get the one line as JSON, like every other event
            self.emit({"event": "error", "message": message})
            return
        self.stream.write(f"lipstream: error: {message}\n")
        self.stream.flush()

    def _end_bar(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False
