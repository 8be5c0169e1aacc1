"""Box math shared by the SSD-style detectors (RetinaFace, S3FD), in torch.

torchvision is not a dependency, so the greedy NMS lives here. Both detectors'
official post-processing measures boxes with the "+1" pixel convention
(a box from x1 to x2 covers ``x2 - x1 + 1`` pixels: corners are inclusive
pixel indices) and drops a box when its IoU with a kept one is *greater*
than the threshold; `nms` reproduces exactly that. Everything runs on the
device and in the dtype of its inputs.
"""

from __future__ import annotations

import torch

__all__ = ["decode_center_size", "nms"]


def decode_center_size(loc: torch.Tensor, priors: torch.Tensor, variances: tuple[float, float]) -> torch.Tensor:
    """SSD offsets (..., N, 4) against priors (N, 4) ``cx, cy, w, h`` -> boxes (..., N, 4) ``x1, y1, x2, y2``.

    ``cx = pcx + l0 * v0 * pw``, ``w = pw * exp(l2 * v1)`` (same for y/h);
    ``x1 = cx - w / 2`` and ``x2 = x1 + w``, in the units of `priors`.
    """
    centre = priors[..., :2] + loc[..., :2] * variances[0] * priors[..., 2:]
    size = priors[..., 2:] * torch.exp(loc[..., 2:] * variances[1])
    corner = centre - size / 2
    return torch.cat([corner, corner + size], dim=-1)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, max_kept: int | None = None) -> torch.Tensor:
    """Greedy non-maximum suppression; indices of the kept boxes, best score first.

    `boxes` (N, 4) ``x1, y1, x2, y2`` with the "+1" area convention of the
    official detectors; a box is dropped when its IoU with an already kept
    box exceeds `iou_threshold`. Equal scores keep their input order.
    Stopping after `max_kept` boxes gives the first `max_kept` of the full
    result (a later box never removes an earlier one), sooner.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    x1, y1, x2, y2 = boxes.unbind(-1)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    keep = []
    while order.numel() > 0 and (max_kept is None or len(keep) < max_kept):
        best, rest = order[0], order[1:]
        keep.append(best)
        w = (torch.minimum(x2[best], x2[rest]) - torch.maximum(x1[best], x1[rest]) + 1).clamp(min=0)
        h = (torch.minimum(y2[best], y2[rest]) - torch.maximum(y1[best], y1[rest]) + 1).clamp(min=0)
        inter = w * h
        iou = inter / (areas[best] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    if not keep:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    return torch.stack(keep)
