"""What the adapters of the torch face models (RetinaFace, S3FD, FAN) share.

An adapter runs its network where the network's weights are, in their dtype
(`placement`), on RGB uint8 frames (`check_frame`). RetinaFace and S3FD take
the frame at its own size minus a per-channel mean, so frames of equal size
can share one forward: `BatchedDetector` groups them and turns each
network-specific decoding (rows ``x1, y1, x2, y2, score``, then keypoint
``x, y`` pairs, in frame pixels) into clipped `Detection`s.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .face_types import Detection

__all__ = ["BGR_MEAN", "BatchedDetector", "TorchAdapter", "check_frame", "placement"]

BGR_MEAN = (104.0, 117.0, 123.0)
"""The Caffe-era ImageNet means, in the B, G, R order both detectors were trained with."""


def placement(network: nn.Module, device: torch.device | str | None) -> tuple[torch.device, torch.dtype]:
    """The device and dtype of `network`'s weights, checking that it is in eval mode and on `device` if given."""
    if network.training:
        raise ValueError("pass the network in eval mode (BatchNorm must use its running statistics)")
    weights = next(network.parameters())
    if device is not None:
        wanted = torch.device(device)
        if wanted.type != weights.device.type or wanted.index not in (None, weights.device.index):
            raise ValueError(f"the network is on {weights.device}, not {device}; load it there (load_model(..., device=...))")
    return weights.device, weights.dtype


def check_frame(frame: np.ndarray, where: str = "") -> None:
    """Refuse anything but an RGB uint8 (H, W, 3) array."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected RGB uint8 (H, W, 3) frames, got {frame.dtype} {frame.shape}{where}")


class TorchAdapter:
    """Holds an eval-mode network, where it runs (`device`, `dtype`) and how many inputs share a forward."""

    def __init__(self, network: nn.Module, *, device: torch.device | str | None, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.device, self.dtype = placement(network, device)
        self.network = network
        self.max_batch = max_batch


class BatchedDetector(TorchAdapter):
    """Base of the detector adapters: subclasses decode the network outputs of one batch in `_decode`."""

    def __init__(
        self,
        network: nn.Module,
        *,
        device: torch.device | str | None,
        mean: tuple[float, float, float],
        to_bgr: bool,
        max_faces: int | None,
        max_batch: int,
    ) -> None:
        super().__init__(network, device=device, max_batch=max_batch)
        self.mean = mean
        self.to_bgr = to_bgr
        self.max_faces = max_faces

    def prepare(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """Equal-size RGB uint8 frames -> the network input (B, 3, H, W): channels as trained, minus the mean."""
        batch = torch.from_numpy(np.stack(frames)).to(self.device).permute(0, 3, 1, 2).float()
        if self.to_bgr:
            batch = batch.flip(1)
        batch = batch - torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        return batch.to(self.dtype)

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces per frame (RGB uint8 (H, W, 3)), best score first."""
        by_size: dict[tuple[int, ...], list[int]] = {}
        for index, frame in enumerate(frames):
            check_frame(frame, f" at index {index}")
            by_size.setdefault(frame.shape, []).append(index)
        results: list[list[Detection]] = [[] for _ in frames]
        for (height, width, _), indices in by_size.items():
            for start in range(0, len(indices), self.max_batch):
                chunk = indices[start : start + self.max_batch]
                with torch.inference_mode():
                    outputs = self.network(self.prepare([frames[i] for i in chunk]))
                    rows = self._decode(outputs, height, width)
                for i, found in zip(chunk, rows):
                    results[i] = self._detections(found, height, width)
        return results

    def _detections(self, rows: np.ndarray, height: int, width: int) -> list[Detection]:
        """Rows of one frame -> `Detection`s, boxes clipped to the pixel centres of the frame."""
        out = []
        for row in rows[: self.max_faces]:
            x0, x1 = np.clip(row[[0, 2]], 0, width - 1)
            y0, y1 = np.clip(row[[1, 3]], 0, height - 1)
            out.append(Detection(x0, y0, x1, y1, row[4], row[5:].reshape(-1, 2)))
        return out

    def _decode(self, outputs: object, height: int, width: int) -> list[np.ndarray]:
        """Per image of the batch, (K, 5 + 2P) rows in frame pixels, best score first."""
        raise NotImplementedError
