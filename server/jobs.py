"""Job slots with a waiting line, and the finished outputs kept for download."""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

PositionCallback = Callable[[int], None]


def new_job_id() -> str:
    """128 random bits, URL-safe: a job id is also the capability to download its output."""
    return secrets.token_urlsafe(16)


class Busy(Exception):
    """The waiting line is full."""


class SlotQueue:
    """At most `slots` jobs run at once; up to `max_waiting` more wait in line, first come first served.

    Each waiter is told its place (1 = next) whenever it changes.
    """

    def __init__(self, slots: int, max_waiting: int) -> None:
        self.slots = slots
        self.max_waiting = max_waiting
        self.running = 0
        self._line: list[tuple[asyncio.Future[None], PositionCallback]] = []

    @property
    def waiting(self) -> int:
        return len(self._line)

    async def acquire(self, on_position: PositionCallback) -> None:
        """Wait for a slot (raises Busy if the line is full); cancellation leaves the line."""
        if self.running < self.slots and not self._line:
            self.running += 1
            return
        if len(self._line) >= self.max_waiting:
            raise Busy(f"{self.running} jobs are running and {len(self._line)} waiting; try again later")
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._line.append((ticket, on_position))
        on_position(len(self._line))
        try:
            await ticket
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled():
                self.release()  # the slot was handed over as we were cancelled: pass it on
            else:
                self._leave(ticket)
            raise

    def release(self) -> None:
        """A running job ended: hand its slot to the first in line."""
        while self._line:
            ticket, _ = self._line.pop(0)
            if not ticket.done():
                ticket.set_result(None)
                self._announce()
                return
        self.running -= 1

    def _leave(self, ticket: asyncio.Future[None]) -> None:
        self._line = [(t, cb) for t, cb in self._line if t is not ticket]
        self._announce()

    def _announce(self) -> None:
        for place, (_, on_position) in enumerate(self._line, 1):
            on_position(place)


@dataclass
class _Kept:
    path: Path
    expires: float
    size: int


class OutputStore:
    """Finished outputs by job id, removed after `keep_seconds` or when `max_kept` is exceeded."""

    def __init__(self, folder: Path, keep_seconds: float, max_kept: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.folder = folder
        self.keep_seconds = keep_seconds
        self.max_kept = max_kept
        self._clock = clock
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, job: str, produced: Path) -> Path:
        """Move a finished output into the store; returns where it now lives."""
        target = self.folder / f"{job}.mp4"
        shutil.move(produced, target)
        self._kept[job] = _Kept(target, self._clock() + self.keep_seconds, target.stat().st_size)
        self.sweep()
        while len(self._kept) > self.max_kept:
            self._drop(next(iter(self._kept)))
        return target

    def get(self, job: str) -> Path | None:
        self.sweep()
        kept = self._kept.get(job)
        return None if kept is None else kept.path

    def expires_in(self, job: str) -> float:
        kept = self._kept.get(job)
        return 0.0 if kept is None else max(kept.expires - self._clock(), 0.0)

    def sweep(self) -> None:
        now = self._clock()
        for job in [job for job, kept in self._kept.items() if kept.expires <= now]:
            self._drop(job)

    def clear(self) -> None:
        for job in list(self._kept):
            self._drop(job)

    def _drop(self, job: str) -> None:
        kept = self._kept.pop(job)
        kept.path.unlink(missing_ok=True)
        log.debug("output of job %s removed", job[:6])
