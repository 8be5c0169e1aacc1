"""S3FD face detector (the detector of face-alignment and of Wav2Lip's face_detection) with its decoding.

Provenance
    Paper: Shifeng Zhang, Xiangyu Zhu, Zhen Lei, Hailin Shi, Xiaobo Wang, Stan Z.
    Li, "S3FD: Single Shot Scale-invariant Face Detector", ICCV 2017
    (arXiv:1708.05237).
    PyTorch port whose weights are used: github.com/1adrianb/face-alignment
    (``face_alignment/detection/sfd/net_s3fd.py`` class ``s3fd`` with ``L2Norm``;
    ``detect.py``, ``bbox.py``, ``sfd_detector.py``), vendored by
    github.com/Rudrabha/Wav2Lip as ``face_detection/detection/sfd``. This file is
    an independent re-implementation from the architecture description;
    attribute names are the checkpoint keys (``conv1_1`` ... ``conv7_2``,
    ``conv3_3_norm`` ..., ``*_mbox_conf`` / ``*_mbox_loc``).
    Checkpoint: ``s3fd-619a316812.pth`` (adrianbulat.com; Wav2Lip saves it as
    ``face_detection/detection/sfd/s3fd.pth``), a plain state_dict without
    prefix or BatchNorm; see `remap`.
    Weights licence: not verified here. face-alignment's code is BSD-3-Clause
    (its LICENSE file); no separate terms for the weights are known. They
    descend from the S3FD authors' model trained on WIDER FACE, which is
    published for non-commercial research purposes only. Read both before
    use. The weights are not distributed with this package.

Contract (``forward(image)``)
    image: (B, 3, H, W) float pixel values in [0, 255] minus (104, 117, 123)
           per channel, no scaling; any H, W. The weights were trained on
           **BGR** (face-alignment flips its RGB input before subtracting);
           Wav2Lip's vendored copy subtracts the same means from **RGB** -
           `S3FDDetector` lets you pick either.
    returns 12 maps ``[cls1, reg1, ..., cls6, reg6]`` (NCHW raw logits / raw
    offsets) for strides 4, 8, ..., 128; ``cls1`` is already max-out reduced to
    2 channels. `candidates` / `detections` decode them as the official code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._boxes import decode_center_size, nms
from ._adapters import BGR_MEAN, BatchedDetector
from ._state import clean_state_dict

__all__ = ["NUM_PARAMS", "S3FD", "S3FDDetector", "L2Norm", "candidates", "detections", "remap"]

NUM_PARAMS = 22_459_110
"""Trainable parameters (the network has no BatchNorm)."""

VARIANCE = (0.1, 0.2)

_VGG = (  # (name, cin, cout) of the 3x3 VGG-16 convs; a 2x2 max-pool follows each group
    (("conv1_1", 3, 64), ("conv1_2", 64, 64)),
    (("conv2_1", 64, 128), ("conv2_2", 128, 128)),
    (("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256)),
    (("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512)),
    (("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512)),
)

_HEADS = (  # (source, channels, conf channels): the six detection levels, strides 4 ... 128
    ("conv3_3_norm", 256, 4),
    ("conv4_3_norm", 512, 2),
    ("conv5_3_norm", 512, 2),
    ("fc7", 1024, 2),
    ("conv6_2", 512, 2),
    ("conv7_2", 256, 2),
)


class L2Norm(nn.Module):
    """Per-position L2 normalisation over channels times a learned per-channel scale."""

    def __init__(self, channels: int, scale: float, eps: float = 1e-10) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.full((channels,), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return self.weight.view(1, -1, 1, 1) * (x / norm)


class S3FD(nn.Module):
    """VGG-16 trunk + fc6/fc7 + two extra stages; six 3x3 conf/loc heads with max-out on the first."""

    def __init__(self) -> None:
        super().__init__()
        for group in _VGG:
            for name, cin, cout in group:
                setattr(self, name, nn.Conv2d(cin, cout, 3, 1, 1))
        self.fc6 = nn.Conv2d(512, 1024, 3, 1, padding=3)  # padding 3: the map grows by 4
        self.fc7 = nn.Conv2d(1024, 1024, 1)
        self.conv6_1 = nn.Conv2d(1024, 256, 1)
        self.conv6_2 = nn.Conv2d(256, 512, 3, 2, 1)
        self.conv7_1 = nn.Conv2d(512, 128, 1)
        self.conv7_2 = nn.Conv2d(128, 256, 3, 2, 1)
        self.conv3_3_norm = L2Norm(256, 10.0)
        self.conv4_3_norm = L2Norm(512, 8.0)
        self.conv5_3_norm = L2Norm(512, 5.0)
        for source, channels, conf in _HEADS:
            setattr(self, f"{source}_mbox_conf", nn.Conv2d(channels, conf, 3, 1, 1))
            setattr(self, f"{source}_mbox_loc", nn.Conv2d(channels, 4, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Image minus mean (B,3,H,W) -> [cls1, reg1, ..., cls6, reg6]."""
        h = image
        kept = []
        for group in _VGG:
            for name, _, _ in group:
                h = F.relu(getattr(self, name)(h))
            kept.append(h)
            h = F.max_pool2d(h, 2, 2)
        f3, f4, f5 = kept[2:]
        f7 = F.relu(self.fc7(F.relu(self.fc6(h))))
        f6 = F.relu(self.conv6_2(F.relu(self.conv6_1(f7))))
        f8 = F.relu(self.conv7_2(F.relu(self.conv7_1(f6))))
        sources = [self.conv3_3_norm(f3), self.conv4_3_norm(f4), self.conv5_3_norm(f5), f7, f6, f8]
        out = []
        for (name, _, _), x in zip(_HEADS, sources):
            out += [getattr(self, f"{name}_mbox_conf")(x), getattr(self, f"{name}_mbox_loc")(x)]
        # max-out background on the stride-4 level: 3 background logits -> 1
        c0, c1, c2, face = out[0].chunk(4, dim=1)
        out[0] = torch.cat([torch.maximum(torch.maximum(c0, c1), c2), face], dim=1)
        return out


