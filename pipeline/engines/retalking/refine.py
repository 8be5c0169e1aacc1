"""`best` quality: the stabilised references restored by GPEN before E-Net draws from them.

VideoReTalking enhances every D-Net face with GPEN-BFR-512 and pastes it back
under ParseNet's face mask (its step 5): E-Net then copies teeth and lip
texture from a sharp reference instead of D-Net's soft one. Here the same
runs on each distinct reference image of the window (in `fast` quality
several frames share one), aligned to GPEN's template by the five points of
the frame's landmarks carried into the image, and blended back inside the
face outline of those landmarks (`FACE_OVAL`, feathered): the face ParseNet
would find, without a network pass. ParseNet then runs once per frame, in
the enhance stage, where the original runs it three times.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
from torch import nn

from lipstream.stream.frames import Window

from ..shared.enhance import SIZE, TEMPLATE_512, restore, similarity
from ..shared.face_region import FACE_OVAL, mesh_five_points, outline_mask
from .geometry import apply
from .records import Reference, retalking_window

__all__ = ["RefineReferences"]


class RefineReferences:
    """Stage: GPEN on the window's D-Net references (the network in eval mode on `device`)."""

    name = "refine"

    def __init__(self, gpen: nn.Module, *, device: str = "cpu", batch_size: int = 1, feather: float = 0.03) -> None:
        if gpen.training:
            raise ValueError("pass GPEN in eval mode")
        self.gpen = gpen
        self.device: str | None = device
        self.batch_size = batch_size
        self.feather = feather  # mask softness, in reference heights

    def __call__(self, window: Window) -> Window:
        win = retalking_window(window)
        firsts: dict[int, tuple[Reference, np.ndarray]] = {}  # id(image) -> a reference to it, its frame's landmarks
        for frame in win.frames:
            ref = win.references.get(frame.index)
            if ref is not None and id(ref.image) not in firsts and frame.face is not None and frame.face.landmarks is not None:
                firsts[id(ref.image)] = (ref, frame.face.landmarks)
        if not firsts:
            return win
        marks, matrices, aligned = [], [], []
        for ref, landmarks in firsts.values():
            carried = apply(ref.matrix, np.asarray(landmarks, np.float64)[:, :2])
            matrix = similarity(mesh_five_points(carried), TEMPLATE_512)
            marks.append(carried)
            matrices.append(matrix)
            aligned.append(cv2.warpAffine(ref.image, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
        restored = np.clip(np.rint(restore(self.gpen, np.stack(aligned), "gpen", self.batch_size)), 0, 255).astype(np.uint8)
        refined: dict[int, np.ndarray] = {}
        for key, carried, matrix, face in zip(firsts, marks, matrices, restored):
            image = firsts[key][0].image
            height, width = image.shape[:2]
            alpha = outline_mask(carried, (0, 0, width, height), self.feather, FACE_OVAL)[..., None]
            back = cv2.invertAffineTransform(matrix)
            face_back = cv2.warpAffine(face, back, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            refined[key] = np.clip(np.rint(alpha * face_back + (1 - alpha) * image), 0, 255).astype(np.uint8)
        references = {i: Reference(refined.get(id(r.image), r.image), r.matrix) for i, r in win.references.items()}
        return replace(win, references=references)
