"""SyncNet_color: Wav2Lip's expert lip-sync discriminator (audio/lip embeddings).

Provenance
    Paper: K R Prajwal, Rudrabha Mukhopadhyay, Vinay Namboodiri, C V Jawahar,
    "A Lip Sync Expert Is All You Need for Speech to Lip Generation In The Wild",
    ACM Multimedia 2020 (arXiv:2008.10010); the expert is a colour variant of
    SyncNet (Chung & Zisserman, "Out of time", ACCV 2016 workshops).
    Official repository: github.com/Rudrabha/Wav2Lip (``models/syncnet.py`` class
    ``SyncNet_color``, blocks from ``models/conv.py``). Independent
    re-implementation; submodule names reproduce the official checkpoint keys.
    Checkpoint: ``lipsync_expert.pth`` (README "Expert Discriminator" row, Google
    Drive / SharePoint), a dict with weights under ``'state_dict'`` and keys
    possibly prefixed ``module.``; see `remap`.
    Weights licence: the official README restricts the models to personal,
    research and non-commercial use; commercial use needs a licence from the
    authors. The weights are not distributed with this package.

Contract (``forward(mel, face)``; audio FIRST)
    mel:  (B, 1, 80, 16) normalised mel window in [-4, 4] (see `wav2lip_mel`).
    face: (B, 15, 48, 96) in [0, 1]: 5 consecutive 96x96 **BGR** crops stacked
          frame-major along channels (0-2 = frame 0 B,G,R; 3-5 = frame 1 ...),
          divided by 255, then only rows 48..95 (the lower half) kept.
          The mel window of the 5 frames starts at int(80 * first_frame / 25).
    returns (audio_embedding, face_embedding), each (B, 512), L2-normalised and
    non-negative; `sync_cosine` of the two is the expert's in-sync probability.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ._state import clean_state_dict
from .layers import ConvBN
from .wav2lip import audio_encoder_layers

__all__ = ["NUM_PARAMS", "SyncNetColor", "remap", "sync_cosine"]

NUM_PARAMS = 16_435_072
"""Trainable parameters (BatchNorm running statistics not included)."""


def _res(channels: int) -> ConvBN:
    return ConvBN(channels, channels, 3, 1, 1, residual=True)


class SyncNetColor(nn.Module):
    """Two conv encoders mapping 5 lower-half faces and their mel window to unit 512-d vectors."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder = nn.Sequential(
            ConvBN(15, 32, 7, 1, 3),  # 48x96
            ConvBN(32, 64, 5, (1, 2), 1),  # 46x47: kernel 5 with padding 1 shrinks H by 2
            _res(64),
            _res(64),
            ConvBN(64, 128, 3, 2, 1),  # 23x24
            _res(128),
            _res(128),
            _res(128),
            ConvBN(128, 256, 3, 2, 1),  # 12x12
            _res(256),
            _res(256),
            ConvBN(256, 512, 3, 2, 1),  # 6x6
            _res(512),
            _res(512),
            ConvBN(512, 512, 3, 2, 1),  # 3x3
            ConvBN(512, 512, 3, 1, 0),  # 1x1
            ConvBN(512, 512, 1, 1, 0),
        )
        # Same layout as the generator's audio encoder but with two residuals at 256 channels.
        self.audio_encoder = nn.Sequential(*audio_encoder_layers(n_res_last=2))

    def forward(self, mel: torch.Tensor, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (audio_embedding, face_embedding), each (B, 512) with unit L2 norm."""
        audio = self.audio_encoder(mel).flatten(1)
        lips = self.face_encoder(face).flatten(1)
        return F.normalize(audio, p=2, dim=1), F.normalize(lips, p=2, dim=1)


def sync_cosine(audio_embedding: torch.Tensor, face_embedding: torch.Tensor) -> torch.Tensor:
    """Per-sample cosine similarity: the expert's sync probability, (B,) in [0, 1].

    This is the quantity Wav2Lip trains with BCE (1 = in sync); the embeddings
    are non-negative unit vectors, so it never leaves [0, 1]. The squared
    Euclidean distance between them is 2 - 2 * cosine if a distance is wanted.
    """
    return F.cosine_similarity(audio_embedding, face_embedding, dim=1)


def remap(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Unwrap ``checkpoint['state_dict']`` and drop ``module.`` prefixes; pure, no copies."""
    return clean_state_dict(checkpoint, "state_dict")
