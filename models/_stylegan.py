"""StyleGAN2 pieces shared by the GPEN and GFPGAN decoders.

Both decoders (rosinality's equalized-learning-rate layout in GPEN, the
"clean" layout in GFPGAN) modulate one weight per sample with a style vector
and run all samples as one grouped convolution; they differ in how the weight
is scaled, how they upsample and what they add after the conv, which stays in
each network's file. Everything follows the device and dtype of its input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConstantInput", "PixelNorm", "channel_table", "modulate", "per_sample_conv"]

_EPS = 1e-8


def channel_table(channel_multiplier: float, narrow: float) -> dict[int, int]:
    """Feature channels per resolution of the StyleGAN2 generator (and of encoders sized like it)."""
    wide = {4: 512, 8: 512, 16: 512, 32: 512}
    scaled = {64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    return {r: int(c * narrow) for r, c in wide.items()} | {
        r: int(c * channel_multiplier * narrow) for r, c in scaled.items()
    }


class ConstantInput(nn.Module):
    """The learned map the decoder starts from, repeated over the batch.

    GPEN stores it as ``input`` and GFPGAN as ``weight``; `name` keeps each
    checkpoint's key.
    """

    def __init__(self, channels: int, name: str, size: int = 4) -> None:
        super().__init__()
        self._name = name
        self.register_parameter(name, nn.Parameter(torch.randn(1, channels, size, size)))

    def forward(self, batch: int) -> torch.Tensor:
        return getattr(self, self._name).expand(batch, -1, -1, -1)


class PixelNorm(nn.Module):
    """Scale each style vector to unit root-mean-square over its features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + _EPS)


def modulate(weight: torch.Tensor, style: torch.Tensor, demodulate: bool) -> torch.Tensor:
    """Per-sample conv weights: (1, O, I, k, k) scaled by (B, I) styles -> (B, O, I, k, k).

    Demodulation rescales every output filter of every sample to unit norm,
    which replaces instance normalisation of the activations.
    """
    w = weight * style[:, None, :, None, None]
    if demodulate:
        w = w * torch.rsqrt(w.pow(2).sum(dim=(2, 3, 4), keepdim=True) + _EPS)
    return w


def per_sample_conv(x: torch.Tensor, weights: torch.Tensor, padding: int) -> torch.Tensor:
    """Convolve sample b of `x` (B, I, H, W) with its own weight `weights[b]` (O, I, k, k)."""
    b, _, h, w = x.shape
    out = F.conv2d(x.reshape(1, -1, h, w), weights.flatten(0, 1), padding=padding, groups=b)
    return out.reshape(b, -1, *out.shape[2:])
