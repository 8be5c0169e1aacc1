"""`blend.blend_region` for a batch of regions of different sizes, as torch ops on any device.

The same Laplacian pyramid of the difference `src - base`, band by band under
the Gaussian pyramid of the mask, then tapered and added to the base: the
5-tap [1 4 6 4 1]/16 kernel, OpenCV's pyrDown (reflect-101 border, ceil
halving) and pyrUp (zeros between samples, reflect-101 border, truncated to
the finer level's size). Regions share one zero-padded tensor; each keeps its
own borders because every padding step reflects at that region's own end
(a gather and a scatter of the few samples past it), so one pass per step
serves the whole batch whatever the sizes. Agrees with the OpenCV version within 1 level (float rounding).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from .blend import TAPER, pyramid_levels

__all__ = ["blend_regions"]

def blend_regions(base: torch.Tensor, src: torch.Tensor, mask: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Blended uint8 (N, C, H, W): `src` into `base` where `mask` (N, 1, H, W, 0..1) says.

    `base` is uint8, `src` holds values 0..255 (any dtype); region n is
    `[:sizes[n][0], :sizes[n][1]]` of each tensor, and what lies beyond it
    in the result is undefined.
    """
    mask = mask.float().clamp(0.0, 1.0)
    diff = src.float() - base.float()
    levels = [pyramid_levels(h, w) for h, w in sizes]
    heights = torch.tensor([h for h, _ in sizes], device=base.device)
    widths = torch.tensor([w for _, w in sizes], device=base.device)
    if len(set(levels)) == 1:
        correction = _correction(diff, mask, heights, widths, levels[0])
    else:  # regions too small for the full pyramid: one pass per depth
        correction = torch.empty_like(diff)
        for depth in sorted(set(levels)):
            pick = torch.tensor([n for n, d in enumerate(levels) if d == depth], device=base.device)
            correction[pick] = _correction(diff[pick], mask[pick], heights[pick], widths[pick], depth)
    taper = (mask * TAPER).clamp(max=1.0)
    return (base.float() + correction * taper).round().clamp(0.0, 255.0).to(torch.uint8)


def _correction(diff: torch.Tensor, mask: torch.Tensor, heights: torch.Tensor, widths: torch.Tensor, levels: int) -> torch.Tensor:
    """Collapse of (Laplacian band of `diff`) x (Gaussian level of `mask`) over all bands."""
    channels = diff.shape[1]
    pyramid = [torch.cat([diff, mask], 1)]  # both go down together: one pass per level
    sizes = [(heights, widths)]
    for _ in range(levels):
        pyramid.append(_pyr_down(pyramid[-1], *sizes[-1]))
        sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))
    coarse = pyramid[-1]
    result = coarse[:, :channels] * coarse[:, channels:]
    for level in range(levels - 1, -1, -1):
        fine = pyramid[level]
        up = _pyr_up(torch.cat([result, pyramid[level + 1][:, :channels]], 1), *sizes[level + 1], fine.shape[2:])
        band = fine[:, :channels] - up[:, channels:]
        result = up[:, :channels] + band * fine[:, channels:]
    return result


def _pyr_down(images: torch.Tensor, heights: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """cv2.pyrDown of each region: (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2))."""
    return _down(_down(images, widths, 3), heights, 2)


def _pyr_up(images: torch.Tensor, heights: torch.Tensor, widths: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """cv2.pyrUp of each region (`heights`, `widths`) to the batch size `size` (H, W) of the finer level."""
    return _up(_up(images, widths, 3)[..., : size[1]], heights, 2)[:, :, : size[0]]


def _down(x: torch.Tensor, valid: torch.Tensor, dim: int) -> torch.Tensor:
    """Smooth and keep every other sample along `dim`: out[i] = sum_k kernel[k] x[2i + k - 2], reflect-101."""
    count = (x.shape[dim] + 1) // 2
    padded = _pad(x, valid, _cut(x, dim, 1, 3).flip(dim), lambda i: valid[:, None] - 2 - i, 2, dim)
    tap = [_cut(padded, dim, k, k + 2 * count - 1, 2) for k in range(5)]  # the kernel [1 4 6 4 1] / 16
    return (tap[0] + tap[4]).add_(tap[1] + tap[3], alpha=4.0).add_(tap[2], alpha=6.0).mul_(1.0 / 16.0)


def _up(x: torch.Tensor, valid: torch.Tensor, dim: int) -> torch.Tensor:
    """Double the samples along `dim` as pyrUp does, in two phases instead of convolving zeros in.

    Between the samples of the zero-filled, reflect-101 padded signal the
    5-tap kernel leaves (x[k-1] + 6 x[k] + x[k+1]) / 8 at 2k and
    (x[k] + x[k+1]) / 2 at 2k+1, with x[-1] = x[1] and x[n] = x[n-1].
    """
    length = x.shape[dim]
    padded = _pad(x, valid, _cut(x, dim, 1, 2), lambda i: valid[:, None] - 1 - i, 1, dim)
    before, here, after = (_cut(padded, dim, k, k + length) for k in range(3))
    even = (before + after).add_(here, alpha=6.0).mul_(1.0 / 8.0)
    odd = (here + after).mul_(0.5)
    return torch.stack([even, odd], dim + 1).flatten(dim, dim + 1)


def _cut(x: torch.Tensor, dim: int, start: int, stop: int, step: int = 1) -> torch.Tensor:
    """`x[start:stop:step]` along `dim` (a view)."""
    return x[(slice(None),) * dim + (slice(start, stop, step),)]


def _pad(
    x: torch.Tensor, valid: torch.Tensor, left: torch.Tensor, source: Callable[[torch.Tensor], torch.Tensor], width: int, dim: int
) -> torch.Tensor:
    """`x` (N, ...) with `left` before and `width` samples after each region's end (`valid[n]`) along `dim`.

    The samples after region n's end are x[n, source(i)] for i = 0..width-1
    (source gives (N, width) indexes); past the end of the batch, where no
    region reads, anything will do.
    """
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    shape[dim] = width
    size = list(x.shape)
    size[dim] = width
    i = torch.arange(width, device=x.device)[None]
    take = source(i).clamp(min=0).view(shape).expand(size)
    put = (valid[:, None] + left.shape[dim] + i).view(shape).expand(size)
    padded = torch.cat([left, x, _cut(x, dim, x.shape[dim] - width, x.shape[dim])], dim)
    return padded.scatter_(dim, put, x.gather(dim, take))
