"""Face restoration of the re-drawn lower face: GPEN-BFR-512 or GFPGAN, pasted with a ParseNet mask.

Generated mouths are soft (Wav2Lip draws at 96 px, E-Net at 384); the
restoration networks redraw a face aligned to their 512x512 template with
sharp lips and teeth. Per owned frame that an engine edited:

1. The five points (eye centres, nose tip, mouth corners) come from the
   landmarks the face stage computed, averaged over the neighbouring frames,
   and a similarity maps them onto the networks' template; only the face
   region inside the tracked crop is warped to 512.
2. The network runs on the window's faces in batches on the device (in
   float16 on CUDA for the networks `models` marks `half`).
3. A per-frame run of restoration flickers on still footage (the networks
   see each frame afresh). The restoration is kept as a residual over the
   aligned input and carried from frame to frame pixel by pixel: where the
   aligned input changed (the mouth moved) the new residual is taken, where
   it stood still the old one is kept (a small share of the new one still
   comes in), so still parts stay still and motion is followed.
4. ParseNet, run once per frame on the restored face (the only ParseNet pass
   of any engine: composition and `best`'s references use landmark masks),
   gives the face's own pixels (skin, eyes, brows, nose, lips, mouth; not
   hair, ears or background), intersected with the lower-face mask from the
   landmarks and the face's fade weight. The restored face goes back through the inverse
   warp and the Laplacian blend into that region only; everything outside it
   reaches the encoder unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from lipstream.stream.frames import Frame, Window

from lipstream.config import SyncConfig
from lipstream.models._loading import inference_dtype, load_model

from ..base import Found
from .blend import blend_region
from .enhancers import ENHANCERS
from .face_region import Box, editable, lower_face_mask, mesh_five_points, trusted

log = logging.getLogger(__name__)

__all__ = [
    "EnhanceConfig",
    "EnhanceStage",
    "TEMPLATE_512",
    "align_matrix",
    "enhance_stage",
    "parse_masks",
    "restore",
    "similarity",
]

Enhancer = Literal["gpen", "gfpgan"]

SIZE = 512
TEMPLATE_512 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935], [201.26117, 371.41043], [313.08905, 371.15118]]
)
"""Where the FFHQ-aligned 512x512 faces both networks were trained on have the image-left eye,
the other eye, the nose tip and the two mouth corners."""

FACE_CLASSES = (1, 2, 3, 4, 5, 6, 7, 10, 11, 12)  # ParseNet: the face without ears, neck, hair or hat


@dataclass(frozen=True)
class EnhanceConfig:
    """Tuning of the enhance stage."""

    batch_size: int = 1  # faces per forward: 512x512 networks gain nothing from batching on the CPU
    smooth: int = 5  # frames whose five points are averaged (centred) for the alignment
    still: float = 6.0  # change of a pixel (levels, blurred) at which its restoration is taken afresh
    keep: float = 0.15  # least share of a new restoration taken per frame, however still the pixel
    change_blur: float = 4.0  # sigma (template pixels) of the change map: motion, not noise, decides
    mask_blur: float = 4.0  # ParseNet mask softness, in 512-template pixels
    feather: float = 0.04  # lower-face mask softness, in box heights

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.smooth < 1:
            raise ValueError("batch_size and smooth must be >= 1")
        if not 0.0 < self.keep <= 1.0 or self.still <= 0:
            raise ValueError("keep must be in (0, 1] and still > 0")


def similarity(points: np.ndarray, template: np.ndarray) -> np.ndarray:
    """The (2, 3) rotation + uniform scale + translation taking `points` closest (least squares) to `template`."""
    src = np.asarray(points, np.float64)
    dst = np.asarray(template, np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    denominator = float((s**2).sum()) or 1e-12
    a = float((s * d).sum()) / denominator
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / denominator
    rotation = np.array([[a, -b], [b, a]])
    return np.hstack([rotation, (mu_d - rotation @ mu_s)[:, None]])


def align_matrix(frames: Sequence[Frame], k: int, smooth: int) -> np.ndarray:
    """Frame px -> template px for `frames[k]`, from the five points averaged over up to `smooth`
    centred frames (stopping at a frame without a trusted face: a new track borrows nothing)."""
    face = frames[k].face
    assert face is not None and face.landmarks is not None
    points = [mesh_five_points(face.landmarks)]
    for step in (-1, 1):
        j = k + step
        while abs(j - k) <= smooth // 2 and 0 <= j < len(frames) and trusted(frames[j].face):
            points.append(mesh_five_points(frames[j].face.landmarks))  # type: ignore[union-attr]
            j += step
    return similarity(np.mean(points, axis=0), TEMPLATE_512)


def _region(matrix: np.ndarray, crop: Box) -> Box | None:
    """The frame box the 512 template square covers, inside the face crop."""
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [SIZE, 0, 1], [0, SIZE, 1], [SIZE, SIZE, 1]], np.float64) @ inverse.T
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
    box = (max(int(x0), crop[0]), max(int(y0), crop[1]), min(int(x1), crop[2]), min(int(y1), crop[3]))
    return box if box[2] - box[0] >= 8 and box[3] - box[1] >= 8 else None


def _shifted(matrix: np.ndarray, box: Box) -> np.ndarray:
    """`matrix` for pixels counted from the box's corner."""
    out = matrix.copy()
    out[:, 2] += matrix[:, :2] @ np.array([box[0], box[1]], np.float64)
    return out


