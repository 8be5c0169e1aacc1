"""RetinaFace face detector (ResNet-50 and MobileNet-0.25 backbones) with its official decoding.

Provenance
    Paper: Jiankang Deng, Jia Guo, Evangelos Ververas, Irene Kotsia, Stefanos
    Zafeiriou, "RetinaFace: Single-shot Multi-level Face Localisation in the
    Wild", CVPR 2020 (arXiv:1905.00641).
    Official PyTorch port used by the weights: github.com/biubug6/Pytorch_Retinaface
    (``models/retinaface.py`` classes ``RetinaFace``, ``ClassHead``,
    ``BboxHead``, ``LandmarkHead``; ``models/net.py`` ``FPN``, ``SSH``,
    ``MobileNetV1``; ``data/config.py`` ``cfg_re50`` / ``cfg_mnet``;
    ``layers/functions/prior_box.py``; ``utils/box_utils.py`` ``decode`` /
    ``decode_landm``; ``detect.py``), repackaged with the same module names by
    github.com/xinntao/facexlib (``facexlib/detection/retinaface.py``). This file
    is an independent re-implementation from the architecture description;
    submodule names reproduce the official checkpoint keys (``body.*``,
    ``fpn.*``, ``ssh1..3.*``, ``ClassHead/BboxHead/LandmarkHead.{0,1,2}.conv1x1.*``).
    Checkpoints: ``Resnet50_Final.pth`` / ``mobilenet0.25_Final.pth`` (biubug6
    README, Google Drive / Baidu) and facexlib's release v0.1.0 copies
    ``detection_Resnet50_Final.pth`` / ``detection_mobilenet0.25_Final.pth``:
    plain state_dicts; the 4-GPU ResNet-50 file is expected to carry leading
    ``module.`` prefixes (not verified here); see `remap`.
    Weights licence: not verified here. The code of both repositories is
    MIT-licensed as far as known (their licence files were not checked here);
    no separate terms for the weights are known. They were trained on WIDER
    FACE, which is published for non-commercial research purposes only. Read
    both before use. The weights are not distributed with this package.

Contract (``forward(image)``)
    image: (B, 3, H, W) float, **BGR** pixel values in [0, 255] minus the mean
           (104, 117, 123) per channel (no std division); any H, W.
    returns ``(loc (B, N, 4), conf (B, N, 2), landms (B, N, 10))`` over the N
    priors of `prior_boxes` (levels at strides 8, 16, 32; per location two
    anchors; row-major). ``conf`` is already soft-maxed (the official "test"
    phase): face probability = ``conf[..., 1]``.
    `detections` turns them into per-image ``x1, y1, x2, y2, score, 5 x (x, y)``
    rows in input pixels, as the official ``detect.py`` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._boxes import decode_center_size, nms
from ._adapters import BGR_MEAN, BatchedDetector
from ._state import clean_state_dict
from .face3d_recon import ResNet50

__all__ = [
    "CONFIGS",
    "NUM_PARAMS",
    "RetinaFace",
    "RetinaFaceConfig",
    "RetinaFaceDetector",
    "decode",
    "detections",
    "prior_boxes",
    "remap",
]


@dataclass(frozen=True)
class RetinaFaceConfig:
    """One official configuration (``cfg_re50`` / ``cfg_mnet`` of data/config.py)."""

    name: str
    backbone: str  # "resnet50" or "mobilenet0.25"
    in_channels: tuple[int, int, int]  # widths of the three backbone features (strides 8, 16, 32)
    out_channel: int  # FPN / SSH width
    num_params: int
    min_sizes: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))
    steps: tuple[int, ...] = (8, 16, 32)
    variance: tuple[float, float] = (0.1, 0.2)

    @property
    def leaky(self) -> float:
        """Negative slope of the FPN/SSH activations: the narrow model uses LeakyReLU(0.1)."""
        return 0.1 if self.out_channel <= 64 else 0.0


CONFIGS: dict[str, RetinaFaceConfig] = {
    c.name: c
    for c in (
        RetinaFaceConfig("resnet50", "resnet50", (512, 1024, 2048), 256, num_params=27_293_600),
        RetinaFaceConfig("mobilenet0.25", "mobilenet0.25", (64, 128, 256), 64, num_params=426_608),
    )
}

NUM_PARAMS: dict[str, int] = {name: c.num_params for name, c in CONFIGS.items()}
"""Trainable parameters per configuration (BatchNorm running statistics not included)."""


# ------------------------------------------------------------------ network


def _conv_bn(cin: int, cout: int, *, kernel: int = 3, stride: int = 1, leaky: float | None = 0.0) -> nn.Sequential:
    """``.0`` conv without bias, ``.1`` BatchNorm, ``.2`` (Leaky)ReLU unless `leaky` is None."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if leaky is not None:
        layers.append(nn.LeakyReLU(leaky) if leaky else nn.ReLU())
    return nn.Sequential(*layers)


