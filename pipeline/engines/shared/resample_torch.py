"""Batched resampling of regions of different sizes, as matrices: OpenCV's resizes on any torch device.

A resize is separable: `rows @ image @ cols.T`, one weight matrix per axis.
Written that way, a batch of regions of different sizes is one padded
tensor and one batched matrix product (no loop, no grouping by size), and
the weights can be OpenCV's exactly: INTER_AREA's fractional pixel coverage
(what `F.interpolate(mode="area")` only approximates with whole pixels) and
INTER_LINEAR's half-pixel centres clamped at the border (the same as
`F.interpolate(mode="bilinear", align_corners=False)`). Zero weights beyond
a region's own size make the padding of the batch irrelevant.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch

__all__ = ["Kind", "axis_weights", "resample", "resize_weights", "take"]

Kind = Literal["area", "linear"]


def axis_weights(n_in: int, n_out: int, kind: Kind) -> np.ndarray:
    """(n_out, n_in) float64 weights that resize one axis of n_in pixels to n_out, as OpenCV does."""
    scale = n_in / n_out
    if kind == "area":
        # Output pixel i covers [i*scale, (i+1)*scale) of the input; each input pixel weighs by its overlap.
        start = np.arange(n_out)[:, None] * scale
        pixel = np.arange(n_in)[None, :]
        overlap = np.minimum(start + scale, pixel + 1) - np.maximum(start, pixel)
        return np.clip(overlap, 0.0, None) / scale
    where = np.clip((np.arange(n_out) + 0.5) * scale - 0.5, 0.0, n_in - 1)
    left = np.floor(where).astype(np.int64)
    frac = where - left
    weights = np.zeros((n_out, n_in))
    np.add.at(weights, (np.arange(n_out), left), 1.0 - frac)
    np.add.at(weights, (np.arange(n_out), np.minimum(left + 1, n_in - 1)), frac)
    return weights


def resize_weights(
    sizes_in: Sequence[tuple[int, int]],
    sizes_out: Sequence[tuple[int, int]],
    kinds: Sequence[Kind],
    padded_in: tuple[int, int],
    padded_out: tuple[int, int],
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row (N, H_out, H_in) and column (N, W_out, W_in) weights for a padded batch, zero outside each region.

    Sizes are (height, width); `padded_*` are the batch tensor's (height, width).
    """
    rows = np.zeros((len(sizes_in), padded_out[0], padded_in[0]), np.float32)
    cols = np.zeros((len(sizes_in), padded_out[1], padded_in[1]), np.float32)
    for n, ((hi, wi), (ho, wo), kind) in enumerate(zip(sizes_in, sizes_out, kinds)):
        rows[n, :ho, :hi] = axis_weights(hi, ho, kind)
        cols[n, :wo, :wi] = axis_weights(wi, wo, kind)
    return torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)


def resample(images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float images through `resize_weights` -> (N, C, H_out, W_out)."""
    if rows.shape[1] * images.shape[3] <= cols.shape[1] * images.shape[2]:  # the cheaper axis first
        return (rows[:, None] @ images) @ cols.transpose(1, 2)[:, None]
    return rows[:, None] @ (images @ cols.transpose(1, 2)[:, None])


def take(images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """`images[n, :, rows[n]][..., cols[n]]` for every n: (N, C, H, W) -> (N, C, R, Q).

    Per-sample crops, offsets and border reflections of a padded batch, as two gathers.
    """
    n, c, _, w = images.shape
    picked = images.gather(2, rows[:, None, :, None].expand(n, c, rows.shape[1], w))
    return picked.gather(3, cols[:, None, None, :].expand(n, c, rows.shape[1], cols.shape[1]))
