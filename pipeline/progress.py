"""Progress accounting for a run (pure: the runner feeds it, consumers render it)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class StageStats:
    name: str
    busy: float  # seconds spent inside the stage
    queue: int  # windows waiting in front of it


@dataclass(frozen=True)
class ProgressEvent:
    frames: int
    total: int | None  # estimated frames of the output, None when unknown
    elapsed: float
    fps: float
    eta: float | None
    stages: tuple[StageStats, ...] = field(default_factory=tuple)
    event: str = "progress"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = [asdict(s) for s in self.stages]
        return data


ProgressCallback = Callable[[ProgressEvent], None]


class ProgressMeter:
    """Frames done, throughput and ETA from a monotonic clock."""

    def __init__(self, total: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self._clock = clock
        self._start = clock()
        self.frames = 0

    def advance(self, frames: int, stages: tuple[StageStats, ...] = ()) -> ProgressEvent:
        self.frames += frames
        elapsed = max(self._clock() - self._start, 1e-9)
        fps = self.frames / elapsed
        eta = None
        if self.total is not None and fps > 0:
            eta = max(self.total - self.frames, 0) / fps
        return ProgressEvent(self.frames, self.total, elapsed, fps, eta, stages)
