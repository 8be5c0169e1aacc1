"""Generation: E-Net (around L-Net) redraws each owned face with a mouth that fits the new audio.

Per owned frame with a reference: a box around the face from the FaceMesh
landmarks (`shared.face_region.face_box`: averaged over 5 frames, 10% of the
face height added below the chin like the original's 20 px S3FD padding,
clamped to the face crop), the frame cut to that box with its lower half
blanked, the stabilised reference laid into the same box, and the 16 mel
columns starting at the frame's exact time. Networks see BGR in [0, 1],
audio first; E-Net's StyleConv noise is off (deterministic) and its output
is clamped to [0, 1] and truncated to uint8 as upstream does.

Only what is pasted is computed: the lower-face mask (`shared.face_region.
lower_face_mask`, also handed to the compose stage) starts near the
nostrils, so E-Net's 384x384 upsampler runs on the band of rows the mask
can reach (`enet_rows`: identical values there; the band starts ~28% down
the box on the sample, which saves ~20% of E-Net per frame); the rows
above are the frame's own pixels. E-Net's style vector
depends on the reference only and costs about as much as the band: with
``style="window"`` it is computed once per window from the middle frame's
reference (the references of one window differ by pose only), with
``"frame"`` for every frame as upstream. ``full=False`` (fast quality)
runs L-Net alone on 96x96 inputs and returns its 96x96 face.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lipstream.errors import PipelineError
from lipstream.stream.frames import Frame, Window

from ..shared.face_region import face_box, lower_face_mask
from ..shared.mel import mel_windows
from .geometry import Box, box_to_image, cut, invert, then
from .records import Generated, Reference, retalking_window

log = logging.getLogger(__name__)

FULL_SIZE = 384  # E-Net's face side
LOW_SIZE = 96  # L-Net's face side
_REACH = 4  # rows of E-Net's 100-px map that reach one output row (3, measured exact) plus one


def enet_rows(enet: nn.Module, audio: torch.Tensor, face: torch.Tensor, style: torch.Tensor, first: int) -> torch.Tensor:
    """Rows first..383 of E-Net's output (B, 3, 384 - first, 384), computing only those.

    Same inputs as ``ENet.forward`` (no noise, `style` given). L-Net runs on
    the whole face; the upsampler (reflect pad to 100 px, two x2 StyleConv
    stages, crop 8 px) runs on the 100-px rows from `_REACH` above the
    first one needed, which leaves the requested rows exactly as the full
    pass computes them.
    """
    low = enet.low_res(audio, F.interpolate(face, size=(LOW_SIZE, LOW_SIZE), mode="bilinear", align_corners=False))
    top = max(0, (first + 8) // 4 - _REACH)
    out = F.pad(low, (2, 2, 2, 2), mode="reflect")[:, :, top:]
    skip = out
    for s, to_rgb in enumerate(enet.to_rgbs):
        out = enet.style_convs[2 * s](out, style)
        out = enet.style_convs[2 * s + 1](out, style)
        skip = to_rgb(out, style, skip)
    return skip[:, :, first + 8 - 4 * top : 392 - 4 * top, 8:-8]


class GenerateStage:
    """Stage: the generated face and its paste mask for every owned frame that has a reference.

    `enet` is a built ENet (its L-Net inside as ``low_res``) in eval mode
    on `device`, only run, never changed.
    """

    name = "generate"

    def __init__(
        self,
        enet: nn.Module,
        *,
        device: str = "cpu",
        full: bool = True,
        style: Literal["window", "frame"] = "window",
        batch_size: int = 1,
        pads: tuple[float, float, float, float] = (0.0, 0.1, 0.0, 0.0),
        smooth: int = 5,
        feather: float = 0.04,
    ) -> None:
        if enet.training:
            raise ValueError("pass ENet in eval mode (L-Net's BatchNorm must use its running statistics)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.enet = enet
        self.device: str | None = device
        self.full = full
        self.style = style
        self.batch_size = batch_size
        self.pads = pads
        self.smooth = smooth
        self.feather = feather
        self.size = FULL_SIZE if full else LOW_SIZE

    def __call__(self, window: Window) -> Window:
        win = retalking_window(window)
        frames = list(win.frames)
        todo: list[tuple[int, Box, np.ndarray, int]] = []
        for k in range(win.own_start, win.own_stop):
            if frames[k].index not in win.references:
                continue
            box = face_box(frames, k, pads=self.pads, smooth=self.smooth)
            if box is None:
                continue
            mask = lower_face_mask(frames[k].face.landmarks, box, self.feather)  # type: ignore[union-attr]
            rows = np.flatnonzero(mask.any(axis=1))
            if rows.size:
                # S rows that resizing to the box reads for box row rows[0] and below
                todo.append((k, box, mask, max(0, math.floor(rows[0] * self.size / mask.shape[0]) - 2)))
        if not todo:
            return replace(win, generated={})
        if win.audio is None:
            raise PipelineError("the retalking engine needs the new audio with every window; the job attached none")
        mels = mel_windows(win.audio, [frames[k].time for k, *_ in todo])
        inputs = [self._inputs(frames[k], win.references[frames[k].index], box) for k, box, *_ in todo]
        originals, masked, references = zip(*inputs)
        firsts = [first for *_, first in todo]
        faces = self.generate(np.stack(masked), np.stack(references), mels, firsts)
        generated = {}
        for (k, box, mask, first), face, original in zip(todo, faces, originals):
            face[:first] = original[:first]  # never pasted: the mask is zero there
            generated[frames[k].index] = Generated(face, box, mask)
        log.debug("window %d: %d faces generated at %d px", win.index, len(generated), self.size)
        return replace(win, generated=generated)

    def _inputs(self, frame: Frame, reference: Reference, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The box at S x S as uint8 RGB, then the network inputs (3, S, S) float32 BGR [0, 1].

        The inputs are the box with its lower half blanked and the reference laid into the box.
        """
        size = self.size
        original = cut(frame.rgb(), box, size)
        # S px -> frame px -> reference px: one resampling of the stabilised face
        to_reference = then(invert(box_to_image(box, size)), reference.matrix)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        ref = cv2.warpAffine(reference.image, to_reference, (size, size), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        masked = original[..., ::-1].transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
        masked[:, size // 2 :, :] = 0.0
        ref = ref[..., ::-1].transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
        return original, masked, ref

    def generate(
        self, masked: np.ndarray, references: np.ndarray, mels: np.ndarray, firsts: list[int] | None = None
    ) -> np.ndarray:
        """(N, 3, S, S) BGR inputs and (N, 80, 16) mels -> (N, S, S, 3) uint8 RGB faces.

        With E-Net, rows above each frame's `firsts` entry may be left black
        (they are computed only as far as a batch shares them).
        """
        param = next(self.enet.parameters())
        n, size = len(masked), self.size
        firsts = [0] * n if firsts is None else firsts

        def tensor(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x)).to(param.device, param.dtype)

        out = np.zeros((n, size, size, 3), np.uint8)
        with torch.inference_mode():
            # Denormal activations make CPU kernels up to 10x slower (measured on L-Net); flushing
            # them to zero changes values below 1e-38 only. The flag belongs to this (executor) thread.
            torch.set_flush_denormal(True)
            style = None
            if self.full and self.style == "window":
                middle = n // 2
                style = self.enet.style_code(tensor(references[middle : middle + 1]))
            for i in range(0, n, self.batch_size):
                ref = tensor(references[i : i + self.batch_size])
                face = torch.cat([tensor(masked[i : i + self.batch_size]), ref], dim=1)
                mel = tensor(mels[i : i + self.batch_size])[:, None]
                first = min(firsts[i : i + self.batch_size])
                if self.full:
                    batch_style = self.enet.style_code(ref) if style is None else style.expand(len(face), -1)
                    pred = enet_rows(self.enet, mel, face, batch_style, first).clamp(0.0, 1.0)
                else:
                    pred, first = self.enet.low_res(mel, face), 0
                # upstream: x 255, cast to uint8 (truncation); BGR -> RGB
                pixels = (pred.float() * 255.0).to(torch.uint8).flip(1).permute(0, 2, 3, 1).cpu().numpy()
                out[i : i + len(face), first:] = pixels
        return out


__all__ = ["FULL_SIZE", "GenerateStage", "LOW_SIZE", "enet_rows"]
