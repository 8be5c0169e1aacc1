"""FAN 2DFAN-4: 68 face landmarks from four stacked hourglasses, with the official crop, flip and decoding.

Provenance
    Paper: Adrian Bulat, Georgios Tzimiropoulos, "How far are we from solving
    the 2D & 3D Face Alignment problem? (and a dataset of 230,000 3D facial
    landmarks)", ICCV 2017 (arXiv:1703.07332).
    Official repository: github.com/1adrianb/face-alignment
    (``face_alignment/models/fan.py`` class ``FAN`` with ``num_modules=4``,
    ``ConvBlock``, ``HourGlass``; ``api.py`` ``get_landmarks_from_image``;
    ``utils.py`` ``crop``, ``transform``, ``get_preds_fromhm``, ``flip``). This
    file is an independent re-implementation from the architecture description;
    attribute names are the checkpoint keys (``conv1``, ``m0.b1_4``,
    ``top_m_0``, ``l3`` ...).
    Checkpoint: ``2DFAN4-11f355bf06.pth.tar`` (adrianbulat.com), a plain
    state_dict of FAN(4) saved in 2017, possibly without the BatchNorm
    ``num_batches_tracked`` counters (the loader tolerates that); see `remap`.
    Weights licence: not verified here. face-alignment's code is BSD-3-Clause
    (its LICENSE file); no separate terms for the weights are known. The
    training data (300W-LP and related face-landmark sets) come with their own,
    mostly research-only, terms. Read them before use. The weights are not
    distributed with this package.

Contract (``forward(image)``)
    image: (B, 3, 256, 256) float, **RGB in [0, 1]** (plain ``/ 255``, no
           mean/std): the face cropped by `crop` around the detector box's
           centre/scale (`box_center_scale`).
    returns the list of the 4 stacks' heatmaps, each (B, 68, 64, 64); the
    official API uses the last one, plus the same of the mirrored crop
    (`flip_heatmaps`), and decodes it with `decode_heatmaps` / `to_image`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._adapters import TorchAdapter, check_frame
from ._state import clean_state_dict
from .face_types import Detection, Landmarks, Roi

__all__ = [
    "FLIP_68",
    "FAN",
    "NUM_PARAMS",
    "FanLandmarks",
    "box_center_scale",
    "crop",
    "decode_heatmaps",
    "flip_heatmaps",
    "remap",
    "to_image",
]

NUM_PARAMS = 23_820_176
"""Trainable parameters (BatchNorm running statistics not included)."""

NUM_LANDMARKS = 68
INPUT_SIZE = 256
HEATMAP_SIZE = 64
SFD_REFERENCE_SCALE = 195.0
"""The API's box-size normaliser for S3FD boxes: scale = (w + h) / 195."""


def _mirror_table() -> tuple[int, ...]:
    """The 68-point iBUG mirror: left <-> right for jaw, brows, nose, eyes and mouth."""
    pairs = [(i, 16 - i) for i in range(8)]  # jaw 0..16, 8 is the chin
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(31, 35), (32, 34)]  # nostrils; 27-30 (bridge) and 33 (tip) stay
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lip; 51, 57 stay
    pairs += [(60, 64), (61, 63), (65, 67)]  # inner lip; 62, 66 stay
    table = list(range(NUM_LANDMARKS))
    for a, b in pairs:
        table[a], table[b] = b, a
    return tuple(table)


FLIP_68 = _mirror_table()
"""Index of each landmark's mirror image (an involution)."""


# ------------------------------------------------------------------ network


