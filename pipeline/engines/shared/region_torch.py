"""Face regions of a batch of frames as one tensor on the engine's device, and back as patches.

Only the regions travel, never whole frames: for a decoded 4:2:0 frame the
Y, U and V samples of the region (1.5 bytes a pixel) are uploaded and
turned into RGB on the device with OpenCV's integer BT.601 arithmetic, so
the pixels equal `Frame.rgb_region`'s exactly. Each region is widened to
even coordinates (chroma pairs, and what `Frame.with_patch` stores), the
boxes are read out of that by per-sample offsets, and edited boxes go back
into it, so a patch comes home without another conversion on the CPU.

Whether an engine takes this path is `use_torch_regions`: the one place
that weighs it against the numpy/OpenCV path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch

from lipstream.stream.frames import Frame

from .resample_torch import take

log = logging.getLogger(__name__)

__all__ = ["RegionBatch", "RegionPath", "download_patches", "upload_regions", "use_torch_regions"]

Box = tuple[int, int, int, int]
RegionPath = Literal["auto", "torch", "opencv"]

# OpenCV's BT.601 limited-range YUV -> RGB in 20-bit fixed point (color_yuv: ITUR_BT_601_*).
_SHIFT = 20
_CY, _CUB, _CUG, _CVG, _CVR = 1220542, 2116026, -409993, -852492, 1673527


def use_torch_regions(device: torch.device | str, choice: RegionPath = "auto") -> bool:
    """Whether per-frame region work runs as torch ops on `device` rather than numpy/OpenCV on the CPU.

    On "auto" the torch path serves every accelerator and OpenCV the CPU,
    where it is several times faster per frame (tools/bench_regions.py).
    """
    if choice == "auto":
        return torch.device(device).type != "cpu"
    return choice == "torch"


@dataclass(frozen=True)
class RegionBatch:
    """The even-aligned regions of N frames on one device.

    `pixels` is uint8 (N, 3, H, W) RGB, region n in its top-left
    `[:h_n, :w_n]` corner; `boxes` are the asked-for boxes and `wide` the
    even boxes actually held (each `wide` contains its box).
    """

    pixels: torch.Tensor
    boxes: tuple[Box, ...]
    wide: tuple[Box, ...]

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(height, width) of each box."""
        return [(y1 - y0, x1 - x0) for x0, y0, x1, y1 in self.boxes]

    def crops(self) -> torch.Tensor:
        """uint8 (N, 3, h, w) of the boxes themselves (each in its top-left corner, the batch padded)."""
        dy, dx, _, _ = self._offsets()
        rows = torch.arange(max(h for h, _ in self.sizes), device=dy.device)[None] + dy  # sizes from the host: no sync
        cols = torch.arange(max(w for _, w in self.sizes), device=dx.device)[None] + dx
        return take(self.pixels, rows.clamp(max=self.pixels.shape[2] - 1), cols.clamp(max=self.pixels.shape[3] - 1))

    def put(self, crops: torch.Tensor) -> torch.Tensor:
        """`pixels` with each box replaced by its crop from `crops` (laid out as `crops()` gives them)."""
        dy, dx, heights, widths = self._offsets()
        rows = torch.arange(self.pixels.shape[2], device=dy.device)[None] - dy
        cols = torch.arange(self.pixels.shape[3], device=dx.device)[None] - dx
        inside = ((rows >= 0) & (rows < heights))[:, None, :, None] & ((cols >= 0) & (cols < widths))[:, None, None, :]
        moved = take(crops, rows.clamp(0, crops.shape[2] - 1), cols.clamp(0, crops.shape[3] - 1))
        return torch.where(inside, moved, self.pixels)

    def _offsets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, 1) row and column offsets of each box in its even region, and the boxes' heights and widths."""
        table = torch.tensor(
            [(b[1] - w[1], b[0] - w[0], b[3] - b[1], b[2] - b[0]) for b, w in zip(self.boxes, self.wide)],
            device=self.pixels.device,
        )
        dy, dx, heights, widths = table.T[:, :, None]
        return dy, dx, heights, widths


def upload_regions(frames: Sequence[Frame], boxes: Sequence[Box], device: torch.device | str) -> RegionBatch:
    """The RGB regions of `boxes` (inside each frame) of `frames`, on `device` (see `RegionBatch`)."""
    boxes = tuple(f.inside(b) for f, b in zip(frames, boxes))
    wide = tuple(f.even_box(b) for f, b in zip(frames, boxes))
    height = max(y1 - y0 for _, y0, _, y1 in wide)
    width = max(x1 - x0 for x0, _, x1, _ in wide)
    planes = [f.i420_planes() for f in frames]
    target = torch.device(device)
    if all(p is not None for p in planes):
        luma = np.zeros((len(frames), height, width), np.uint8)
        chroma = np.zeros((len(frames), 2, height // 2, width // 2), np.uint8)
        for n, ((y, u, v), (x0, y0, x1, y1)) in enumerate(zip(planes, wide)):  # type: ignore[misc]
            luma[n, : y1 - y0, : x1 - x0] = y[y0:y1, x0:x1]
            chroma[n, 0, : (y1 - y0) // 2, : (x1 - x0) // 2] = u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
            chroma[n, 1, : (y1 - y0) // 2, : (x1 - x0) // 2] = v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
        pixels = _i420_to_rgb(_to_device(luma, target), _to_device(chroma, target))
    else:  # edited, rotated or not 4:2:0: the CPU converts, the region travels as RGB
        log.debug("%d of %d regions are not plain 4:2:0 pictures: all travel as RGB", planes.count(None), len(planes))
        rgb = np.zeros((len(frames), height, width, 3), np.uint8)
        for n, (frame, box) in enumerate(zip(frames, wide)):
            region = frame.rgb_region(box)
            rgb[n, : region.shape[0], : region.shape[1]] = region
        pixels = _to_device(rgb, target).permute(0, 3, 1, 2)
    return RegionBatch(pixels, boxes, wide)


def download_patches(batch: RegionBatch, pixels: torch.Tensor) -> list[tuple[Box, np.ndarray]]:
    """(even box, uint8 RGB (h, w, 3)) per region of `pixels` (laid out as `batch.pixels`), for `Frame.with_patch`."""
    host = pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return [(box, host[n, : box[3] - box[1], : box[2] - box[0]]) for n, box in enumerate(batch.wide)]


def _to_device(host: np.ndarray, device: torch.device) -> torch.Tensor:
    """Host array -> tensor on `device`; through pinned memory (an asynchronous copy) for CUDA."""
    tensor = torch.from_numpy(host)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _i420_to_rgb(luma: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) Y and (N, 2, H/2, W/2) U, V -> uint8 (N, 3, H, W) RGB, bit-exact with cv2.COLOR_YUV2RGB_I420."""
    y = (luma.int() - 16).clamp(min=0)[:, None] * _CY
    uv = chroma.int() - 128
    uv = uv.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    u, v = uv[:, :1], uv[:, 1:]
    half = 1 << (_SHIFT - 1)
    red = y + (half + _CVR * v)
    green = y + (half + _CVG * v + _CUG * u)
    blue = y + (half + _CUB * u)
    return (torch.cat([red, green, blue], 1) >> _SHIFT).clamp(0, 255).to(torch.uint8)
