"""`best` quality: the stabilised references restored by GPEN before E-Net draws from them.

VideoReTalking enhances every D-Net face with GPEN-BFR-512 and pastes it back
under ParseNet's face mask (its step 5): E-Net then copies teeth and lip
texture from a sharp reference instead of D-Net's soft one. Here the same
runs on each distinct reference image of the window (in `fast` quality
several frames share one), aligned to GPEN's template by the five points of
the frame's landmarks carried into the image, and blended back with the
feathered mask.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
from torch import nn

from lipstream.stream.frames import Window

from ..shared.enhance import SIZE, TEMPLATE_512, parse_masks, restore, similarity
from ..shared.face_region import mesh_five_points
from .geometry import apply
from .records import Reference, retalking_window

__all__ = ["RefineReferences"]


class RefineReferences:
    """Stage: GPEN on the window's D-Net references (networks in eval mode on `device`)."""

    name = "refine"

    def __init__(self, gpen: nn.Module, parser: nn.Module, *, device: str = "cpu", batch_size: int = 1, mask_blur: float = 11.0) -> None:
        if gpen.training or parser.training:
            raise ValueError("pass GPEN and ParseNet in eval mode")
        self.gpen, self.parser = gpen, parser
        self.device: str | None = device
        self.batch_size = batch_size
        self.mask_blur = mask_blur

    def __call__(self, window: Window) -> Window:
        win = retalking_window(window)
        firsts: dict[int, tuple[Reference, np.ndarray]] = {}  # id(image) -> a reference to it, its frame's landmarks
        for frame in win.frames:
            ref = win.references.get(frame.index)
            if ref is not None and id(ref.image) not in firsts and frame.face is not None and frame.face.landmarks is not None:
                firsts[id(ref.image)] = (ref, frame.face.landmarks)
        if not firsts:
            return win
        matrices, aligned = [], []
        for ref, landmarks in firsts.values():
            matrix = similarity(apply(ref.matrix, mesh_five_points(landmarks)), TEMPLATE_512)
            matrices.append(matrix)
            aligned.append(cv2.warpAffine(ref.image, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
        restored = np.clip(np.rint(restore(self.gpen, np.stack(aligned), "gpen", self.batch_size)), 0, 255).astype(np.uint8)
        masks = parse_masks(self.parser, restored, self.batch_size)
        refined: dict[int, np.ndarray] = {}
        for key, matrix, face, mask in zip(firsts, matrices, restored, masks):
            image = firsts[key][0].image
            height, width = image.shape[:2]
            back = cv2.invertAffineTransform(matrix)
            soft = cv2.GaussianBlur(mask, (0, 0), self.mask_blur)
            alpha = cv2.warpAffine(soft, back, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
            face_back = cv2.warpAffine(face, back, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            refined[key] = np.clip(np.rint(alpha * face_back + (1 - alpha) * image), 0, 255).astype(np.uint8)
        references = {i: Reference(refined.get(id(r.image), r.image), r.matrix) for i, r in win.references.items()}
        return replace(win, references=references)
