"""Engines: named recipes of stages for a lip-sync job.

An engine says how much window context its stages read, so the job can size
its windows; which checkpoints it needs, and which engine is best, is data
in the checkpoint registry (`lipstream.models._registry`), so `auto` picks
the best engine whose weights are present and otherwise the embedded
`warp` engine, which needs none. Factories import their modules lazily:
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


def _warp(config: SyncConfig) -> list[Stage]:
    from .face_stage import FaceStage
    from .warp_engine import WarpLips

    return [FaceStage(config.face, config.window), WarpLips(config)]


def _wav2lip(config: SyncConfig) -> list[Stage]:
    from .wav2lip_engine import wav2lip_stages

    return wav2lip_stages(config)


def _retalking(config: SyncConfig) -> list[Stage]:
    from .retalking_engine import retalking_stages

    return retalking_stages(config)


@dataclass(frozen=True)
class Engine:
    name: str
    build: Callable[[SyncConfig], list[Stage]]
    description: str
    min_overlap: int = 0  # frames of context its stages read around each window


ENGINES: dict[str, Engine] = {
    "passthrough": Engine("passthrough", lambda config: [Passthrough()], "leave the video as it is (proves the path)"),
    "faces": Engine("faces", _faces, "track the target only; pixels untouched (for inspection and benchmarks)"),
    "warp": Engine("warp", _warp, "re-animate the mouth from the audio with geometry; needs no weights"),
    "retalking": Engine("retalking", _retalking, "VideoReTalking: D-Net stabilised reference + ENet/LNet (slow on CPU)", min_overlap=26),
    "wav2lip": Engine("wav2lip", _wav2lip, "Wav2Lip 96x96 generator (needs wav2lip.pth; non-commercial weights)", min_overlap=4),
}
AUTO = "auto"
FALLBACK = "warp"  # needs no checkpoints


def choose(config: SyncConfig) -> Engine:
    """The engine `config.engine` names; for `auto` the best one whose checkpoints are present."""
    name = config.engine
    if name == AUTO:
        from lipstream.models._registry import available_engines

        name = next((e for e in available_engines(config.weights) if e in ENGINES), FALLBACK)
    engine = ENGINES.get(name)
    if engine is None:
        raise InputError(f"unknown engine {name!r}; choose one of: {', '.join(sorted([AUTO, *ENGINES]))}")
    return engine


def build_stages(config: SyncConfig) -> tuple[SyncConfig, list[Stage]]:
    """Resolve the engine, widen the windows to the context it needs, build its stages once."""
    engine = choose(config)
    if config.window.overlap < engine.min_overlap:
        window = replace(config.window, overlap=engine.min_overlap, size=max(config.window.size, engine.min_overlap + 8))
        config = replace(config, window=window)
    config = replace(config, engine=engine.name)
    return config, engine.build(config)
