"""What a stage is: a plain callable from window to window.

Stages know nothing of asyncio, queues or threads. The runner calls each
stage on one window at a time, in order, so a stage may keep state across
windows (a smoother, a tracker). A stage that runs a model names its
`device`; the runner then calls it on that device's single executor.

Three optional methods, found by name: `prepare(video: Path, end: Fraction | None)`
is called once before the first window when the input video is a file (a look
over the file up to `end`, the output's last time when it stops before the
video's, e.g. the exemplar bank's pre-pass, the face stage's border pins), `enter(segment: int)` then names the segment the fresh stage is about
to process (the face stage takes up the target's lock at its border), and
`report() -> dict` after the last window (numbers for the job's summary, e.g.
`exemplar_coverage`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from lipstream.stream.frames import Window


@runtime_checkable
class Stage(Protocol):
    name: str
    device: str | None  # None: plain blocking work on a worker thread

    def __call__(self, window: Window) -> Window: ...


class Passthrough:
    """Leaves every frame as it is: proves the path from decode to mux."""

    name = "passthrough"
    device: str | None = None

    def __call__(self, window: Window) -> Window:
        return window
