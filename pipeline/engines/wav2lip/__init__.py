"""The Wav2Lip engine: Wav2Lip's 96x96 generator on the tracked face (`stage.py`)."""

from __future__ import annotations

from lipstream.config import SyncConfig

from ...stage import Stage
from ..base import Engine, Found
from .config import CHECKPOINT, Wav2LipConfig


def build(config: SyncConfig, found: Found, engine: Wav2LipConfig = Wav2LipConfig()) -> list[Stage]:
    """Track the face, then generate with whichever checkpoint `found` holds."""
    from ...faces.stage import face_stage
    from .stage import load_stage

    return [face_stage(config), load_stage(found, config.device, config.precision, engine)]


ENGINE = Engine(
    "wav2lip",
    "Wav2Lip 96x96 generator (needs wav2lip_gan.pth or wav2lip.pth; non-commercial weights)",
    build,
    context=Wav2LipConfig().min_overlap,
    checkpoints=(CHECKPOINT,),
    rank=20,
    enhances=True,
)
