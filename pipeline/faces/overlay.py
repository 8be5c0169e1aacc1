"""Draw the tracking result on frames so a person can check it by eye."""

from __future__ import annotations

import cv2
import numpy as np

from lipstream.models.facemesh import LIPS
from lipstream.stream.frames import Frame, Window

BOX, CROP, LIP, MISSING = (40, 220, 60), (250, 210, 40), (240, 40, 40), (240, 60, 60)


def draw(frame: Frame) -> np.ndarray:
    image = frame.rgb().copy()
    face = frame.face
    thick = max(1, round(min(image.shape[:2]) / 300))
    if face is None:
        cv2.putText(image, "no face", (10, 30 * thick), cv2.FONT_HERSHEY_SIMPLEX, thick, MISSING, thick, cv2.LINE_AA)
        return image
    x0, y0, x1, y1 = face.crop
    cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), CROP, thick, cv2.LINE_AA)
    bx0, by0, bx1, by1 = (int(round(v)) for v in face.box)
    cv2.rectangle(image, (bx0, by0), (bx1, by1), BOX, thick, cv2.LINE_AA)
    if face.landmarks is not None:
        for x, y in face.landmarks[list(LIPS), :2]:
            cv2.circle(image, (int(round(x)), int(round(y))), thick, LIP, -1, cv2.LINE_AA)
    label = f"p={face.presence:.2f} w={face.weight:.1f}" + (" small" if face.small else "")
    cv2.putText(image, label, (x0 + 4, max(y0 - 6, 14)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, CROP, thick, cv2.LINE_AA)
    return image


class Overlay:
    """Stage: boxes, crop and lip points drawn on every owned frame."""

    name = "overlay"
    device: str | None = None

    def __call__(self, window: Window) -> Window:
        frames = list(window.frames)
        for i in range(window.own_start, window.own_stop):
            frames[i] = frames[i].with_image(draw(frames[i]))
        return window.with_frames(frames)