def _conv_dw(cin: int, cout: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    """Depthwise 3x3 (``.0-.2``) then pointwise 1x1 (``.3-.5``), each conv + BN + LeakyReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.LeakyReLU(leaky),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(leaky),
    )


class _ResNet50Features(ResNet50):
    """torchvision's ResNet-50 trunk returning layer2, layer3, layer4 (strides 8, 16, 32)."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer2(self.layer1(x))
        c3 = self.layer3(c2)
        return [c2, c3, self.layer4(c3)]


class _MobileNetV1Features(nn.Module):
    """MobileNet-V1 at width 0.25 in three stages (strides 8, 16, 32; 64/128/256 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, stride=2, leaky=0.1),
            _conv_dw(8, 16, 1),
            _conv_dw(16, 32, 2),
            _conv_dw(32, 32, 1),
            _conv_dw(32, 64, 2),
            _conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(_conv_dw(64, 128, 2), *(_conv_dw(128, 128, 1) for _ in range(5)))
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        return [c1, c2, self.stage3(c2)]


class FPN(nn.Module):
    """Lateral 1x1 convs, top-down nearest upsampling to the exact lower size, 3x3 merges.

    Returns [o1, o2, o3]; the coarsest level o3 is not merged.
    """

    def __init__(self, in_channels: Sequence[int], out_channel: int, leaky: float) -> None:
        super().__init__()
        self.output1 = _conv_bn(in_channels[0], out_channel, kernel=1, leaky=leaky)
        self.output2 = _conv_bn(in_channels[1], out_channel, kernel=1, leaky=leaky)
        self.output3 = _conv_bn(in_channels[2], out_channel, kernel=1, leaky=leaky)
        self.merge1 = _conv_bn(out_channel, out_channel, leaky=leaky)
        self.merge2 = _conv_bn(out_channel, out_channel, leaky=leaky)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        o1, o2, o3 = self.output1(features[0]), self.output2(features[1]), self.output3(features[2])
        # explicit sizes: maps are often not exact doubles (5 -> 10, 10 -> 19)
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[-2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[-2:], mode="nearest"))
        return [o1, o2, o3]


class SSH(nn.Module):
    """Context module: 3x3 (half width) | 5x5 as two 3x3 | 7x7 as three 3x3 (quarter widths), ReLU."""

    def __init__(self, cin: int, cout: int, leaky: float) -> None:
        super().__init__()
        self.conv3X3 = _conv_bn(cin, cout // 2, leaky=None)
        self.conv5X5_1 = _conv_bn(cin, cout // 4, leaky=leaky)
        self.conv5X5_2 = _conv_bn(cout // 4, cout // 4, leaky=None)
        self.conv7X7_2 = _conv_bn(cout // 4, cout // 4, leaky=leaky)
        self.conv7x7_3 = _conv_bn(cout // 4, cout // 4, leaky=None)  # lowercase x: the official key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.conv5X5_1(x)
        branches = [self.conv3X3(x), self.conv5X5_2(t), self.conv7x7_3(self.conv7X7_2(t))]
        return F.relu(torch.cat(branches, dim=1))


class _AnchorHead(nn.Module):
    """1x1 conv predicting `per_anchor` values for each of the 2 anchors, as (B, H*W*2, per_anchor)."""

    def __init__(self, cin: int, per_anchor: int, anchors: int = 2) -> None:
        super().__init__()
        self.per_anchor = per_anchor
        self.conv1x1 = nn.Conv2d(cin, anchors * per_anchor, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.per_anchor)


class RetinaFace(nn.Module):
    """Backbone -> FPN -> SSH per level -> class / box / 5-landmark heads (inference phase)."""

    def __init__(self, config: str | RetinaFaceConfig = "resnet50") -> None:
        super().__init__()
        if isinstance(config, str):
            if config not in CONFIGS:
                raise ValueError(f"unknown RetinaFace config {config!r}; known: {', '.join(CONFIGS)}")
            config = CONFIGS[config]
        self.config = config
        width, leaky = config.out_channel, config.leaky
        self.body = _ResNet50Features() if config.backbone == "resnet50" else _MobileNetV1Features()
        self.fpn = FPN(config.in_channels, width, leaky)
        self.ssh1 = SSH(width, width, leaky)
        self.ssh2 = SSH(width, width, leaky)
        self.ssh3 = SSH(width, width, leaky)
        self.ClassHead = nn.ModuleList(_AnchorHead(width, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_AnchorHead(width, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_AnchorHead(width, 10) for _ in range(3))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """BGR minus mean (B,3,H,W) -> loc (B,N,4), conf (B,N,2) soft-maxed, landms (B,N,10)."""
        levels = self.fpn(self.body(image))
        features = [self.ssh1(levels[0]), self.ssh2(levels[1]), self.ssh3(levels[2])]
        loc = torch.cat([head(f) for head, f in zip(self.BboxHead, features)], dim=1)
        conf = torch.cat([head(f) for head, f in zip(self.ClassHead, features)], dim=1)
        landms = torch.cat([head(f) for head, f in zip(self.LandmarkHead, features)], dim=1)
        return loc, F.softmax(conf, dim=-1), landms


def remap(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Turn ``Resnet50_Final.pth`` / ``mobilenet0.25_Final.pth`` or facexlib's copies into this module's state_dict.

    Plain state_dicts; unwraps a ``'state_dict'`` entry when present (as
    ``detect.py`` does) and strips the leading ``module.`` of DataParallel
    training. Pure: the input is not modified and tensors are not copied.
    """
    return clean_state_dict(checkpoint, "state_dict")


# ------------------------------------------------------------------ official decoding


def prior_boxes(
    height: int,
    width: int,
    config: RetinaFaceConfig,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Priors (N, 4) ``cx, cy, w, h`` normalised by the image size, in the order of the head outputs.

    Level k (step s) has a ceil(H/s) x ceil(W/s) grid; each cell (row i,
    column j) carries one prior per min size m: centre ((j+0.5)s/W, (i+0.5)s/H),
    size (m/W, m/H). Computed in float64 like the official Python loop, then cast.
    """
    blocks = []
    for step, sizes in zip(config.steps, config.min_sizes):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        cy = (torch.arange(rows, dtype=torch.float64) + 0.5) * step / height
        cx = (torch.arange(cols, dtype=torch.float64) + 0.5) * step / width
        grid_y, grid_x = torch.meshgrid(cy, cx, indexing="ij")
        for_sizes = []
        for m in sizes:
            wh = torch.tensor([m / width, m / height], dtype=torch.float64).expand(rows, cols, 2)
            for_sizes.append(torch.cat([torch.stack([grid_x, grid_y], dim=-1), wh], dim=-1))
        blocks.append(torch.stack(for_sizes, dim=2).reshape(-1, 4))  # (row, column, size)
    return torch.cat(blocks).to(device=device, dtype=dtype)


def decode(
    loc: torch.Tensor, landms: torch.Tensor, priors: torch.Tensor, height: int, width: int, variance: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes (..., N, 4) ``x1, y1, x2, y2`` and landmarks (..., N, 10) ``(x, y) x 5`` in pixels.

    Decoded in normalised units against `priors`, then scaled by the image
    size, as the official ``decode`` / ``decode_landm``.
    """
    boxes = decode_center_size(loc, priors, variance)
    points = priors[..., None, :2] + landms.unflatten(-1, (5, 2)) * variance[0] * priors[..., None, 2:]
    boxes = boxes * boxes.new_tensor([width, height, width, height])
    points = points * points.new_tensor([width, height])
    return boxes, points.flatten(-2)


def detections(
    loc: torch.Tensor,
    conf: torch.Tensor,
    landms: torch.Tensor,
    height: int,
    width: int,
    config: RetinaFaceConfig,
    *,
    score_threshold: float = 0.02,
    nms_threshold: float = 0.4,
    top_k: int = 5000,
    keep_top_k: int = 750,
) -> list[torch.Tensor]:
    """The official ``detect.py`` path for a batch: one (K, 15) tensor per image.

    Columns ``x1, y1, x2, y2, score, 5 x (x, y)`` in pixels of the H x W
    network input, best score first: keep score > `score_threshold`, the
    `top_k` best, greedy NMS (IoU > `nms_threshold` dropped, "+1" areas),
    then the first `keep_top_k`. Defaults are ``detect.py``'s; facexlib uses
    a score threshold of 0.8 and no top-k limits. Decoding runs in at least
    float32 on the outputs' device.
    """
    dtype = torch.promote_types(loc.dtype, torch.float32)
    priors = prior_boxes(height, width, config, device=loc.device, dtype=dtype)
    boxes, points = decode(loc.to(dtype), landms.to(dtype), priors, height, width, config.variance)
    scores = conf[..., 1].to(dtype)
    out = []
    for b in range(loc.shape[0]):
        candidates = torch.nonzero(scores[b] > score_threshold).squeeze(1)
        order = candidates[torch.argsort(scores[b, candidates], descending=True, stable=True)][:top_k]
        rows = torch.cat([boxes[b, order], scores[b, order, None], points[b, order]], dim=1)
        out.append(rows[nms(rows[:, :4], rows[:, 4], nms_threshold, max_kept=keep_top_k)])
    return out


# ------------------------------------------------------------------ FaceDetector adapter


class RetinaFaceDetector(BatchedDetector):
    """RetinaFace as a `FaceDetector`: RGB uint8 frames in, `Detection`s with 5 keypoints out.

    Pre-processing is the official one at the original frame size: RGB ->
    BGR float, minus (104, 117, 123). Frames of equal size go through the
    network together (at most `max_batch` at a time). Keypoints are, in
    order: the eye on the image's left, the other eye, the nose tip, the mouth
    corner on the image's left, the other corner. Boxes are clipped to the
    frame; keypoints are not. Defaults follow facexlib (score > 0.8, NMS 0.4).
    """

    def __init__(
        self,
        network: RetinaFace,
        *,
        device: torch.device | str | None = None,
        score_threshold: float = 0.8,
        nms_threshold: float = 0.4,
        top_k: int = 5000,
        keep_top_k: int = 750,
        max_faces: int | None = None,
        max_batch: int = 8,
    ) -> None:
        super().__init__(network, device=device, mean=BGR_MEAN, to_bgr=True, max_faces=max_faces, max_batch=max_batch)
        self.config = network.config
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.keep_top_k = keep_top_k

    def _decode(self, outputs: tuple[torch.Tensor, ...], height: int, width: int) -> list[np.ndarray]:
        loc, conf, landms = outputs
        dets = detections(
            loc, conf, landms, height, width, self.config,
            score_threshold=self.score_threshold, nms_threshold=self.nms_threshold,
            top_k=self.top_k, keep_top_k=self.keep_top_k,
        )  # fmt: skip
        return [d.cpu().numpy() for d in dets]
