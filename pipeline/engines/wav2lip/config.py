"""Options of the Wav2Lip engine (cheap to import: the engine table reads its context from here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CHECKPOINT", "Wav2LipConfig"]

CHECKPOINT = ("wav2lip_gan", "wav2lip")
"""Either generator; with both present the GAN one is used (sharper image; the plain one syncs a little tighter)."""


@dataclass(frozen=True)
class Wav2LipConfig:
    """Options of the Wav2Lip engine.

    `pads` (top, bottom, left, right) grow the landmark box by fractions of
    its height (top, bottom) and width (left, right), in the order of
    Wav2Lip's ``--pads``. Wav2Lip's default (0, 10, 0, 0) is in pixels on
    an S3FD box; the FaceMesh box already spans the upper forehead (point
    10) to the chin (152) and cheek to cheek (234/454), like an S3FD box,
    so the equivalent keeps top, left and right and adds 5% of the face
    height below the chin (10 px of a ~200 px face, the size Wav2Lip's
    default was tuned on), room for a jaw that opens further than the
    original.

    `regions` says where the per-frame work around the network runs:
    "auto" as batched torch ops on the network's device unless that is the
    CPU (there OpenCV is faster), "torch" or "opencv" to force one.
    """

    pads: tuple[float, float, float, float] = (0.0, 0.05, 0.0, 0.0)
    batch_size: int = 16  # frames per forward pass; a window rarely owns more
    smooth: int = 5  # frames whose boxes are averaged (centred), as Wav2Lip's detector smoothing
    feather: float = 0.04  # mask softness, in box heights (Gaussian sigma)
    regions: Literal["auto", "torch", "opencv"] = "auto"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.smooth < 1:
            raise ValueError(f"smooth must be >= 1 frame, got {self.smooth}")
        if len(self.pads) != 4 or min(self.pads) <= -0.5:
            raise ValueError(f"pads must be four fractions (top, bottom, left, right) above -0.5, got {self.pads}")
        if self.regions not in ("auto", "torch", "opencv"):
            raise ValueError(f"regions must be 'auto', 'torch' or 'opencv', got {self.regions!r}")

    @property
    def reach(self) -> int:
        """Frames of context read on each side of an owned frame (box smoothing)."""
        return self.smooth // 2

    @property
    def min_overlap(self) -> int:
        """The window overlap that gives every owned frame its `reach` on both sides."""
        return 2 * self.reach
