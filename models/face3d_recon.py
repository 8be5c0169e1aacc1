"""Deep3DFaceRecon coefficient regressor (ResNet-50 -> 257 Basel-Face-Model coefficients).

Provenance
    Paper: Yu Deng, Jiaolong Yang, Sicheng Xu, Dong Chen, Yunde Jia, Xin Tong,
    "Accurate 3D Face Reconstruction with Weakly-Supervised Learning: From Single
    Image to Image Set", CVPR Workshops 2019 (arXiv:1903.08527).
    Official repositories: github.com/sicxu/Deep3DFaceRecon_pytorch
    (``models/networks.py``: ``ReconNetWrapper`` built by ``define_net_recon``
    with ``net_recon='resnet50', use_last_fc=False``), copied into
    github.com/OpenTalker/video-retalking as ``third_part/face3d``. The backbone
    is torchvision's ResNet-50 layout. This file is an independent
    re-implementation from the architecture description; submodule names
    reproduce the official checkpoint keys (``backbone.*``, ``final_layers.N.*``).
    Checkpoint: ``face3d_pretrain_epoch_20.pth`` (video-retalking README's
    Google-Drive folder / GitHub release v0.0.1 of vinthony/video-retalking), a
    Deep3DFaceRecon training checkpoint whose network sits under ``'net_recon'``;
    see `remap`.
    Weights licence: the code of both repositories is MIT-licensed; the weights
    were trained with the Basel Face Model 2009, whose own licence (registration,
    non-commercial research use) governs the BFM files the pipeline needs for
    alignment. The weights are not distributed with this package.

Contract (``forward(image)``)
    image: (B, 3, 224, 224) float, **RGB in [0, 1]** (plain ``/ 255``, no mean/std),
           the face aligned by the Deep3DFaceRecon 5-point procedure
           (`lipstream.models._face3d_coeffs.face3d_alignment`).
    returns (B, 257) float coefficients; split them with
    `lipstream.models._face3d_coeffs.split_coeffs`:
    identity 0:80 | expression 80:144 | texture 144:224 | angles 224:227 (radians) |
    gamma (SH lighting) 227:254 | translation 254:257 (tx, ty, tz).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ._state import clean_state_dict

__all__ = ["Bottleneck", "Face3dRecon", "NUM_PARAMS", "ResNet50", "remap"]

NUM_PARAMS = 24_034_625
"""Trainable parameters (BatchNorm running statistics not included; the state_dict holds 24,087,798 numbers)."""

HEAD_SIZES = (80, 64, 80, 3, 27, 2, 1)
"""Output widths of the seven 1x1 heads: id, exp, tex, angle, gamma, (tx, ty), tz."""


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: the stride sits on the 3x3 conv."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """ResNet-50 trunk without the classifier: (B, 3, H, W) -> (B, 2048, 1, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        cin = 64
        for index, (width, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], 1):
            layer = [Bottleneck(cin, width, stride)]
            cin = width * Bottleneck.expansion
            layer += [Bottleneck(cin, width) for _ in range(blocks - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x)


class Face3dRecon(nn.Module):
    """ResNet-50 features -> seven 1x1-conv heads concatenated into 257 coefficients."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = ResNet50()
        self.final_layers = nn.ModuleList(nn.Conv2d(2048, n, kernel_size=1, bias=True) for n in HEAD_SIZES)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] aligned faces (B,3,224,224) -> coefficients (B,257)."""
        features = self.backbone(image)
        return torch.cat([head(features) for head in self.final_layers], dim=1).flatten(1)


def remap(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Turn ``face3d_pretrain_epoch_20.pth`` (or a bare state_dict) into this module's state_dict.

    Takes ``checkpoint['net_recon']`` (the optimiser and other training entries are
    ignored) and strips a leading ``module.`` left by DataParallel training.
    Pure: the input is not modified and tensors are not copied.
    """
    return clean_state_dict(checkpoint, "net_recon")
