"""Engines: named recipes of stages for a lip-sync job.

An engine declares the checkpoints it needs and how much window context its
stages read, so `auto` can pick the best engine whose weights are present
and the job can size its windows. Factories import their modules lazily:
choosing `passthrough` never imports a network.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from lipstream.config import SyncConfig
from lipstream.errors import InputError

from .stage import Passthrough, Stage


def _faces(config: SyncConfig) -> list[Stage]:
    from .face_stage import FaceStage

    return [FaceStage(config.face, config.window)]


@dataclass(frozen=True)
class Engine:
    name: str
    build: Callable[[SyncConfig], list[Stage]]
    description: str
    checkpoints: tuple[str, ...] = ()  # registry names that must be present
    min_overlap: int = 0  # frames of context its stages read around each window
    rank: int = 0  # `auto` prefers higher ranks among engines whose checkpoints are present


ENGINES: dict[str, Engine] = {
    "passthrough": Engine("passthrough", lambda config: [Passthrough()], "leave the video as it is (proves the path)", rank=-2),
    "faces": Engine("faces", _faces, "track the target only; pixels untouched (for inspection and benchmarks)", rank=-1),
}
AUTO = "auto"


def register(engine: Engine) -> None:
    ENGINES[engine.name] = engine


def choose(config: SyncConfig, available: Callable[[tuple[str, ...]], bool] = lambda names: not names) -> Engine:
    """The engine `config.engine` names, or for `auto` the best one whose checkpoints are present."""
    if config.engine == AUTO:
        candidates = [e for e in ENGINES.values() if e.rank >= 0 and available(e.checkpoints)]
        if not candidates:
            raise InputError("no lip engine is available; install lipstream fully or pass --engine passthrough")
        return max(candidates, key=lambda e: e.rank)
    engine = ENGINES.get(config.engine)
    if engine is None:
        raise InputError(f"unknown engine {config.engine!r}; choose one of: {', '.join(sorted([AUTO, *ENGINES]))}")
    return engine


def build_stages(config: SyncConfig) -> tuple[SyncConfig, list[Stage]]:
    """Resolve the engine, widen the windows to the context it needs, build its stages once."""
    engine = choose(config)
    if config.window.overlap < engine.min_overlap:
        window = replace(config.window, overlap=engine.min_overlap, size=max(config.window.size, engine.min_overlap + 8))
        config = replace(config, window=window)
    return replace(config, engine=engine.name), engine.build(config)