class ConvBlock(nn.Module):
    """Pre-activation residual block: three BN-ReLU-3x3 convs (out/2, out/4, out/4) concatenated + shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout // 2, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout // 2)
        self.conv2 = nn.Conv2d(cout // 2, cout // 4, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout // 4)
        self.conv3 = nn.Conv2d(cout // 4, cout // 4, 3, 1, 1, bias=False)
        self.downsample: nn.Module | None = None
        if cin != cout:
            self.downsample = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o1 = self.conv1(F.relu(self.bn1(x)))
        o2 = self.conv2(F.relu(self.bn2(o1)))
        o3 = self.conv3(F.relu(self.bn3(o2)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.cat([o1, o2, o3], dim=1) + shortcut


class HourGlass(nn.Module):
    """Recursive hourglass of ConvBlocks: at each level a full-resolution branch plus pool -> deeper -> upsample."""

    def __init__(self, depth: int = 4, features: int = 256) -> None:
        super().__init__()
        self.depth = depth
        self._add(depth, features)

    def _add(self, level: int, features: int) -> None:
        # registration order = the checkpoint's key order: b1_4, b2_4, b1_3, ..., b2_plus_1, b3_1, ..., b3_4
        self.add_module(f"b1_{level}", ConvBlock(features, features))
        self.add_module(f"b2_{level}", ConvBlock(features, features))
        if level > 1:
            self._add(level - 1, features)
        else:
            self.add_module(f"b2_plus_{level}", ConvBlock(features, features))
        self.add_module(f"b3_{level}", ConvBlock(features, features))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        up = self._modules[f"b1_{level}"](x)
        low = self._modules[f"b2_{level}"](F.avg_pool2d(x, 2, stride=2))
        low = self._level(level - 1, low) if level > 1 else self._modules[f"b2_plus_{level}"](low)
        low = self._modules[f"b3_{level}"](low)
        return up + F.interpolate(low, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._level(self.depth, x)


class FAN(nn.Module):
    """Stem (7x7/2 conv, three ConvBlocks, pool) then 4 hourglass stacks with intermediate heatmaps."""

    def __init__(self, stacks: int = 4, landmarks: int = NUM_LANDMARKS) -> None:
        super().__init__()
        self.stacks = stacks
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = ConvBlock(64, 128)
        self.conv3 = ConvBlock(128, 128)
        self.conv4 = ConvBlock(128, 256)
        for i in range(stacks):
            self.add_module(f"m{i}", HourGlass(4, 256))
            self.add_module(f"top_m_{i}", ConvBlock(256, 256))
            self.add_module(f"conv_last{i}", nn.Conv2d(256, 256, 1))
            self.add_module(f"bn_end{i}", nn.BatchNorm2d(256))
            self.add_module(f"l{i}", nn.Conv2d(256, landmarks, 1))
            if i < stacks - 1:
                self.add_module(f"bl{i}", nn.Conv2d(256, 256, 1))
                self.add_module(f"al{i}", nn.Conv2d(landmarks, 256, 1))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """RGB [0, 1] crops (B,3,256,256) -> heatmaps of each stack, (B,68,64,64) each."""
        x = F.relu(self.bn1(self.conv1(image)))
        x = self.conv4(self.conv3(F.avg_pool2d(self.conv2(x), 2, stride=2)))
        previous = x
        heatmaps = []
        for i in range(self.stacks):
            t = self._modules[f"top_m_{i}"](self._modules[f"m{i}"](previous))
            t = F.relu(self._modules[f"bn_end{i}"](self._modules[f"conv_last{i}"](t)))
            heat = self._modules[f"l{i}"](t)
            heatmaps.append(heat)
            if i < self.stacks - 1:
                previous = previous + self._modules[f"bl{i}"](t) + self._modules[f"al{i}"](heat)
        return heatmaps


def remap(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """``2DFAN4-11f355bf06.pth.tar`` is already this module's state_dict; strips a ``module.`` if one is there.

    Missing BatchNorm counters (2017 file) are filled by the loader. Pure:
    the input is not modified and tensors are not copied.
    """
    return clean_state_dict(checkpoint)


# ------------------------------------------------------------------ official pre/post-processing


def flip_heatmaps(heatmaps: torch.Tensor) -> torch.Tensor:
    """Heatmaps of a mirrored crop -> heatmaps of the crop: swap mirror landmarks, flip horizontally."""
    return heatmaps[:, list(FLIP_68)].flip(-1)


def box_center_scale(box: Sequence[float], reference_scale: float = SFD_REFERENCE_SCALE) -> tuple[np.ndarray, float]:
    """The API's crop centre (float32, moved up by 12% of the box height) and scale of a box ``x1, y1, x2, y2``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 - x1 + y2 - y1 <= 0:
        raise ValueError(f"the face box {box} has no size; FAN needs a box around the face")
    center = np.array([x2 - (x2 - x1) / 2.0, y2 - (y2 - y1) / 2.0], dtype=np.float32)
    center[1] = center[1] - np.float32((y2 - y1) * 0.12)
    return center, (x2 - x1 + y2 - y1) / reference_scale


