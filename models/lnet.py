"""VideoReTalking L-Net: redraws the lower half of a 96x96 face to match a mel window.

Provenance
    Paper: Kun Cheng, Xiaodong Cun, Yong Zhang, Menghan Xia, Fei Yin, Mingrui Zhu,
    Xuan Wang, Jue Wang, Nannan Wang, "VideoReTalking: Audio-based Lip
    Synchronization for Talking Head Video Editing In the Wild", SIGGRAPH Asia
    2022 (arXiv:2211.14758).
    Official repository: github.com/OpenTalker/video-retalking (formerly
    vinthony/video-retalking), ``models/LNet.py`` class ``LNet`` with blocks from
    ``models/base_blocks.py``, ``models/ffc.py`` and ``models/transformer.py``.
    This file is an independent re-implementation; submodule names reproduce
    the official checkpoint keys so weights load without renaming.
    Checkpoint: ``LNet.pth`` (GitHub release v0.0.1 of vinthony/video-retalking
    and the README's Google-Drive folder), a ``torch.save`` dict with the
    weights under ``'state_dict'``, keys possibly prefixed ``module.``; see
    `remap`. Spectral-norm convs are stored as ``weight_orig``/``weight_u``/
    ``weight_v``.
    Licence: the repository is MIT-licensed and publishes no separate terms for
    the released weights beyond the README's Tencent disclaimer (no use of
    Tencent names, no use harming others' rights). The weights are not
    distributed with this package.

Contract (``forward(audio, face)``; audio FIRST)
    audio: (B, 1, 80, 16) float, one normalised mel window in [-4, 4]
           (Wav2Lip front-end: 80 bins along H, 16 frames = 200 ms along W).
    face:  (B, 6, 96, 96) float in [0, 1], **BGR** (cv2 frames divided by 255,
           never converted): channels 0-2 = the target crop with rows 48..95
           set to 0, channels 3-5 = the reference crop.
    returns (B, 3, 96, 96) in (0, 1), BGR. `LNet.logits` gives the map before
    the sigmoid. 5-D sequences (audio (B, T, 1, 80, 16), face (B, 6, T, 96, 96))
    are folded into the batch and returned as (B, 3, T, 96, 96).
    In VideoReTalking LNet is only called through `lipstream.models.enet.ENet`,
    which feeds it the 384x384 inputs resized bilinearly to 96x96.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ._retalking_blocks import (
    CrossAttentionTransformer,
    FFCResStack,
    SNConv2d,
    fold_time,
    unfold_time,
)
from ._state import clean_state_dict
from .layers import ConvBN, LayerNorm2d

__all__ = ["LNet", "NUM_PARAMS", "remap"]

NUM_PARAMS = 127_733_507
"""Trainable parameters (spectral-norm vectors and BatchNorm statistics not included)."""


class _SNBlock(nn.Module):
    """Spectral-norm conv -> LayerNorm2d -> LeakyReLU(0.1), optionally resampling.

    ``resample='up'`` doubles the size (nearest) before the conv, ``'down'``
    halves it (2x2 average) after the activation.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, resample: str | None = None) -> None:
        super().__init__()
        if resample not in (None, "up", "down"):
            raise ValueError(f"resample must be None, 'up' or 'down', got {resample!r}")
        self.resample = resample
        self.model = nn.Sequential(SNConv2d(cin, cout, kernel, kernel // 2), LayerNorm2d(cout), nn.LeakyReLU(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = self.model(x)
        if self.resample == "down":
            x = F.avg_pool2d(x, 2)
        return x


class _FinalBlock(nn.Module):
    """7x7 spectral-norm conv to RGB; returns logits (LNet applies the sigmoid)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.model = nn.Sequential(SNConv2d(cin, cout, 7, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _VisualEncoder(nn.Module):
    """Two unshared image pyramids; cross-attention merges them at 12x12."""

    def __init__(self) -> None:
        super().__init__()
        # Registration order mirrors the checkpoint's key order.
        self.first_inp = _SNBlock(3, 64, kernel=7)
        self.first_ref = _SNBlock(3, 64, kernel=7)
        self.ref_down0 = _SNBlock(64, 128, resample="down")
        self.inp_down0 = _SNBlock(64, 128, resample="down")
        self.ref_down1 = _SNBlock(128, 256, resample="down")
        self.inp_down1 = _SNBlock(128, 256, resample="down")
        self.ca2 = CrossAttentionTransformer(512, depth=2, heads=4, dim_head=64, mlp_dim=256)
        self.ref_down2 = _SNBlock(256, 512, resample="down")
        self.inp_down2 = _SNBlock(256, 512, resample="down")

    def forward(self, masked: torch.Tensor, ref: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Return the skips (64@96, 128@48, 256@24) and the 1024@12 bottleneck."""
        x, y = self.first_inp(masked), self.first_ref(ref)
        skips = [x]
        x, y = self.inp_down0(x), self.ref_down0(y)
        skips.append(x)
        x, y = self.inp_down1(x), self.ref_down1(y)
        skips.append(x)
        x, y = self.inp_down2(x), self.ref_down2(y)
        return skips, torch.cat([self.ca2(x, y), y], dim=1)


class _Decoder(nn.Module):
    """Audio-modulated FFC residual stacks, nearest upsampling and skip jumps."""

    def __init__(self, cond_dim: int, num_res_blocks: int) -> None:
        super().__init__()
        for i, (cin, cout) in zip((2, 1, 0), ((1024, 256), (256, 128), (128, 64))):
            self.add_module(f"up{i}", _SNBlock(cin, cout, resample="up"))
            self.add_module(f"res{i}", FFCResStack(num_res_blocks, cin, cond_dim))
            self.add_module(f"jump{i}", _SNBlock(cout, cout))
        self.final = _FinalBlock(64, 3)

    def forward(self, skips: list[torch.Tensor], bottleneck: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out = bottleneck
        for i in (2, 1, 0):
            out = getattr(self, f"res{i}")(out, cond)
            out = getattr(self, f"up{i}")(out)
            out = getattr(self, f"jump{i}")(skips[i]) + out
        return self.final(out)


def _audio_encoder(out_dim: int) -> nn.Sequential:
    """Wav2Lip's mel encoder: (B, 1, 80, 16) -> (B, out_dim, 1, 1)."""
    return nn.Sequential(
        ConvBN(1, 32, 3, 1, 1),
        ConvBN(32, 32, 3, 1, 1, residual=True),
        ConvBN(32, 32, 3, 1, 1, residual=True),
        ConvBN(32, 64, 3, (3, 1), 1),
        ConvBN(64, 64, 3, 1, 1, residual=True),
        ConvBN(64, 64, 3, 1, 1, residual=True),
        ConvBN(64, 128, 3, 3, 1),
        ConvBN(128, 128, 3, 1, 1, residual=True),
        ConvBN(128, 128, 3, 1, 1, residual=True),
        ConvBN(128, 256, 3, (3, 2), 1),
        ConvBN(256, 256, 3, 1, 1, residual=True),
        ConvBN(256, 512, 3, 1, 0),
        ConvBN(512, out_dim, 1, 1, 0),
    )


class LNet(nn.Module):
    """L-Net with the official defaults (the only configuration inference uses)."""

    def __init__(self, descriptor_nc: int = 512, num_res_blocks: int = 9) -> None:
        super().__init__()
        self.encoder = _VisualEncoder()
        self.decoder = _Decoder(descriptor_nc, num_res_blocks)
        self.audio_encoder = _audio_encoder(descriptor_nc)

    def logits(self, audio: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid output for 4-D inputs; see the module docstring for the contract."""
        skips, bottleneck = self.encoder(face[:, :3], face[:, 3:6])
        return self.decoder(skips, bottleneck, self.audio_encoder(audio))

    def forward(self, audio: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        if face.dim() == 5:
            batch = face.shape[0]
            out = torch.sigmoid(self.logits(fold_time(audio, 1), fold_time(face, 2)))
            return unfold_time(out, batch)
        return torch.sigmoid(self.logits(audio, face))


def remap(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Turn ``LNet.pth`` (or a bare state_dict) into this module's state_dict.

    Unwraps ``checkpoint['state_dict']`` and drops a leading ``module.``; the
    keys are otherwise identical. Load the result with ``strict=True``: the
    official loader uses ``strict=False`` and would hide a mismatch.
    """
    return clean_state_dict(checkpoint, "state_dict")
