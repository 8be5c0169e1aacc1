"""Stabilisation: re-render each owned face with a neutral expression and its own pose (face3d + D-Net).

VideoReTalking gives L-Net a reference face whose mouth says nothing, so
the original lips cannot leak into the new ones. Per frame the face3d
regressor estimates 3DMM coefficients from the face aligned on the reused
FaceMesh landmarks; D-Net then redraws the frame's 256x256 crop driven by
26 frames of coefficients (idx-13 .. idx+12) whose expression is replaced
by the template (neutral by default), so only pose and placement drive it.

Streaming: the 26-frame context comes from the window overlap (the engine
asks for at least `MIN_OVERLAP` frames, 13 before and 13 after); at the
ends of the video the window ends and the indices clamp there, as the
original clamps to the video. Coefficients are computed once per frame and
kept only while a later window can still read them. The crop placement
rows (scale, tx, ty) of every column are measured in the crop of the frame
being redrawn, so a moving crop does not read as head motion; the
original's crop-ratio correction is 1 (see `_face3d_coeffs.crop_norm_ratio`).

`every` > 1 (fast quality) runs D-Net on one frame in `every` and gives the
frames around it that stabilised face, moved onto their own face by the
similarity between their eye and nose landmarks.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import cv2
import numpy as np
import torch
from torch import nn

from lipstream.models._face3d_coeffs import WINDOW_RADIUS, driving_window, semantic_row
from lipstream.stream.frames import Frame, Window

from ..shared.face_region import mesh_five_points, trusted
from .geometry import (
    STABLE,
    Box,
    alignment_params,
    apply,
    box_to_image,
    cut,
    similarity,
    stabilise_box,
    then,
)
from .records import Reference, retalking_window

log = logging.getLogger(__name__)

SIZE = 256  # D-Net's input side (multiples of 32 work; the weights were trained at 256)


class StabiliseStage:
    """Stage: a D-Net stabilised reference for every owned frame with a usable face.

    `face3d` (Face3dRecon) and `dnet` (DNet) are built networks in eval mode
    on `device`; `template5` is the (5, 3) BFM landmark template
    (`_face3d_coeffs.five_points` of similarity_Lm3D_all.mat ``lm``),
    `expression` the 64 template expression coefficients.
    """

    name = "stabilise"

    def __init__(
        self,
        face3d: nn.Module,
        dnet: nn.Module,
        template5: np.ndarray,
        expression: np.ndarray,
        *,
        device: str = "cpu",
        every: int = 1,
        batch_size: int = 4,
        dnet_batch: int = 1,
        smooth: int = 5,
    ) -> None:
        for net in (face3d, dnet):
            if net.training:
                raise ValueError(f"pass {type(net).__name__} in eval mode")
        if min(every, batch_size, dnet_batch) < 1:
            raise ValueError(f"every, batch_size and dnet_batch must be >= 1, got {every}, {batch_size}, {dnet_batch}")
        self.face3d = face3d
        self.dnet = dnet
        self.template5 = np.asarray(template5, dtype=np.float64).reshape(5, 3)
        self.expression = np.asarray(expression, dtype=np.float32).reshape(-1)[:64]
        if self.expression.size != 64:
            raise ValueError(f"the expression template needs 64 coefficients, got {self.expression.size}")
        self.device: str | None = device
        self.every = every
        self.batch_size = batch_size  # face3d
        self.dnet_batch = dnet_batch
        self.smooth = smooth
        self._coeffs: dict[int, np.ndarray] = {}  # frame index -> 257 face3d coefficients

    def __call__(self, window: Window) -> Window:
        frames = window.frames
        boxes = {k: stabilise_box(frames, k, self.smooth) for k, f in enumerate(frames) if trusted(f.face)}
        crops: dict[int, np.ndarray] = {}
        self._estimate(frames, boxes, crops)
        targets = [k for k in range(window.own_start, window.own_stop) if k in boxes and _weight(frames[k]) > 0]
        groups = [targets[i : i + self.every] for i in range(0, len(targets), self.every)]
        keys = [g[len(g) // 2] for g in groups]
        images = self._stabilise(frames, boxes, crops, keys)
        references = {}
        for group, key in zip(groups, keys):
            to_key = box_to_image(boxes[key], SIZE)
            for k in group:
                matrix = to_key if k == key else then(self._onto(frames[k], frames[key]), to_key)
                references[frames[k].index] = Reference(images[key], matrix)
        oldest = frames[0].index if frames else 0
        for index in [i for i in self._coeffs if i < oldest]:
            del self._coeffs[index]
        log.debug("window %d: %d references from %d D-Net frames", window.index, len(references), len(keys))
        return replace(retalking_window(window), references=references)

    def _crop(self, frame: Frame, box: Box, crops: dict[int, np.ndarray], k: int) -> np.ndarray:
        if k not in crops:
            crops[k] = cut(frame.rgb(), box, SIZE)
        return crops[k]

    def _estimate(self, frames: tuple[Frame, ...], boxes: dict[int, Box], crops: dict[int, np.ndarray]) -> None:
        """face3d coefficients for the window's faces that have none yet."""
        todo = [k for k in boxes if frames[k].index not in self._coeffs]
        aligned = []
        for k in todo:
            image = self._crop(frames[k], boxes[k], crops, k)
            points = apply(box_to_image(boxes[k], SIZE), mesh_five_points(frames[k].face.landmarks))  # type: ignore[union-attr]
            _, matrix = alignment_params(points, SIZE, self.template5)
            aligned.append(cv2.warpAffine(image, matrix, (224, 224), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT))
        for start in range(0, len(todo), self.batch_size):
            batch = np.stack(aligned[start : start + self.batch_size]).astype(np.float32) / np.float32(255.0)
            coeffs = self._run(self.face3d, torch.from_numpy(batch).permute(0, 3, 1, 2))
            for k, row in zip(todo[start : start + self.batch_size], coeffs.numpy()):
                self._coeffs[frames[k].index] = row.astype(np.float32)

    def _stabilise(
        self, frames: tuple[Frame, ...], boxes: dict[int, Box], crops: dict[int, np.ndarray], keys: list[int]
    ) -> dict[int, np.ndarray]:
        """D-Net outputs (256, 256, 3) uint8 RGB for the key positions."""
        out: dict[int, np.ndarray] = {}
        for start in range(0, len(keys), self.dnet_batch):
            chunk = keys[start : start + self.dnet_batch]
            sources = np.stack([self._crop(frames[k], boxes[k], crops, k) for k in chunk]).astype(np.float32)
            sources = sources / np.float32(127.5) - np.float32(1.0)
            driving = np.stack([self._driving(frames, boxes, k) for k in chunk])
            fake = self._run(self.dnet, torch.from_numpy(sources).permute(0, 3, 1, 2), torch.from_numpy(driving))
            # the original's uint8 conversion: clamp to [-1, 1], (x + 1) / 2 * 255, truncated
            pixels = ((fake.clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            for k, image in zip(chunk, pixels):
                out[k] = np.ascontiguousarray(image)
        return out

    def _driving(self, frames: tuple[Frame, ...], boxes: dict[int, Box], k: int) -> np.ndarray:
        """The (73, 26) driving window of position k, every column placed in k's crop."""
        to_k = box_to_image(boxes[k], SIZE)
        rows = []
        for q in range(k - WINDOW_RADIUS, k + WINDOW_RADIUS):
            j = _nearest_with(boxes, min(max(q, 0), len(frames) - 1))
            points = apply(to_k, mesh_five_points(frames[j].face.landmarks))  # type: ignore[union-attr]
            params, _ = alignment_params(points, SIZE, self.template5)
            rows.append(semantic_row(self._coeffs[frames[j].index], params))
        return driving_window(np.stack(rows), self.expression, crop_ratio=1.0)

    def _onto(self, frame: Frame, key: Frame) -> np.ndarray:
        """Affine from `frame` px to `key` px that lays one face on the other (eyes and nose ridge)."""
        return similarity(frame.face.landmarks[list(STABLE)], key.face.landmarks[list(STABLE)])  # type: ignore[union-attr]

    def _run(self, net: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
        param = next(net.parameters())
        with torch.inference_mode():
            torch.set_flush_denormal(True)  # see GenerateStage.generate
            out = net(*(x.to(param.device, param.dtype) for x in inputs))
        if isinstance(out, dict):
            out = out["fake_image"]
        return out.float().cpu()


def _weight(frame: Frame) -> float:
    return 0.0 if frame.face is None else frame.face.weight


def _nearest_with(boxes: dict[int, Box], q: int) -> int:
    """Position q, or the nearest position that has a usable face (q's own first, earlier on ties)."""
    if q in boxes:
        return q
    return min(boxes, key=lambda k: (abs(k - q), k))


__all__ = ["SIZE", "StabiliseStage"]
