"""The VideoReTalking engine: D-Net stabilisation and E-Net/L-Net generation on the tracked face (`build.py`)."""

from __future__ import annotations

from lipstream.config import SyncConfig

from ...stage import Stage
from ..base import Engine, Found
from .config import MIN_OVERLAP


def build(config: SyncConfig, found: Found) -> list[Stage]:
    from .build import retalking_stages

    return retalking_stages(config, found)


ENGINE = Engine(
    "retalking",
    "VideoReTalking: D-Net stabilised reference + ENet/LNet (slow on CPU)",
    build,
    context=MIN_OVERLAP,
    checkpoints=(("lnet",), ("enet",), ("dnet",), ("face3d_recon",), ("bfm_lm3d",), ("expression",)),
    rank=30,
)
