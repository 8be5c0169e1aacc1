"""ParseNet: 19-class face parsing, used by GPEN and video-retalking for paste-back masks.

Provenance
    Architecture: the parsing network of PSFR-GAN (Chaofeng Chen, Xiaoming Li,
    Lingbo Yang, Xianhui Lin, Lei Zhang, Kwan-Yee K. Wong, "Progressive
    Semantic-Aware Style Transformation for Blind Face Restoration", CVPR 2021,
    arXiv:2009.08709), as modified in GPEN.
    Official repository: github.com/yangxy/GPEN, ``face_parse/parse_model.py``
    class ``ParseNet`` with blocks from ``face_parse/blocks.py`` (vendored by
    video-retalking as ``third_part/GPEN/face_parse``). This file is an
    independent re-implementation from the architecture description;
    submodule names reproduce the official checkpoint keys.
    Checkpoint: ``ParseNet-latest.pth``, a plain state_dict (strict load),
    published by the GPEN authors (links in the yangxy/GPEN README) and in
    release v0.0.1 of vinthony/video-retalking; see `remap`.
    Weights licence: as for GPEN-BFR-512 (see `lipstream.models.gpen`): no
    licence file; the GPEN README said "For academic and non-commercial use
    only" until March 2026 (not verified further). The weights are not
    distributed with this package.

Contract (``forward(image)``)
    image: (B, 3, H, W) float, **RGB in [-1, 1]** (upstream: cv2.resize to
           512x512 bilinear, BGR -> RGB, x / 255 * 2 - 1). The official use is
           512x512; any H, W divisible by 16 runs.
    returns ``(mask_logits, image_out)``: (B, 19, H, W) class logits
           (CelebAMask-HQ order, see `CLASSES`) and an unused (B, 3, H, W)
           image prediction. `class_mask` turns the logits into the 0/255
           masks video-retalking pastes with.
    Load in eval mode: the BatchNorm layers use their running statistics.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ._state import clean_state_dict

__all__ = ["CLASSES", "FACE_CLASSES", "MOUTH_CLASSES", "NUM_PARAMS", "ParseNet", "class_mask", "remap"]

NUM_PARAMS = 21_303_254
"""Trainable parameters (BatchNorm running statistics not included)."""

CLASSES = (
    "background", "skin", "nose", "eyeglasses", "left_eye", "right_eye", "left_brow", "right_brow",
    "left_ear", "right_ear", "mouth", "upper_lip", "lower_lip", "hair", "hat", "earring", "necklace",
    "neck", "cloth",
)  # fmt: skip
"""Class ids 0..18 of the mask logits."""

FACE_CLASSES = (1, 2, 3, 4, 5, 6, 7, 10, 11, 12)
"""GPEN's paste-back mask: the face without ears, neck, hair or hat."""

MOUTH_CLASSES = (10, 11, 12)
"""video-retalking's mouth mask (mouth and lips) for blending the restored mouth."""

Scale = Literal["none", "up", "down"]


class _NormLayer(nn.Module):
    """Holds the BatchNorm under the official key ``norm.norm``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class ConvLayer(nn.Module):
    """[nearest x2] -> reflection pad 1 -> 3x3 conv [stride 2] -> [BatchNorm] -> [LeakyReLU(0.2)].

    The conv has a bias only when there is no BatchNorm.
    """

    def __init__(self, cin: int, cout: int, scale: Scale = "none", norm: bool = False, act: bool = False) -> None:
        super().__init__()
        self.conv2d = nn.Conv2d(cin, cout, 3, stride=2 if scale == "down" else 1, bias=not norm)
        self.norm = _NormLayer(cout) if norm else None
        self.up = scale == "up"
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        out = self.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"))
        if self.norm is not None:
            out = self.norm(out)
        return F.leaky_relu_(out, 0.2) if self.act else out


class ResidualBlock(nn.Module):
    """shortcut + conv2(conv1(x)); conv1 upsamples ('up'), conv2 strides ('down')."""

    def __init__(self, cin: int, cout: int, scale: Scale = "none") -> None:
        super().__init__()
        self.shortcut_func = None if scale == "none" and cin == cout else ConvLayer(cin, cout, scale)
        self.conv1 = ConvLayer(cin, cout, "up" if scale == "up" else "none", norm=True, act=True)
        self.conv2 = ConvLayer(cout, cout, "down" if scale == "down" else "none", norm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut_func is None else self.shortcut_func(x)
        return identity + self.conv2(self.conv1(x))


class ParseNet(nn.Module):
    """Encoder (to `min_feat_size`) -> residual body with a long skip -> decoder -> two heads.

    Defaults are the ParseNet-latest configuration GPEN and video-retalking use.
    """

    def __init__(
        self,
        *,
        in_size: int = 512,
        out_size: int = 512,
        min_feat_size: int = 32,
        base_ch: int = 64,
        parsing_ch: int = 19,
        res_depth: int = 10,
        ch_range: tuple[int, int] = (32, 256),
    ) -> None:
        super().__init__()

        def clip(c: int) -> int:
            return max(ch_range[0], min(c, ch_range[1]))

        min_feat_size = min(in_size, min_feat_size)
        head = base_ch
        encoder: list[nn.Module] = [ConvLayer(3, base_ch)]
        for _ in range(int(math.log2(in_size // min_feat_size))):
            encoder.append(ResidualBlock(clip(head), clip(head * 2), "down"))
            head *= 2
        self.encoder = nn.Sequential(*encoder)
        self.body = nn.Sequential(*(ResidualBlock(clip(head), clip(head)) for _ in range(res_depth)))
        decoder = []
        for _ in range(int(math.log2(out_size // min_feat_size))):
            decoder.append(ResidualBlock(clip(head), clip(head // 2), "up"))
            head //= 2
        self.decoder = nn.Sequential(*decoder)
        self.out_img_conv = ConvLayer(clip(head), 3)
        self.out_mask_conv = ConvLayer(clip(head), parsing_ch)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(mask_logits, image_out)``; see the module docstring."""
        feat = self.encoder(image)
        x = self.decoder(feat + self.body(feat))
        return self.out_mask_conv(x), self.out_img_conv(x)


def class_mask(logits: torch.Tensor, classes: Iterable[int]) -> torch.Tensor:
    """(B, C, H, W) logits -> (B, H, W) uint8 mask: 255 where the most likely class is in `classes`.

    Upstream's FaceParse mapping (a 0/255 table over the argmax; ties go to
    the lowest class id, as with ``torch.argmax``).
    """
    table = torch.zeros(logits.shape[1], dtype=torch.uint8, device=logits.device)
    table[list(classes)] = 255
    return table[logits.argmax(dim=1)]


def remap(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """State_dict of ``ParseNet-latest.pth`` (a plain state_dict; ``module.`` prefixes stripped)."""
    return clean_state_dict(checkpoint)
