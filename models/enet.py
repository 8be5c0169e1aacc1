"""VideoReTalking E-Net: runs L-Net at 96x96 and upsamples its face to 384x384.

Provenance
    Paper: Kun Cheng, Xiaodong Cun, Yong Zhang, Menghan Xia, Fei Yin, Mingrui Zhu,
    Xuan Wang, Jue Wang, Nannan Wang, "VideoReTalking: Audio-based Lip
    Synchronization for Talking Head Video Editing In the Wild", SIGGRAPH Asia
    2022 (arXiv:2211.14758).
    Official repository: github.com/OpenTalker/video-retalking (formerly
    vinthony/video-retalking), ``models/ENet.py`` class ``ENet`` (StyleConv,
    ToRGB and ResBlock from ``models/base_blocks.py``, themselves GFPGAN /
    StyleGAN2 style). Independent re-implementation; submodule names reproduce
    the official checkpoint keys.
    Checkpoints: ``ENet.pth`` for the E-Net's own layers plus ``LNet.pth`` for
    the wrapped ``low_res`` L-Net (GitHub release v0.0.1 of
    vinthony/video-retalking and the README's Google-Drive folder). Both are
    ``torch.save`` dicts with ``'state_dict'``, keys possibly prefixed
    ``module.``; the official loader ignores every ``low_res`` key of
    ``ENet.pth``. See `remap`.
    Licence: the repository is MIT-licensed and publishes no separate terms for
    the released weights beyond the README's Tencent disclaimer. The weights
    are not distributed with this package.

Contract (``forward(audio, face, gt=None, noise=None, style=None)``; audio FIRST)
    audio: (B, 1, 80, 16) normalised mel window in [-4, 4].
    face:  (B, 6, 384, 384) float in [0, 1], **BGR** (cv2 / 255): channels 0-2
           = the original face crop resized to 384 with rows 192..383 set to 0,
           channels 3-5 = the reference crop (in VideoReTalking: the D-Net
           stabilised, GPEN-enhanced face pasted into the same box) at 384.
           L-Net sees cat(channels 0-2, gt) resized bilinearly to 96x96
           (align_corners=False, no antialias); the style vector comes from
           channels 3-5 resized the same way to 256x256.
    gt:    (B, 3, 384, 384), the second half of L-Net's input; inference passes
           the reference (``face[:, 3:6]``), which is what ``None`` means.
    noise: the StyleConv noise, see `ENet.forward`. Upstream draws fresh random
           noise on every call; ``None`` (default) adds none, which makes the
           model deterministic.
    style: optional precomputed `ENet.style_code` of the reference.
    returns ``(out, low_res)``: out (B, 3, 384, 384) BGR with **no output
           activation** (values leave [0, 1]; inference clamps to [0, 1] and
           multiplies by 255), low_res = L-Net's (B, 3, 96, 96) sigmoid image.
    Only 4-D batches are accepted: upstream's 5-D (training) path is not
    reproduced; fold time into the batch yourself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from ._state import clean_state_dict
from .lnet import LNet
from .lnet import remap as remap_lnet

__all__ = ["ENet", "NUM_PARAMS", "Noise", "remap"]

NUM_PARAMS = 158_931_088
"""Trainable parameters including the wrapped L-Net (127,733,507 of them)."""

Noise = Union[Sequence[Union[torch.Tensor, None]], torch.Generator, None]
"""Noise for the four StyleConvs: tensors (B|1, 1, H, W) per layer, a generator, or None."""


def _resize(x: torch.Tensor, **kwargs: object) -> torch.Tensor:
    return F.interpolate(x, mode="bilinear", align_corners=False, **kwargs)


class _DownResBlock(nn.Module):
    """conv-lrelu, bilinear /2, conv-lrelu, plus a 1x1 skip of the halved input."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1)
        self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.conv1(x), 0.2)
        out = F.leaky_relu(self.conv2(_resize(out, scale_factor=0.5)), 0.2)
        return out + self.skip(_resize(x, scale_factor=0.5))


class _ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated conv; ``upsample`` first resizes the input x2 bilinearly."""

    def __init__(
        self, cin: int, cout: int, kernel: int, style_dim: int, demodulate: bool, upsample: bool = False
    ) -> None:
        super().__init__()
        self.demodulate = demodulate
        self.upsample = upsample
        self.modulation = nn.Linear(style_dim, cin)
        self.weight = nn.Parameter(torch.randn(1, cout, cin, kernel, kernel) / math.sqrt(cin * kernel * kernel))
        nn.init.kaiming_normal_(self.modulation.weight, mode="fan_in", nonlinearity="linear")
        nn.init.ones_(self.modulation.bias)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, cin = x.shape[:2]
        _, cout, _, k, _ = self.weight.shape
        weight = self.weight * self.modulation(style).view(b, 1, cin, 1, 1)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        if self.upsample:
            x = _resize(x, scale_factor=2)
        # One grouped conv applies every sample's own kernel.
        x = x.reshape(1, b * cin, *x.shape[2:])
        out = F.conv2d(x, weight.reshape(b * cout, cin, k, k), padding=k // 2, groups=b)
        return out.view(b, cout, *out.shape[2:])


class _StyleConv(nn.Module):
    """Modulated 3x3 conv (x sqrt 2), optional noise, bias, LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, style_dim: int, upsample: bool) -> None:
        super().__init__()
        self.modulated_conv = _ModulatedConv2d(cin, cout, 3, style_dim, demodulate=True, upsample=upsample)
        self.weight = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | torch.Generator | None = None
    ) -> torch.Tensor:
        out = self.modulated_conv(x, style) * math.sqrt(2)
        if isinstance(noise, torch.Generator):
            b, _, h, w = out.shape
            noise = torch.randn((b, 1, h, w), generator=noise, device=noise.device, dtype=out.dtype)
        if noise is not None:
            out = out + self.weight * noise.to(out)
        return F.leaky_relu(out + self.bias, 0.2)


