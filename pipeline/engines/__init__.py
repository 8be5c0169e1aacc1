"""Engines: named recipes of stages for a lip-sync job, one table.

Each engine declares its facts once, in its own package (`warp/`,
`exemplar/`, `wav2lip/`, `retalking/`): how to build its stages, the window context they
read, the checkpoints they need and its rank for `auto`. Helpers every
engine may use live in `shared/`; no engine imports another. Building is
lazy: choosing `passthrough` never imports a network.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

from lipstream.config import SyncConfig
from lipstream.errors import InputError

from ..stage import Passthrough, Stage
from ..faces.models import requirements as face_requirements
from .shared.enhancers import ENHANCERS
from . import exemplar, retalking, warp, wav2lip
from .base import Engine, Found, find, missing_requirements, resolve

__all__ = ["AUTO", "ENGINES", "Engine", "Plan", "available", "build_stages", "choose"]


def _faces(config: SyncConfig, found: Found) -> list[Stage]:
    from ..faces.stage import face_stage

    return [face_stage(config)]


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine("passthrough", "leave the video as it is (proves the path)", lambda config, found: [Passthrough()], faces=False),
        Engine("faces", "track the target only; pixels untouched (for inspection and benchmarks)", _faces),
        warp.ENGINE,
        exemplar.ENGINE,
        wav2lip.ENGINE,
        retalking.ENGINE,
    )
}
AUTO = "auto"


def available(weights: Iterable[str | Path] = ()) -> list[Engine]:
    """Engines `auto` may take whose checkpoints are all found, best first."""
    ranked = sorted((e for e in ENGINES.values() if e.rank is not None), key=lambda e: -(e.rank or 0))
    return [e for e in ranked if not missing_requirements(e, weights)]


def choose(config: SyncConfig) -> Engine:
    """The engine `config.engine` names; for `auto` the best one whose checkpoints are present."""
    if config.engine == AUTO:
        return available(config.weights)[0]  # warp needs nothing, so the list is never empty
    engine = ENGINES.get(config.engine)
    if engine is None:
        raise InputError(f"unknown engine {config.engine!r}; choose one of: {', '.join(sorted([AUTO, *ENGINES]))}")
    return engine


@dataclass(frozen=True)
class Plan:
    """What a job runs: the engine, the configuration it needs (windows widened), its stages, the files it loaded."""

    engine: Engine
    config: SyncConfig
    stages: list[Stage]
    found: Found


def build_stages(config: SyncConfig) -> Plan:
    """Resolve the engine and its checkpoints, widen the windows to its context, build its stages once."""
    engine = choose(config)
    if config.enhance not in ("auto", "none") and not engine.enhances:
        able = ", ".join(name for name, e in ENGINES.items() if e.enhances)
        raise InputError(f"--enhance {config.enhance} restores a re-drawn mouth; use it with the {able} engine, not {engine.name}")
    config, extra = engine.options(config)
    found = resolve(engine, config.weights)
    needs, options = list(extra), [f"--engine {engine.name} --quality {config.quality}"] if extra else []
    faces = face_requirements(config.face) if engine.faces else ()
    if faces:
        needs += faces
        options.append(f"--detector {config.face.detector} --landmarks {config.face.landmarks}")
    if config.enhance != "none":
        needs += ENHANCERS[config.enhance]
        options.append(f"--enhance {config.enhance}")
    if needs:
        more = find(needs, config.weights, " ".join(options))
        found = replace(found, files={**found.files, **more.files})
    if config.window.overlap < engine.context:
        window = replace(config.window, overlap=engine.context, size=max(config.window.size, engine.context + 8))
        config = replace(config, window=window)
    config = replace(config, engine=engine.name)
    stages = engine.build(config, found)
    if config.enhance != "none":
        from .shared.enhance import enhance_stage

        stages.append(enhance_stage(config, found))
    return Plan(engine, config, stages, found)
