"""Wav2Lip generator: re-draws the mouth of a face crop to match one mel window.

Provenance
    Paper: K R Prajwal, Rudrabha Mukhopadhyay, Vinay Namboodiri, C V Jawahar,
    "A Lip Sync Expert Is All You Need for Speech to Lip Generation In The Wild",
    ACM Multimedia 2020 (arXiv:2008.10010).
    Official repository: github.com/Rudrabha/Wav2Lip (``models/wav2lip.py`` class
    ``Wav2Lip``, blocks from ``models/conv.py``). This file is an independent
    re-implementation from the architecture description; the submodule names
    reproduce the official checkpoint keys so weights load without renaming.
    Checkpoints: ``wav2lip.pth`` and ``wav2lip_gan.pth`` (same architecture,
    different weights), linked from the official README (Google Drive /
    SharePoint). They are a ``torch.save`` dict whose weights sit under
    ``'state_dict'``, keys possibly prefixed ``module.``; see `remap`.
    Weights licence: the official README restricts the models to personal,
    research and non-commercial use; commercial use needs a licence from the
    authors. The weights are not distributed with this package.

Contract (``forward(mel, face)``; audio FIRST)
    mel:  (B, 1, 80, 16) float, one window of the normalised mel spectrogram
          from `lipstream.models.wav2lip_mel` (values in [-4, 4], 80 bins
          low->high along H, 16 frames = 200 ms along W).
    face: (B, 6, 96, 96) float in [0, 1], **BGR** channel order:
          channels 0-2 = the target crop with rows 48..95 set to 0,
          channels 3-5 = an unmasked reference crop (the same frame at
          inference). Plain division by 255, no mean/std.
    returns (B, 3, 96, 96) in (0, 1), BGR, the reconstructed crop.
    5-D sequences (mel (B, T, 1, 80, 16), face (B, 6, T, 96, 96)) are folded
    into the batch and returned as (B, 3, T, 96, 96), like the official model.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ._state import clean_state_dict
from .layers import ConvBN, DeconvBN

__all__ = ["NUM_PARAMS", "Wav2Lip", "remap"]

NUM_PARAMS = 36_298_035
"""Trainable parameters (BatchNorm running statistics not included)."""


def _res(channels: int) -> ConvBN:
    return ConvBN(channels, channels, 3, 1, 1, residual=True)


def _down(cin: int, cout: int, n_res: int) -> nn.Sequential:
    """Stride-2 ConvBN followed by `n_res` residual blocks."""
    return nn.Sequential(ConvBN(cin, cout, 3, 2, 1), *(_res(cout) for _ in range(n_res)))


def _up(cin: int, cout: int, n_res: int, stride: int = 2) -> nn.Sequential:
    """DeconvBN (x2 when stride 2, 1x1 -> 3x3 when stride 1) followed by `n_res` residual blocks."""
    if stride == 2:
        head = DeconvBN(cin, cout, 3, 2, 1, output_padding=1)
    else:
        head = DeconvBN(cin, cout, 3, 1, 0)
    return nn.Sequential(head, *(_res(cout) for _ in range(n_res)))


def audio_encoder_layers(n_res_last: int) -> list[nn.Module]:
    """The mel encoder shared (up to its last residual count) with SyncNet_color.

    80x16 -> 80x16 -> 27x16 -> 9x6 -> 3x3 -> 1x1, ending with 512 channels.
    """
    return [
        ConvBN(1, 32, 3, 1, 1),
        _res(32),
        _res(32),
        ConvBN(32, 64, 3, (3, 1), 1),
        _res(64),
        _res(64),
        ConvBN(64, 128, 3, 3, 1),
        _res(128),
        _res(128),
        ConvBN(128, 256, 3, (3, 2), 1),
        *(_res(256) for _ in range(n_res_last)),
        ConvBN(256, 512, 3, 1, 0),
        ConvBN(512, 512, 1, 1, 0),
    ]


class Wav2Lip(nn.Module):
    """U-Net face generator whose bottleneck is replaced by the audio embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(ConvBN(6, 16, 7, 1, 3)),  # 96x96
                _down(16, 32, 2),  # 48x48
                _down(32, 64, 3),  # 24x24
                _down(64, 128, 2),  # 12x12
                _down(128, 256, 2),  # 6x6
                _down(256, 512, 1),  # 3x3
                nn.Sequential(ConvBN(512, 512, 3, 1, 0), ConvBN(512, 512, 1, 1, 0)),  # 1x1
            ]
        )
        self.audio_encoder = nn.Sequential(*audio_encoder_layers(n_res_last=1))
        # Input channels of each decoder block = previous output + the mirrored encoder skip.
        self.face_decoder_blocks = nn.ModuleList(
            [
                nn.Sequential(ConvBN(512, 512, 1, 1, 0)),  # 1x1
                _up(1024, 512, 1, stride=1),  # 3x3
                _up(1024, 512, 2),  # 6x6
                _up(768, 384, 2),  # 12x12
                _up(512, 256, 2),  # 24x24
                _up(320, 128, 2),  # 48x48
                _up(160, 64, 2),  # 96x96
            ]
        )
        self.output_block = nn.Sequential(ConvBN(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1), nn.Sigmoid())

    def forward(self, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        """Generate faces; mel (B,1,80,16) and face (B,6,96,96), or their 5-D sequence forms."""
        batch = mel.shape[0]
        sequence = face.dim() == 5
        if sequence:
            # Time-major blocks of `batch` samples, as the official model folds them.
            mel = torch.cat([mel[:, t] for t in range(mel.shape[1])], dim=0)
            face = torch.cat([face[:, :, t] for t in range(face.shape[2])], dim=0)

        skips = []
        x = face
        for block in self.face_encoder_blocks:
            x = block(x)
            skips.append(x)

        x = self.audio_encoder(mel)
        for block, skip in zip(self.face_decoder_blocks, reversed(skips)):
            x = torch.cat([block(x), skip], dim=1)

        out = self.output_block(x)
        if sequence:
            out = torch.stack(torch.split(out, batch, dim=0), dim=2)
        return out


def remap(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Turn an official checkpoint (or a bare state_dict) into this module's state_dict.

    Unwraps ``checkpoint['state_dict']`` when present and drops the leading
    ``module.`` that DataParallel training left on the keys. Pure: the input is
    not modified and tensors are not copied.
    """
    return clean_state_dict(checkpoint, "state_dict")
