"""The embedded engine: the mouth re-articulated from the audio by geometry (`shared/rearticulate.py`); needs no weights."""

from __future__ import annotations

from lipstream.config import SyncConfig

from ...stage import Stage
from ..base import Engine, Found


def build(config: SyncConfig, found: Found) -> list[Stage]:
    from ...faces.stage import face_stage
    from ..shared.rearticulate import WarpLips

    return [face_stage(config), WarpLips(config)]


ENGINE = Engine("warp", "re-animate the mouth from the audio with geometry; needs no weights", build, rank=10)
