"""Synthetic face scenes for tracking tests: real face patches pasted on a plain canvas."""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Iterable, Iterator

import av
import cv2
import numpy as np

from lipstream.config import FaceConfig, WindowConfig
from lipstream.pipeline.faces.stage import FaceStage
from lipstream.stream.frames import Frame, Window
from lipstream.stream.windows import plan_windows
from media import DATA

CANVAS = (640, 360)


def first_frame(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


@lru_cache(maxsize=None)
def face_patch(which: str) -> np.ndarray:
    """A square patch (about 2x the face) of a real face: 'woman' (demo1) or 'astronaut'."""
    if which == "woman":
        rgb, (cx, cy, side) = first_frame(DATA / "sample.mp4"), (306, 360, 220)
    else:
        rgb, (cx, cy, side) = first_frame(DATA / "synth_astronaut" / "clip.mp4"), (333, 160, 230)
    half = side // 2
    return np.ascontiguousarray(rgb[cy - half : cy + half, cx - half : cx + half])


def paste(canvas: np.ndarray, patch: np.ndarray, centre: tuple[float, float], size: int) -> None:
    """Paste `patch` resized to `size` px with its centre at `centre` (clipped at the borders)."""
    small = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    x0, y0 = int(round(centre[0] - size / 2)), int(round(centre[1] - size / 2))
    h, w = canvas.shape[:2]
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(w, x0 + size), min(h, y0 + size)
    if dx1 > dx0 and dy1 > dy0:
        canvas[dy0:dy1, dx0:dx1] = small[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]


def canvas(size: tuple[int, int] = CANVAS) -> np.ndarray:
    img = np.full((size[1], size[0], 3), 118, np.uint8)
    img[..., 2] = 132
    return img


def run_stage(images: Iterable[np.ndarray | av.VideoFrame], config: FaceConfig = FaceConfig(),
              window: WindowConfig = WindowConfig()) -> Iterator[Frame]:
    """Owned frames, with their faces, after the face stage ran over windows of `images`.

    RGB arrays become edited frames (the stage converts around the face);
    decoded pictures stay decoded (the stage samples their 4:2:0 planes).
    """
    stage = FaceStage(config, window)
    frames = (
        Frame(i, i, Fraction(1, 25), i, image=img) if isinstance(img, np.ndarray) else Frame(i, i, Fraction(1, 25), i, decoded=img)
        for i, img in enumerate(images)
    )
    for n, (items, lo, hi) in enumerate(plan_windows(frames, window.size, window.overlap)):
        yield from stage(Window(n, tuple(items), lo, hi)).owned


def decoded(path) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def pictures(path) -> Iterator[av.VideoFrame]:
    """The decoded (4:2:0) pictures of a clip, as the job's frames carry them."""
    with av.open(str(path)) as container:
        yield from container.decode(video=0)
