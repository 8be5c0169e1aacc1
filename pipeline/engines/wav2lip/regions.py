"""The Wav2Lip stage's per-frame work as batched torch ops on its device: network input and paste.

The same steps as the stage's numpy/OpenCV path, on a `RegionBatch`: the
crop resized to 96x96 (INTER_AREA when shrinking, else INTER_LINEAR, with
OpenCV's weights and its rounding to 8 bits), BGR in [0, 1] with the lower
half of the masked copy blanked; the generated face resized back to the box
(INTER_LINEAR), rounded, and blended under the lower-face mask through the
Laplacian pyramid. One padded batch per window: no loop over frames on the
device.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..shared.pyramid_torch import blend_regions
from ..shared.region_torch import RegionBatch, download_patches
from ..shared.resample_torch import Kind, resample, resize_weights

__all__ = ["SIZE", "network_input", "paste"]

SIZE = 96  # Wav2Lip's input and output side

Box = tuple[int, int, int, int]


def network_input(crops: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> torch.Tensor:
    """(N, 6, 96, 96) float32 from uint8 crops (N, 3, h, w) RGB: the masked crop then the reference, BGR in [0, 1]."""
    # INTER_AREA when shrinking: Wav2Lip was trained on low-resolution faces, not aliased ones.
    kinds: list[Kind] = ["area" if h > SIZE and w > SIZE else "linear" for h, w in sizes]
    square = [(SIZE, SIZE)] * len(sizes)
    rows, cols = resize_weights(sizes, square, kinds, crops.shape[2:], (SIZE, SIZE), crops.device)
    small = resample(crops.float(), rows, cols).round().clamp(0.0, 255.0)  # what an 8-bit resize keeps
    reference = small.flip(1) / 255.0
    masked = reference.clone()
    masked[:, :, SIZE // 2 :] = 0.0
    return torch.cat([masked, reference], 1)


def paste(batch: RegionBatch, crops: torch.Tensor, generated: torch.Tensor, masks: Sequence[np.ndarray]) -> list[tuple[Box, np.ndarray]]:
    """(even box, uint8 RGB patch) per frame: `generated` (N, 3, 96, 96, BGR in [0, 1]) blended into `crops`.

    `crops` is `batch.crops()`; `masks` are float32 (h, w) weights of each box.
    """
    sizes = batch.sizes
    rows, cols = resize_weights([(SIZE, SIZE)] * len(sizes), sizes, ["linear"] * len(sizes), (SIZE, SIZE), crops.shape[2:], crops.device)
    faces = resample(generated.flip(1) * 255.0, rows, cols).round().clamp(0.0, 255.0)
    weights = np.zeros((len(sizes), 1, *crops.shape[2:]), np.float32)
    for n, mask in enumerate(masks):
        weights[n, 0, : mask.shape[0], : mask.shape[1]] = mask
    blended = blend_regions(crops, faces, torch.from_numpy(weights).to(crops.device), sizes)
    return download_patches(batch, batch.put(blended))
