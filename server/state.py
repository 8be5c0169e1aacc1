"""What every part of a running server shares: limits, the job line, kept outputs, open connections."""

from __future__ import annotations

import asyncio
import importlib.resources
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from lipstream.pipeline.live import LiveAvatar

from .jobs import OutputStore, SlotQueue
from .limits import ServerConfig

SWEEP_SECONDS = 30.0  # how often expired outputs are removed


class ServerState:
    """Shared state of a running server: limits, the job line, kept outputs, open connections."""

    def __init__(self, config: ServerConfig, *, observe: Callable[[int], None] | None = None) -> None:
        if config.root is not None and not config.root.is_dir():
            raise ValueError(f"the root {config.root} is not a folder")
        self.config = config
        self.observe = observe  # instrumentation: called on a job thread with each fragment's size
        self.work_dir = Path(tempfile.mkdtemp(prefix="lipstream-server-", dir=config.work_dir))
        self.jobs_dir = self.work_dir / "jobs"
        self.jobs_dir.mkdir()
        self.queue = SlotQueue(config.max_jobs, config.max_waiting)
        self.store = OutputStore(self.work_dir / "outputs", config.keep_seconds, config.max_kept)
        self.connections: set[object] = set()  # open websocket connections (the gate counts them)
        self.page = importlib.resources.files(__package__).joinpath("static/index.html").read_bytes()
        self.live_page = importlib.resources.files(__package__).joinpath("static/live.html").read_bytes()
        self.live: LiveAvatar | None = None  # the prepared face of `config.live`, set before the server listens
        self.live_sessions = 0

    def counts(self) -> tuple[int, int]:
        """(authenticated, still owing the token) open connections."""
        admitted = sum(1 for c in self.connections if getattr(getattr(c, "session", None), "authenticated", True))
        return admitted, len(self.connections) - admitted

    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.store.sweep()

    def close(self) -> None:
        self.store.clear()
        shutil.rmtree(self.work_dir, ignore_errors=True)
