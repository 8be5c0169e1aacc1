"""Engines: named recipes of stages for a lip-sync job."""

from __future__ import annotations

from typing import Callable

from lipstream.config import SyncConfig
from lipstream.errors import InputError

from .face_stage import FaceStage
from .stage import Passthrough, Stage

EngineFactory = Callable[[SyncConfig], list[Stage]]

ENGINES: dict[str, EngineFactory] = {
    "passthrough": lambda config: [Passthrough()],
    "faces": lambda config: [FaceStage(config.face, config.window)],  # tracking only, pixels untouched
}


def build_stages(config: SyncConfig) -> list[Stage]:
    """The stages of `config.engine`, built once per job."""
    factory = ENGINES.get(config.engine)
    if factory is None:
        raise InputError(f"unknown engine {config.engine!r}; choose one of: {', '.join(sorted(ENGINES))}")
    return factory(config)
