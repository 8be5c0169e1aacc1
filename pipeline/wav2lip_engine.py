"""The Wav2Lip engine (`--engine wav2lip`): re-draw the lower face of the tracked speaker.

Per owned frame with a face: a box around the face from the FaceMesh
landmarks (see `face_box`), cut and resized to 96x96, the lower half
blanked, stacked with the same crop unmasked as the reference (what Wav2Lip
inference does: the pose and lighting of the frame itself, at the price of
the original mouth leaking a little into the result), and the 16-column mel
window starting at the frame's exact time. The network runs in batches on
the job's device; the generated face is resized back to the box and blended
into the frame through a Laplacian pyramid under a feathered lower-face mask
(not Wav2Lip's hard rectangle), scaled by the face's fade weight.

Nothing outside the face's crop changes: the box is clamped to the crop and
the blend never writes outside the box. Frames without a face, or with
weight 0, pass through as they are (the same Frame objects). Context frames
are never edited; only owned frames leave the stage changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch import nn

from lipstream.config import SyncConfig
from lipstream.errors import PipelineError
from lipstream.stream.frames import Face, Frame, Window

from ._mel_stream import mel_windows
from .blend import blend_region
from .face_stage import FaceStage
from .stage import Stage

log = logging.getLogger(__name__)

__all__ = ["SIZE", "Wav2LipConfig", "Wav2LipStage", "face_box", "lower_face_mask", "wav2lip_stages"]

SIZE = 96  # Wav2Lip's input and output side
_MIN_SIDE = 8  # boxes narrower than this (px) carry no usable mouth

# FaceMesh points around the region pasted back: the face contour from the
# image-left cheek at nostril height (93) through the chin (152) to the
# image-right one (323), then back along the cheeks and the base of the nose
# (425, 327, 2, 98, 205), so the eyes and the nose tip stay the original's.
LOWER_FACE = (
    93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323,
    425, 327, 2, 98, 205,
)


@dataclass(frozen=True)
class Wav2LipConfig:
    """Options of the Wav2Lip engine.

    `pads` (top, bottom, left, right) grow the landmark box by fractions of
    its height (top, bottom) and width (left, right), in the order of
    Wav2Lip's ``--pads``. Wav2Lip's default (0, 10, 0, 0) is in pixels on
    an S3FD box; the FaceMesh box already spans the upper forehead (point
    10) to the chin (152) and cheek to cheek (234/454), like an S3FD box,
    so the equivalent keeps top, left and right and adds 5% of the face
    height below the chin (10 px of a ~200 px face, the size Wav2Lip's
    default was tuned on), room for a jaw that opens further than the
    original.
    """

    checkpoint: str = "wav2lip"  # registry name: "wav2lip" (sharper sync) or "wav2lip_gan" (sharper image)
    pads: tuple[float, float, float, float] = (0.0, 0.05, 0.0, 0.0)
    batch_size: int = 16  # frames per forward pass; a window rarely owns more
    smooth: int = 5  # frames whose boxes are averaged (centred), as Wav2Lip's detector smoothing
    feather: float = 0.04  # mask softness, in box heights (Gaussian sigma)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.smooth < 1:
            raise ValueError(f"smooth must be >= 1 frame, got {self.smooth}")
        if len(self.pads) != 4 or min(self.pads) <= -0.5:
            raise ValueError(f"pads must be four fractions (top, bottom, left, right) above -0.5, got {self.pads}")

    @property
    def reach(self) -> int:
        """Frames of context read on each side of an owned frame (box smoothing)."""
        return self.smooth // 2

    @property
    def min_overlap(self) -> int:
        """The window overlap that gives every owned frame its `reach` on both sides."""
        return 2 * self.reach


def _usable(face: Face | None) -> bool:
    return face is not None and face.landmarks is not None and face.weight > 0


def face_box(frames: Sequence[Frame], k: int, config: Wav2LipConfig) -> tuple[int, int, int, int] | None:
    """The integer box (x0, y0, x1, y1) cut for `frames[k]`, inside its face crop.

    The landmark boxes of up to `config.smooth` frames centred on k are
    averaged, going no further than the first frame without a face on
    either side (a new track must not borrow boxes from the old one), then
    padded and clamped to the crop. None when too small to use.
    """
    face = frames[k].face
    assert face is not None
    reach = config.reach
    boxes = [np.asarray(face.box, np.float64)]
    for step in (-1, 1):
        j = k + step
        while abs(j - k) <= reach and 0 <= j < len(frames) and frames[j].face is not None:
            boxes.append(np.asarray(frames[j].face.box, np.float64))  # type: ignore[union-attr]
            j += step
    x0, y0, x1, y1 = np.mean(boxes, axis=0)
    top, bottom, left, right = config.pads
    h, w = y1 - y0, x1 - x0
    x0, x1, y0, y1 = x0 - left * w, x1 + right * w, y0 - top * h, y1 + bottom * h
    cx0, cy0, cx1, cy1 = face.crop
    box = (
        max(int(np.floor(x0)), cx0),
        max(int(np.floor(y0)), cy0),
        min(int(np.ceil(x1)), cx1),
        min(int(np.ceil(y1)), cy1),
    )
    if box[2] - box[0] < _MIN_SIDE or box[3] - box[1] < _MIN_SIDE:
        return None
    return box


def lower_face_mask(landmarks: np.ndarray, box: tuple[int, int, int, int], feather: float) -> np.ndarray:
    """Float32 (h, w) weights 0..1 over `box`: the jaw region, feathered, zero on the box border."""
    x0, y0, x1, y1 = box
    h, w = y1 - y0, x1 - x0
    scale = 4  # sub-pixel polygon edges (fillPoly fixed-point shift)
    polygon = np.round((landmarks[list(LOWER_FACE), :2] - (x0, y0)) * (1 << scale)).astype(np.int32)
    canvas = np.zeros((h, w), np.uint8)
    cv2.fillPoly(canvas, [polygon], 255, lineType=cv2.LINE_AA, shift=scale)
    mask = canvas.astype(np.float32) / 255.0
    sigma = max(feather * h, 0.5)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    # Fall to zero at the box border so the edge of the generated square never shows.
    ramp = max(sigma, 1.0)
    rows = np.clip(np.minimum(np.arange(h) + 0.5, h - 0.5 - np.arange(h)) / ramp, 0.0, 1.0)
    cols = np.clip(np.minimum(np.arange(w) + 0.5, w - 0.5 - np.arange(w)) / ramp, 0.0, 1.0)
    return (mask * rows[:, None].astype(np.float32) * cols[None, :].astype(np.float32)).astype(np.float32)


class Wav2LipStage:
    """Stage: Wav2Lip generation and blending for the owned frames of each window.

    `network` is a built Wav2Lip (official weights from the registry, or any
    filled module in tests), already on `device`; it is only run, never
    changed, so one cached module can serve several jobs.
    """

    name = "wav2lip"

    def __init__(self, network: nn.Module, config: Wav2LipConfig = Wav2LipConfig(), *, device: str = "cpu") -> None:
        if network.training:
            raise ValueError("pass the Wav2Lip network in eval mode (BatchNorm must use its running statistics)")
        self.network = network
        self.config = config
        self.device: str | None = device
        self._device = torch.device(device)
        self._dtype = next(network.parameters()).dtype
        log.debug("wav2lip stage on %s, %s, batches of %d", device, self._dtype, config.batch_size)

    def __call__(self, window: Window) -> Window:
        frames = list(window.frames)
        todo: list[tuple[int, tuple[int, int, int, int]]] = []
        for k in range(window.own_start, window.own_stop):
            if _usable(frames[k].face):
                box = face_box(frames, k, self.config)
                if box is not None:
                    todo.append((k, box))
        if not todo:
            return window
        if window.audio is None:
            raise PipelineError("the wav2lip engine needs the new audio with every window; the job attached none")
        faces = np.stack([_network_input(frames[k].rgb_region(box)) for k, box in todo])
        mels = mel_windows(window.audio, [frames[k].time for k, _ in todo])
        generated = self.generate(faces, mels)
        for (k, box), face in zip(todo, generated):
            frames[k] = self._paste(frames[k], box, face)
        return window.with_frames(frames)

    def generate(self, faces: np.ndarray, mels: np.ndarray) -> np.ndarray:
        """Run the network: faces (N, 6, 96, 96) BGR in [0, 1], mels (N, 80, 16) -> (N, 96, 96, 3) RGB in [0, 255]."""
        out = []
        step = self.config.batch_size
        with torch.inference_mode():
            for i in range(0, len(faces), step):
                face = torch.from_numpy(faces[i : i + step])
                mel = torch.from_numpy(mels[i : i + step])[:, None]
                real = len(face)
                if real == 1:
                    # oneDNN takes another convolution path for a batch of one, which changes
                    # the last bits; a batch of two keeps every frame independent of batching.
                    face, mel = face.repeat(2, 1, 1, 1), mel.repeat(2, 1, 1, 1)
                pred = self.network(mel.to(self._device, self._dtype), face.to(self._device, self._dtype))
                out.append(pred[:real].float().cpu().numpy())
        bgr = np.concatenate(out).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(bgr[..., ::-1]) * np.float32(255.0)

    def _paste(self, frame: Frame, box: tuple[int, int, int, int], generated: np.ndarray) -> Frame:
        face = frame.face
        assert face is not None and face.landmarks is not None
        x0, y0, x1, y1 = box
        resized = cv2.resize(generated, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        src = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
        mask = lower_face_mask(face.landmarks, box, self.config.feather)
        if face.weight < 1.0:
            mask *= np.float32(face.weight)
        return frame.with_patch(box, blend_region(frame.rgb_region(box), src, mask))


def _network_input(face: np.ndarray) -> np.ndarray:
    """(6, 96, 96) float32 from the RGB face crop: the masked crop then the reference crop, BGR in [0, 1]."""
    crop = face[:, :, ::-1]
    # INTER_AREA when shrinking: Wav2Lip was trained on low-resolution faces, not aliased ones.
    shrink = face.shape[1] > SIZE and face.shape[0] > SIZE
    small = cv2.resize(np.ascontiguousarray(crop), (SIZE, SIZE), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    reference = small.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
    masked = reference.copy()
    masked[:, SIZE // 2 :, :] = 0.0
    return np.concatenate([masked, reference])


def wav2lip_stages(config: SyncConfig, engine: Wav2LipConfig = Wav2LipConfig()) -> list[Stage]:
    """The `wav2lip` engine: track the face, then generate with the checkpoint from the registry."""
    from lipstream.models._loading import load_model

    weights = config.weights
    dirs = (weights,) if isinstance(weights, (str, Path)) else tuple(weights or ())
    network = load_model(engine.checkpoint, weights_dirs=dirs, device=config.device)
    return [FaceStage(config.face, config.window), Wav2LipStage(network, engine, device=config.device)]
