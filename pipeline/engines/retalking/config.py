"""Options of the retalking engine (cheap to import: the engine table reads its context from here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lipstream.config import QUALITIES, Quality

__all__ = ["EXPRESSIONS", "MIN_OVERLAP", "RetalkingConfig"]

MIN_OVERLAP = 26
"""Window overlap the engine needs: D-Net reads frames idx-13 .. idx+12, and the
planner puts overlap // 2 frames before a window's owned frames and the rest after."""

EXPRESSIONS = {"neutral": "expression_center", "smile": "expression_mouth"}


@dataclass(frozen=True)
class RetalkingConfig:
    """Options of the retalking engine."""

    quality: Quality = "balanced"
    expression: Literal["neutral", "smile"] = "neutral"  # the template D-Net gives every reference
    batch_size: int = 4  # frames per face3d / L-Net call (small inputs: batching pays everywhere)
    image_batch: int | None = None  # frames per D-Net / E-Net call; None: see `image_batch_for`
    style: Literal["window", "frame"] = "window"  # how often E-Net's style vector is computed
    pads: tuple[float, float, float, float] = (0.0, 0.1, 0.0, 0.0)  # E-Net box: top, bottom, left, right (face fractions)
    feather: float = 0.04  # mouth mask softness, in box heights

    def __post_init__(self) -> None:
        if self.quality not in QUALITIES:
            raise ValueError(f"quality must be one of {', '.join(QUALITIES)}, got {self.quality!r}")
        if self.expression not in EXPRESSIONS:
            raise ValueError(f"expression must be one of {', '.join(EXPRESSIONS)}, got {self.expression!r}")
        if self.batch_size < 1 or (self.image_batch is not None and self.image_batch < 1):
            raise ValueError(f"batch sizes must be >= 1, got {self.batch_size}, {self.image_batch}")

    @property
    def full_size(self) -> bool:
        """E-Net at 384 (True) or L-Net alone at 96."""
        return self.quality != "fast"

    def image_batch_for(self, device: str) -> int:
        """D-Net and E-Net frames per call: 1 on the CPU, where batching them is slower per frame
        (measured: D-Net 0.71 s at batch 1, 1.02 s a frame at batch 8; E-Net no gain at 2 or 4)
        and every E-Net frame holds ~0.4 GB of activations; `batch_size` on accelerators."""
        if self.image_batch is not None:
            return self.image_batch
        return 1 if device.split(":")[0] == "cpu" else self.batch_size

    @property
    def stabilise_every(self) -> int:
        """D-Net runs on one owned frame in this many."""
        return 4 if self.quality == "fast" else 1
