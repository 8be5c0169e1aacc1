"""The exemplar engine: re-articulated mouths redrawn from the speaker's own footage; needs no weights.

The lips and jaw move to the shape the audio asks for as in the `warp`
engine (`shared/rearticulate.py`); the lips, teeth and tongue drawn there
come from a bank of this speaker's own mouths (`bank.py`), chosen to match
the shape and steady over time (`select.py`), warped onto it and colour
matched (`render.py`). Frames whose shape no exemplar covers keep the warp
engine's mouth (`stage.py` counts them: `exemplar_coverage`).
"""

from __future__ import annotations

from lipstream.config import SyncConfig

from ...stage import Stage
from ..base import Engine, Found


def build(config: SyncConfig, found: Found) -> list[Stage]:
    from ...faces.stage import face_stage
    from .stage import ExemplarMouths

    return [face_stage(config), ExemplarMouths(config)]


ENGINE = Engine(
    "exemplar",
    "the warp engine's motion with the speaker's own lips, teeth and tongue; needs no weights",
    build,
    rank=15,
)
