"""Composition: paste each generated face's lower part into its frame, inside the face crop.

The original composes with two face-parsing passes (ParseNet mouth and
face masks) and two Laplacian blends at 512x512. Here the mask comes from
the reused FaceMesh landmarks (made by the generate stage with
`shared.face_region.lower_face_mask`: the jaw contour through the chin and the
base of the nose, feathered, zero on the box border), scaled by the face's
fade weight, and `blend.blend` pastes through a Laplacian pyramid at the
box's own resolution. The box lies
inside the face crop, so nothing outside the crop changes; the frame
carries the blended box as a patch. The stage runs
on a plain thread and hands a plain `Window` on (the payload is dropped).
"""

from __future__ import annotations

import cv2
import numpy as np

from lipstream.stream.frames import Frame, Window

from ..shared.blend import blend_region
from .records import Generated, plain_window, retalking_window


class ComposeStage:
    """Stage: blend the generated faces into the owned frames (frames without one pass as they are)."""

    name = "compose"
    device: str | None = None

    def __call__(self, window: Window) -> Window:
        win = retalking_window(window)
        frames = list(win.frames)
        for k in range(win.own_start, win.own_stop):
            generated = win.generated.get(frames[k].index)
            if generated is not None:
                frames[k] = self.paste(frames[k], generated)
        return plain_window(win.with_frames(frames))

    def paste(self, frame: Frame, generated: Generated) -> Frame:
        face = frame.face
        assert face is not None
        x0, y0, x1, y1 = box = generated.box
        size = generated.image.shape[0]
        shrink = (x1 - x0) < size and (y1 - y0) < size
        src = cv2.resize(generated.image, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        mask = generated.mask if face.weight >= 1.0 else generated.mask * np.float32(face.weight)
        # only the box goes back to the sink (Frame.with_patch): no full-frame copy or conversion
        return frame.with_patch(box, blend_region(frame.rgb_region(box), src, mask))


__all__ = ["ComposeStage"]