def _crop_matrix(center: np.ndarray, scale: float, resolution: float, dtype: torch.dtype) -> torch.Tensor:
    """3x3 map image -> crop of side `resolution`: the window of side 200 * scale around `center`.

    Built with `dtype` arithmetic, as the official code does (float32 torch
    for the crop window, float64 numpy for the landmarks), so truncations match.
    """
    h = 200.0 * scale
    t = torch.eye(3, dtype=dtype)
    t[0, 0] = t[1, 1] = resolution / h
    t[:2, 2] = resolution * (-torch.as_tensor(np.asarray(center, np.float64)).to(dtype) / h + 0.5)
    return t


def _from_crop(points: np.ndarray, center: np.ndarray, scale: float, resolution: float, dtype: torch.dtype) -> np.ndarray:
    """Crop coordinates (N, 2) -> image coordinates, truncated towards zero like the official int casts."""
    inverse = torch.linalg.inv(_crop_matrix(center, scale, resolution, dtype))
    homogeneous = torch.cat([torch.as_tensor(points, dtype=dtype), torch.ones(len(points), 1, dtype=dtype)], dim=1)
    return (homogeneous @ inverse.T)[:, :2].trunc().numpy()


def crop(image: np.ndarray, center: np.ndarray, scale: float, resolution: int = INPUT_SIZE) -> np.ndarray:
    """The official crop: the window between the images of crop pixels (1, 1) and (res, res), zero
    outside the image, resized bilinearly to (res, res). uint8 in, uint8 out (H, W, C)."""
    corners = _from_crop(np.array([[1.0, 1.0], [resolution, resolution]]), center, scale, resolution, torch.float32)
    (ul_x, ul_y), (br_x, br_y) = corners.astype(np.int64)
    height, width = image.shape[:2]
    canvas = np.zeros((br_y - ul_y, br_x - ul_x, image.shape[2]), dtype=np.uint8)
    # 1-based bookkeeping of the original: canvas rows [ny0, ny1) <- image rows [oy0, oy1)
    nx0, nx1 = max(1, -ul_x + 1) - 1, min(br_x, width) - ul_x
    ny0, ny1 = max(1, -ul_y + 1) - 1, min(br_y, height) - ul_y
    ox0, ox1 = max(1, ul_x + 1) - 1, min(br_x, width)
    oy0, oy1 = max(1, ul_y + 1) - 1, min(br_y, height)
    if nx1 > nx0 and ny1 > ny0:
        canvas[ny0:ny1, nx0:nx1] = image[oy0:oy1, ox0:ox1]
    return cv2.resize(canvas, (resolution, resolution), interpolation=cv2.INTER_LINEAR)


