"""How real a mouth looks, measured on pixels: the proxies an output is held to against its input.

Per frame, with the lips re-detected by FaceMesh (the same independent
tracker as `lipsync_metric.lip_openings`):

* sharpness: variance of the Laplacian of the grey mouth box (lips and
  what is between them, grown by a fifth);
* inside the inner-lip polygon, where the mouth is open: the share of
  teeth-like pixels (bright and nearly colourless) and the luminance mean
  and spread;
* flicker: mean absolute difference of the mouth box from the frame before.

`summarise` pools them over a clip; open frames are those whose opening
(gap over inner width) is over `OPEN`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator

import cv2
import numpy as np

from lipstream.models.facemesh import LIPS_INNER, LIPS_OUTER

from .lipsync_metric import mouth_ratio, track_faces

__all__ = ["OPEN", "MouthFrame", "Realism", "mouth_frames", "summarise"]

OPEN = 0.15  # inner gap over inner width above which a mouth counts as open


@dataclass(frozen=True)
class MouthFrame:
    opening: float
    sharpness: float
    teeth: float  # share of teeth-like pixels inside the inner lips (NaN when closed)
    inner_mean: float  # luma inside the inner lips (NaN when closed)
    inner_std: float
    flicker: float  # NaN on the first frame and after a frame without a face


@dataclass(frozen=True)
class Realism:
    sharpness: float
    teeth: float  # over open frames
    inner_mean: float
    inner_std: float
    flicker: float
    open_frames: int
    frames: int


def _teeth_like(rgb: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    return (hsv[..., 2] > 150) & (hsv[..., 1] < 80)


def mouth_frames(frames: Iterable[np.ndarray]) -> Iterator[MouthFrame | None]:
    """The measures of each RGB frame (None where no face is found)."""
    previous: tuple[np.ndarray, tuple[int, int, int, int]] | None = None
    for rgb, xy in zip_faces(frames):
        if xy is None:
            previous = None
            yield None
            continue
        lips = xy[list(LIPS_OUTER)]
        (x0, y0), (x1, y1) = lips.min(axis=0), lips.max(axis=0)
        gx, gy = 0.2 * (x1 - x0), 0.2 * (y1 - y0)
        h, w = rgb.shape[:2]
        box = (max(int(x0 - gx), 0), max(int(y0 - gy), 0), min(int(x1 + gx) + 1, w), min(int(y1 + gy) + 1, h))
        region = rgb[box[1] : box[3], box[0] : box[2]]
        grey = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY)
        sharpness = float(cv2.Laplacian(grey, cv2.CV_32F).var())
        opening = mouth_ratio(xy)
        teeth = inner_mean = inner_std = math.nan
        if opening > OPEN:
            mask = np.zeros(grey.shape, np.uint8)
            cv2.fillPoly(mask, [np.round(xy[list(LIPS_INNER)] - box[:2]).astype(np.int32)], 1)
            inside = mask.astype(bool)
            if inside.sum() >= 10:
                teeth = float(_teeth_like(region)[inside].mean())
                inner_mean, inner_std = float(grey[inside].mean()), float(grey[inside].std())
        flicker = math.nan
        if previous is not None:
            px0, py0, px1, py1 = box
            flicker = float(np.abs(region.astype(np.float32) - previous[0][py0:py1, px0:px1]).mean())
        previous = (rgb.astype(np.float32), box)
        yield MouthFrame(opening, sharpness, teeth, inner_mean, inner_std, flicker)


def zip_faces(frames: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(frame, its landmarks (468, 2) or None), tracking the largest face."""
    for rgb, marks in track_faces(frames):
        yield rgb, None if marks is None else marks.xy


def summarise(measures: Iterable[MouthFrame | None]) -> Realism:
    rows = [m for m in measures]
    found = [m for m in rows if m is not None]
    opened = [m for m in found if not math.isnan(m.teeth)]

    def mean(values: list[float]) -> float:
        values = [v for v in values if not math.isnan(v)]
        return float(np.mean(values)) if values else math.nan

    return Realism(
        sharpness=mean([m.sharpness for m in found]),
        teeth=mean([m.teeth for m in opened]),
        inner_mean=mean([m.inner_mean for m in opened]),
        inner_std=mean([m.inner_std for m in opened]),
        flicker=mean([m.flicker for m in found]),
        open_frames=len(opened),
        frames=len(rows),
    )
