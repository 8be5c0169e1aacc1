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

The per-frame work around the network (crop, colour conversion, resizes,
blend) runs either as numpy/OpenCV on the CPU or as batched torch ops on
the network's device (`regions.py`); `use_torch_regions` picks one, and the
two agree within 2 levels.

Nothing outside the face's crop changes: the box is clamped to the crop and
the blend never writes outside the box. Frames without a face, or with
weight 0, pass through as they are (the same Frame objects). Context frames
are never edited; only owned frames leave the stage changed.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import torch
from torch import nn

from lipstream.config import Precision
from lipstream.errors import PipelineError
from lipstream.models._loading import cpu_autocast, inference_dtype, load_model
from lipstream.stream.frames import Frame, Window

from ..base import Found
from ..shared.blend import blend_region
from ..shared.face_region import Box, editable, face_box, lower_face_mask
from ..shared.mel import mel_windows
from ..shared.region_torch import upload_regions, use_torch_regions
from .config import CHECKPOINT, Wav2LipConfig
from .regions import SIZE, network_input, paste

log = logging.getLogger(__name__)

__all__ = ["SIZE", "Wav2LipStage", "load_stage"]


class Wav2LipStage:
    """Stage: Wav2Lip generation and blending for the owned frames of each window.

    `network` is a built Wav2Lip (official weights from the registry, or any
    filled module in tests), already on `device`; it is only run, never
    changed, so one cached module can serve several jobs.
    """

    name = "wav2lip"

    def __init__(
        self,
        network: nn.Module,
        config: Wav2LipConfig = Wav2LipConfig(),
        *,
        device: str = "cpu",
        autocast: torch.dtype | None = None,
    ) -> None:
        """`autocast`: run the network under `torch.autocast` in that dtype (bfloat16 on a CPU
        that has it: `models._loading.cpu_autocast`); None runs it in its own dtype."""
        if network.training:
            raise ValueError("pass the Wav2Lip network in eval mode (BatchNorm must use its running statistics)")
        # Channels-last lets oneDNN (CPU) and cuDNN (tensor cores) skip a layout change around
        # every convolution; converting the shared module again is a no-op.
        self.network = network.to(memory_format=torch.channels_last)
        self.config = config
        self.device: str | None = device
        self._device = torch.device(device)
        # under autocast the network is float32 with its convolutions stored cast (`load_model`)
        self._dtype = torch.float32 if autocast is not None else next(network.parameters()).dtype
        self._autocast = autocast
        self._torch_regions = use_torch_regions(self._device, config.regions)
        log.debug(
            "wav2lip stage on %s, %s%s, batches of %d, regions by %s",
            device, self._dtype, f" under {autocast} autocast" if autocast else "", config.batch_size,
            "torch" if self._torch_regions else "OpenCV",
        )

    def __call__(self, window: Window) -> Window:
        frames = list(window.frames)
        todo: list[tuple[int, Box]] = []
        for k in range(window.own_start, window.own_stop):
            if editable(frames[k].face):
                box = face_box(frames, k, pads=self.config.pads, smooth=self.config.smooth)
                if box is not None:
                    todo.append((k, box))
        if not todo:
            return window
        if window.audio is None:
            raise PipelineError("the wav2lip engine needs the new audio with every window; the job attached none")
        mels = mel_windows(window.audio, [frames[k].time for k, _ in todo])
        if self._torch_regions:
            with torch.inference_mode():
                batch = upload_regions([frames[k] for k, _ in todo], [box for _, box in todo], self._device)
                crops = batch.crops()
                generated = self._forward(network_input(crops, batch.sizes), torch.from_numpy(mels))
                patches = paste(batch, crops, generated, [self._mask(frames[k], box) for k, box in todo])
            for (k, _), (wide, pixels) in zip(todo, patches):
                frames[k] = frames[k].with_patch(wide, pixels)
        else:
            faces = np.stack([_network_input(frames[k].rgb_region(box)) for k, box in todo])
            for (k, box), face in zip(todo, self.generate(faces, mels)):
                frames[k] = self._paste(frames[k], box, face)
        return window.with_frames(frames)

    def generate(self, faces: np.ndarray, mels: np.ndarray) -> np.ndarray:
        """Run the network: faces (N, 6, 96, 96) BGR in [0, 1], mels (N, 80, 16) -> (N, 96, 96, 3) RGB in [0, 255]."""
        with torch.inference_mode():
            pred = self._forward(torch.from_numpy(faces), torch.from_numpy(mels)).cpu().numpy()
        return np.ascontiguousarray(pred.transpose(0, 2, 3, 1)[..., ::-1]) * np.float32(255.0)

    def _forward(self, faces: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        """faces (N, 6, 96, 96), mels (N, 80, 16), on any device -> float32 (N, 3, 96, 96) BGR in [0, 1] on the stage's."""
        out = []
        step = self.config.batch_size
        autocast = torch.autocast(self._device.type, dtype=self._autocast or torch.float32, enabled=self._autocast is not None)
        with autocast:
            for i in range(0, len(faces), step):
                face = self._to_device(faces[i : i + step])
                mel = self._to_device(mels[i : i + step, None])
                real = len(face)
                if real == 1:
                    # oneDNN takes another convolution path for a batch of one, which changes
                    # the last bits; a batch of two keeps every frame independent of batching.
                    face, mel = face.repeat(2, 1, 1, 1), mel.repeat(2, 1, 1, 1)
                out.append(self.network(mel, face)[:real].float())
        return torch.cat(out)

    def _to_device(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.to(self._device, self._dtype, non_blocking=True, memory_format=torch.channels_last)

    def _mask(self, frame: Frame, box: Box) -> np.ndarray:
        """The lower-face weights over `box`, scaled by the face's fade weight."""
        face = frame.face
        assert face is not None and face.landmarks is not None
        mask = lower_face_mask(face.landmarks, box, self.config.feather)
        if face.weight < 1.0:
            mask *= np.float32(face.weight)
        return mask

    def _paste(self, frame: Frame, box: Box, generated: np.ndarray) -> Frame:
        x0, y0, x1, y1 = box
        resized = cv2.resize(generated, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        src = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
        return frame.with_patch(box, blend_region(frame.rgb_region(box), src, self._mask(frame, box)))


def load_stage(found: Found, device: str, precision: Precision = "auto", config: Wav2LipConfig = Wav2LipConfig()) -> Wav2LipStage:
    """The stage with whichever checkpoint `found` holds, in the precision measured safe for it on `device`."""
    name = found.name_for(CHECKPOINT)
    dtype = inference_dtype(name, device, precision)
    autocast = cpu_autocast(name, device, precision)
    network = load_model(name, weights_dirs=found.weights, device=device, dtype=dtype, autocast=autocast)
    return Wav2LipStage(network, config, device=device, autocast=autocast)


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
