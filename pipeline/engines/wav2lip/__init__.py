"""The Wav2Lip engine: Wav2Lip's 96x96 generator on the tracked face (`stage.py`)."""

from __future__ import annotations

from lipstream.config import SyncConfig

from ...stage import Stage
from ..base import Engine, Found
from .config import Wav2LipConfig

CHECKPOINT = ("wav2lip_gan", "wav2lip")
"""Either generator; with both present the GAN one is used (sharper image; the plain one syncs a little tighter)."""


def build(config: SyncConfig, found: Found, engine: Wav2LipConfig = Wav2LipConfig()) -> list[Stage]:
    """Track the face, then generate with whichever checkpoint `found` holds."""
    from lipstream.models._loading import load_model

    from ...faces.stage import face_stage
    from .stage import Wav2LipStage

    network = load_model(found.name_for(CHECKPOINT), weights_dirs=found.weights, device=config.device)
    return [face_stage(config), Wav2LipStage(network, engine, device=config.device)]


ENGINE = Engine(
    "wav2lip",
    "Wav2Lip 96x96 generator (needs wav2lip_gan.pth or wav2lip.pth; non-commercial weights)",
    build,
    context=Wav2LipConfig().min_overlap,
    checkpoints=(CHECKPOINT,),
    rank=20,
    enhances=True,
)
