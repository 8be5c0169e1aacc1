"""The VideoReTalking engine: D-Net stabilisation and E-Net/L-Net generation on the tracked face (`build.py`)."""

from __future__ import annotations

from lipstream.config import SyncConfig

from dataclasses import replace

from ...stage import Stage
from ..base import Engine, Found, Requirement, plain_options
from .config import MIN_OVERLAP


def build(config: SyncConfig, found: Found) -> list[Stage]:
    from .build import retalking_stages

    return retalking_stages(config, found)


def options(config: SyncConfig) -> tuple[SyncConfig, tuple[Requirement, ...]]:
    """`best` is VideoReTalking's recipe: GPEN on the references and, unless --enhance says otherwise, GFPGAN on the mouth."""
    if config.quality != "best":
        return plain_options(config)
    if config.enhance == "auto":
        config = replace(config, enhance="gfpgan")
    return config, (("gpen512",),)


ENGINE = Engine(
    "retalking",
    "VideoReTalking: D-Net stabilised reference + ENet/LNet (slow on CPU)",
    build,
    context=MIN_OVERLAP,
    checkpoints=(("lnet",), ("enet",), ("dnet",), ("face3d_recon",), ("bfm_lm3d",), ("expression",)),
    rank=30,
    enhances=True,
    options=options,
)