def restore(network: nn.Module, faces: np.ndarray, kind: Enhancer, batch_size: int) -> np.ndarray:
    """(N, 512, 512, 3) uint8 RGB aligned faces -> the network's restorations, float32 RGB in [0, 255]."""
    weights = next(network.parameters())
    out = []
    with torch.inference_mode():
        for start in range(0, len(faces), batch_size):
            batch = torch.from_numpy(faces[start : start + batch_size]).to(weights.device).permute(0, 3, 1, 2)
            x = (batch.to(weights.dtype) / 127.5) - 1.0
            y = network(x)
            out.append(((y.float().clamp(-1, 1) + 1.0) * 127.5).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def parse_masks(parser: nn.Module, faces: np.ndarray, batch_size: int) -> np.ndarray:
    """(N, 512, 512) float32 in {0, 1}: ParseNet's face classes on uint8-range RGB faces."""
    weights = next(parser.parameters())
    table = torch.zeros(19, dtype=torch.float32, device=weights.device)
    table[list(FACE_CLASSES)] = 1.0
    out = []
    with torch.inference_mode():
        for start in range(0, len(faces), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(faces[start : start + batch_size])).to(weights.device)
            x = (batch.permute(0, 3, 1, 2).to(weights.dtype) / 127.5) - 1.0
            logits, _ = parser(x)
            out.append(table[logits.argmax(dim=1)].cpu().numpy())
    return np.concatenate(out)


class EnhanceStage:
    """Stage: restore the lower face of the frames an engine edited (see the module docstring).

    `network` is GPEN-BFR-512 or GFPGANv1Clean, `parser` ParseNet, both in
    eval mode on `device`; they are only run, so cached modules can be shared.
    """

    name = "enhance"

    def __init__(self, network: nn.Module, parser: nn.Module, kind: Enhancer, *, device: str = "cpu", config: EnhanceConfig = EnhanceConfig()) -> None:
        if network.training or parser.training:
            raise ValueError("pass the restoration network and ParseNet in eval mode")
        self.network, self.parser, self.kind, self.config = network, parser, kind, config
        self.device: str | None = device
        self._previous: tuple[int, np.ndarray, np.ndarray] | None = None  # frame index, aligned input, residual

    def __call__(self, window: Window) -> Window:
        frames = list(window.frames)
        todo: list[tuple[int, np.ndarray, Box]] = []
        for k in range(window.own_start, window.own_stop):
            frame = frames[k]
            if not (frame.edited and editable(frame.face)):
                continue
            matrix = align_matrix(frames, k, self.config.smooth)
            box = _region(matrix, frame.face.crop)  # type: ignore[union-attr]
            if box is not None:
                todo.append((k, matrix, box))
        if not todo:
            return window
        aligned = np.stack(
            [cv2.warpAffine(frames[k].rgb_region(box), _shifted(m, box), (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) for k, m, box in todo]
        )
        restored = restore(self.network, aligned, self.kind, self.config.batch_size)
        steady = np.stack([self._steady(frames[k].index, a, r) for (k, _, _), a, r in zip(todo, aligned, restored)])
        faces = np.clip(np.rint(steady), 0, 255).astype(np.uint8)
        masks = parse_masks(self.parser, faces, self.config.batch_size)
        for (k, matrix, box), face, mask in zip(todo, faces, masks):
            frames[k] = self._paste(frames[k], matrix, box, face, mask)
        return window.with_frames(frames)

    def _steady(self, index: int, aligned: np.ndarray, restored: np.ndarray) -> np.ndarray:
        """The restoration to show: per pixel, the new residual where the face changed, the carried one where it stood still."""
        current = aligned.astype(np.float32)
        residual = restored - current
        previous = self._previous
        if previous is not None and previous[0] == index - 1:
            change = cv2.GaussianBlur(np.abs(current - previous[1]).mean(axis=2), (0, 0), self.config.change_blur)
            follow = np.clip(change / self.config.still, self.config.keep, 1.0)[..., None]
            residual = previous[2] + follow * (residual - previous[2])
        self._previous = (index, current, residual)
        return current + residual

    def _paste(self, frame: Frame, matrix: np.ndarray, box: Box, face: np.ndarray, mask: np.ndarray) -> Frame:
        assert frame.face is not None and frame.face.landmarks is not None
        width, height = box[2] - box[0], box[3] - box[1]
        back = cv2.invertAffineTransform(_shifted(matrix, box))
        sigma = self.config.mask_blur
        soft = cv2.GaussianBlur(mask, (0, 0), sigma) if sigma > 0 else mask
        region = cv2.warpAffine(face, back, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        weight = cv2.warpAffine(soft, back, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        weight *= lower_face_mask(frame.face.landmarks, box, self.config.feather)
        if frame.face.weight < 1.0:
            weight *= np.float32(frame.face.weight)
        return frame.with_patch(box, blend_region(frame.rgb_region(box), region, weight.astype(np.float32)))


def enhance_stage(config: SyncConfig, found: Found) -> EnhanceStage:
    """The enhance stage `config.enhance` names, with the checkpoints `found` holds."""
    kind: Enhancer = config.enhance  # type: ignore[assignment]
    restorer, parser = (found.name_for(requirement) for requirement in ENHANCERS[kind])
    network, parse = (
        load_model(name, weights_dirs=found.weights, device=config.device, dtype=inference_dtype(name, config.device, config.precision))
        for name in (restorer, parser)
    )
    batch = 1 if config.device.split(":")[0] == "cpu" else 4
    return EnhanceStage(network, parse, kind, device=config.device, config=EnhanceConfig(batch_size=batch))