class _ToRGB(nn.Module):
    """1x1 modulated conv to 3 channels (no demodulation) added to the upsampled skip."""

    def __init__(self, cin: int, style_dim: int) -> None:
        super().__init__()
        self.modulated_conv = _ModulatedConv2d(cin, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.modulated_conv(x, style) + self.bias + _resize(skip, scale_factor=2)


class ENet(nn.Module):
    """E-Net around an L-Net (``low_res``); a default L-Net is built when none is given."""

    def __init__(self, lnet: LNet | None = None, num_style_feat: int = 512) -> None:
        super().__init__()
        self.low_res = lnet if lnet is not None else LNet()
        self.conv_body_first = nn.Conv2d(3, 256, 1)
        widths = (256, 256, 512, 512, 512, 512, 512)  # 256 px -> 4 px
        self.conv_body_down = nn.ModuleList(_DownResBlock(a, b) for a, b in zip(widths, widths[1:]))
        self.final_linear = nn.Linear(512 * 4 * 4, num_style_feat)
        self.final_conv = nn.Conv2d(512, 512, 3, 1, 1)
        self.style_convs = nn.ModuleList(
            [
                _StyleConv(3, 256, num_style_feat, upsample=True),
                _StyleConv(256, 256, num_style_feat, upsample=False),
                _StyleConv(256, 128, num_style_feat, upsample=True),
                _StyleConv(128, 128, num_style_feat, upsample=False),
            ]
        )
        self.to_rgbs = nn.ModuleList([_ToRGB(256, num_style_feat), _ToRGB(128, num_style_feat)])

    def style_code(self, reference: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) reference in [0, 1] BGR -> (B, num_style_feat) style vector.

        Depends on the reference only, so a caller with a fixed reference may
        compute it once and pass it to `forward`.
        """
        feat = F.leaky_relu(self.conv_body_first(_resize(reference, size=(256, 256))), 0.2)
        for block in self.conv_body_down:
            feat = block(feat)
        feat = F.leaky_relu(self.final_conv(feat), 0.2)
        return self.final_linear(feat.flatten(1))

    def forward(
        self,
        audio: torch.Tensor,
        face: torch.Tensor,
        gt: torch.Tensor | None = None,
        noise: Noise = None,
        style: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(out, low_res)``; see the module docstring for the contract.

        ``noise`` replaces the N(0, 1) maps upstream draws afresh on every call
        (which makes the official model non-deterministic): ``None`` adds none
        (the deterministic production default), a sequence gives one tensor
        (or None) per StyleConv i = 0..3, broadcastable to (B, 1, H_i, W_i)
        with H_i = W_i = 200, 200, 400, 400, and a ``torch.Generator`` draws
        them in that order like upstream (on the generator's device).
        ``style`` may carry a precomputed ``style_code(face[:, 3:6])``.
        """
        if face.dim() != 4:
            raise ValueError(f"face must be (B, 6, 384, 384), got {tuple(face.shape)}")
        if noise is None or isinstance(noise, torch.Generator):
            noise = [noise] * len(self.style_convs)
        elif len(noise) != len(self.style_convs):
            raise ValueError(f"noise needs {len(self.style_convs)} entries, got {len(noise)}")
        masked, reference = face[:, :3], face[:, 3:6]
        if style is None:
            style = self.style_code(reference)
        lnet_input = torch.cat([masked, reference if gt is None else gt], dim=1)
        low_res = self.low_res(audio, _resize(lnet_input, size=(96, 96)))

        out = F.pad(low_res, (2, 2, 2, 2), mode="reflect")  # 100 px; two x2 stages, then cropped to 384
        skip = out
        for s, to_rgb in enumerate(self.to_rgbs):
            out = self.style_convs[2 * s](out, style, noise[2 * s])
            out = self.style_convs[2 * s + 1](out, style, noise[2 * s + 1])
            skip = to_rgb(out, style, skip)
        return skip[:, :, 8:-8, 8:-8], low_res


def remap(checkpoint: Mapping[str, object], lnet_checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Build the full ENet state_dict from ``ENet.pth`` and ``LNet.pth``.

    Like the official loader, every key of ``ENet.pth`` containing ``low_res``
    is dropped; the ``low_res.*`` entries come from ``LNet.pth`` (unwrapped
    and prefixed). Load the result with ``strict=True``. Pure: inputs are not
    modified and tensors are not copied.
    """
    own = {k: v for k, v in clean_state_dict(checkpoint, "state_dict").items() if "low_res" not in k}
    inner = {f"low_res.{k}": v for k, v in remap_lnet(lnet_checkpoint).items()}
    return {**inner, **own}
