"""What the retalking stages hand each other inside a window.

A `RetalkingWindow` is a `Window` that also carries, for its owned frames,
the stabilised reference faces (from the stabilise stage) and the
generated faces (from the generate stage), keyed by frame index. The
payload lives and dies with the window, so memory stays per window; the
compose stage returns a plain `Window` again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from lipstream.stream.frames import Window

from .geometry import Box


@dataclass(frozen=True, slots=True, eq=False)
class Reference:
    """A D-Net stabilised face (neutral expression, the frame's pose) and where it sits.

    `matrix` maps this frame's pixels to `image` pixels. In `fast` quality a
    frame may share the image of a nearby key frame; its matrix then goes
    through the similarity between the two faces.
    """

    image: np.ndarray  # (256, 256, 3) uint8 RGB
    matrix: np.ndarray  # (2, 3) frame px -> image px


@dataclass(frozen=True, slots=True, eq=False)
class Generated:
    """The redrawn face of one frame, covering `box` (frame px) once resized, and where to paste it."""

    image: np.ndarray  # (S, S, 3) uint8 RGB, S = 384 (E-Net) or 96 (L-Net only)
    box: Box
    mask: np.ndarray  # (box height, box width) float32 0..1, before the face's fade weight


@dataclass(frozen=True, slots=True)
class RetalkingWindow(Window):
    references: Mapping[int, Reference] = field(default_factory=dict)
    generated: Mapping[int, Generated] = field(default_factory=dict)


def retalking_window(window: Window) -> RetalkingWindow:
    """`window` as a RetalkingWindow (itself when it already is one)."""
    if isinstance(window, RetalkingWindow):
        return window
    return window.as_kind(RetalkingWindow)


def plain_window(window: Window) -> Window:
    """The window without its retalking payload (frees the images before the sink)."""
    if not isinstance(window, RetalkingWindow):
        return window
    return window.as_kind(Window)


__all__ = ["Generated", "Reference", "RetalkingWindow", "plain_window", "retalking_window"]