def remap(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """``s3fd-619a316812.pth`` is already this module's state_dict; strips a ``module.`` if one is there.

    Pure: the input is not modified and tensors are not copied.
    """
    return clean_state_dict(checkpoint)


# ------------------------------------------------------------------ official decoding


def candidates(outputs: Sequence[torch.Tensor], threshold: float = 0.05) -> list[torch.Tensor]:
    """Per image, the (N, 5) ``x1, y1, x2, y2, score`` of every position with face probability > `threshold`.

    Softmax over each level's two channels; level i has stride 2^(i+2),
    square anchors of 4 x stride centred at (stride/2 + x*stride,
    stride/2 + y*stride); offsets decoded with variances (0.1, 0.2). Rows
    come level by level, row-major within a level, as ``batch_detect``
    builds them for one image. (Its batch path keeps a position when it
    passes in any image of the batch; after `detections` the result per image
    is the same.) Runs on the outputs' device in at least float32.
    """
    dtype = torch.promote_types(outputs[0].dtype, torch.float32)
    batch = outputs[0].shape[0]
    per_level = []
    for level in range(len(outputs) // 2):
        cls, reg = outputs[2 * level].to(dtype), outputs[2 * level + 1].to(dtype)
        stride = 2 ** (level + 2)
        rows, cols = cls.shape[-2:]
        ys, xs = torch.meshgrid(
            torch.arange(rows, device=cls.device, dtype=dtype), torch.arange(cols, device=cls.device, dtype=dtype), indexing="ij"
        )
        priors = torch.stack([stride / 2 + xs * stride, stride / 2 + ys * stride], dim=-1).reshape(-1, 2)
        priors = torch.cat([priors, priors.new_full(priors.shape, 4.0 * stride)], dim=-1)
        scores = F.softmax(cls, dim=1)[:, 1].reshape(batch, -1)
        boxes = decode_center_size(reg.flatten(2).transpose(1, 2), priors, VARIANCE)
        per_level.append(torch.cat([boxes, scores[..., None]], dim=-1))
    rows_all = torch.cat(per_level, dim=1)
    return [rows[rows[:, 4] > threshold] for rows in rows_all]


def detections(
    outputs: Sequence[torch.Tensor],
    *,
    candidate_threshold: float = 0.05,
    nms_threshold: float = 0.3,
    score_threshold: float = 0.5,
) -> list[torch.Tensor]:
    """Per image, (K, 5) ``x1, y1, x2, y2, score`` best first: `candidates`, greedy NMS
    (IoU > `nms_threshold` dropped, "+1" areas), then score > `score_threshold`.

    The score filter runs before the NMS here: a box at or below the
    threshold can only suppress boxes scored lower still, which the filter
    drops anyway, so the result is the official one, sooner.
    """
    out = []
    for rows in candidates(outputs, max(candidate_threshold, score_threshold)):
        out.append(rows[nms(rows[:, :4], rows[:, 4], nms_threshold)])
    return out


# ------------------------------------------------------------------ FaceDetector adapter


class S3FDDetector(BatchedDetector):
    """S3FD as a `FaceDetector`: RGB uint8 frames in, `Detection`s without keypoints out.

    Frames go in at their own size minus (104, 117, 123): flipped to BGR first
    with ``channel_order="bgr"`` (face-alignment, and what the weights were
    trained with), or left RGB with ``"rgb"`` to reproduce Wav2Lip's vendored
    detector exactly. Frames of equal size share a forward (at most
    `max_batch`). Boxes are clipped to the frame; Wav2Lip's extra padding and
    temporal smoothing are left to the caller.
    """

    def __init__(
        self,
        network: S3FD,
        *,
        device: torch.device | str | None = None,
        channel_order: Literal["bgr", "rgb"] = "bgr",
        candidate_threshold: float = 0.05,
        nms_threshold: float = 0.3,
        score_threshold: float = 0.5,
        max_faces: int | None = None,
        max_batch: int = 8,
    ) -> None:
        if channel_order not in ("bgr", "rgb"):
            raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
        super().__init__(
            network, device=device, mean=BGR_MEAN, to_bgr=channel_order == "bgr", max_faces=max_faces, max_batch=max_batch
        )
        self.candidate_threshold = candidate_threshold
        self.nms_threshold = nms_threshold
        self.score_threshold = score_threshold

    def _decode(self, outputs: Sequence[torch.Tensor], height: int, width: int) -> list[np.ndarray]:
        dets = detections(
            outputs,
            candidate_threshold=self.candidate_threshold,
            nms_threshold=self.nms_threshold,
            score_threshold=self.score_threshold,
        )
        return [d.cpu().numpy() for d in dets]