def decode_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, L, H, W) heatmaps -> points (B, L, 2) in heatmap pixels and scores (B, L).

    Per landmark the first maximum, moved a quarter pixel towards the higher
    neighbour on each axis (interior peaks only), minus 0.5; score = the
    maximum. Float32 like the official code.
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    batch, count, height, width = heatmaps.shape
    flat = heatmaps.reshape(batch, count, -1)
    idx = flat.argmax(axis=-1)
    scores = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    px, py = idx % width, idx // width
    points = np.stack([px, py], axis=-1).astype(np.float32) + 1
    inside = (px > 0) & (px < width - 1) & (py > 0) & (py < height - 1)
    b, k = np.nonzero(inside)
    x, y = px[b, k], py[b, k]
    dx = heatmaps[b, k, y, x + 1] - heatmaps[b, k, y, x - 1]
    dy = heatmaps[b, k, y + 1, x] - heatmaps[b, k, y - 1, x]
    points[b, k] += np.sign(np.stack([dx, dy], axis=-1)) * np.float32(0.25)
    return points - np.float32(0.5), scores


def to_image(points: np.ndarray, center: np.ndarray, scale: float, resolution: int = HEATMAP_SIZE) -> np.ndarray:
    """Heatmap points (L, 2) -> image pixels via the inverse crop transform, truncated to integers (official)."""
    return _from_crop(points, center, scale, resolution, torch.float64).astype(np.float32)


# ------------------------------------------------------------------ LandmarkModel adapter


def _box_of(roi: Roi) -> tuple[float, float, float, float]:
    if isinstance(roi, Detection):
        return roi.x0, roi.y0, roi.x1, roi.y1
    xy = roi.xy
    return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())


class FanLandmarks(TorchAdapter):
    """FAN as a `LandmarkModel`: 68 points (z = 0) in frame pixels and a presence score.

    The crop is the official one around the box's centre/scale (reference
    scale 195, made for S3FD boxes); a `Landmarks` roi uses its points'
    bounding box the same way, an approximation the official API does not
    define. `flip=True` adds the mirrored crop's heatmaps (the API default).
    Points are the API's integer-truncated image coordinates. Presence is the
    mean heatmap peak divided by the number of passes, clipped to [0, 1]
    (a trained FAN peaks near 1 on a face); it is a heuristic, not a trained
    probability.
    """

    def __init__(
        self,
        network: FAN,
        *,
        device: torch.device | str | None = None,
        flip: bool = True,
        reference_scale: float = SFD_REFERENCE_SCALE,
        max_batch: int = 8,
    ) -> None:
        super().__init__(network, device=device, max_batch=max_batch)
        self.flip = flip
        self.reference_scale = reference_scale

    def heatmaps(self, crops: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] crops (B,3,256,256) -> last-stack heatmaps, plus the mirrored pass when `flip`."""
        with torch.inference_mode():
            heat = self.network(crops)[-1]
            if self.flip:
                heat = heat + flip_heatmaps(self.network(crops.flip(-1))[-1])
        return heat

    def landmarks(self, frame: np.ndarray, roi: Roi) -> Landmarks:
        """The 68 landmarks of the face in `roi` of one RGB uint8 frame."""
        return self.landmarks_batch([(frame, roi)])[0]

    def landmarks_batch(self, items: Sequence[tuple[np.ndarray, Roi]]) -> list[Landmarks]:
        """Landmarks for several (frame, roi) pairs, cropped and run together."""
        out: list[Landmarks] = []
        for start in range(0, len(items), self.max_batch):
            chunk = items[start : start + self.max_batch]
            for frame, _ in chunk:
                check_frame(frame)
            placements = [box_center_scale(_box_of(roi), self.reference_scale) for _, roi in chunk]
            crops = np.stack([crop(frame, c, s) for (frame, _), (c, s) in zip(chunk, placements)])
            batch = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).to(self.dtype) / 255.0
            heat = self.heatmaps(batch).float().cpu().numpy()
            points, scores = decode_heatmaps(heat)
            passes = 2 if self.flip else 1
            for (center, scale), pts, score in zip(placements, points, scores):
                xy = to_image(pts, center, scale)
                presence = float(np.clip(score.mean() / passes, 0.0, 1.0))
                out.append(Landmarks(np.concatenate([xy, np.zeros((len(xy), 1))], axis=1), presence))
        return out
