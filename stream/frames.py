"""The units that flow through the pipeline: frames, audio spans and windows.

A `Frame` keeps the decoded PyAV frame untouched until a stage asks for
pixels, so a frame no stage edits is re-encoded straight from its decoded
planes (no RGB round trip). Output timing (`pts`, `time_base`) is the output
timeline; `source_index` says which decoded frame supplied the pixels, which
differs from `index` when the video is ping-ponged or frozen to fit the audio.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TypeVar
from fractions import Fraction

import av
import cv2
import numpy as np


I420 = ("yuv420p", "yuvj420p")


def decoded_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB24 pixels of a decoded frame.

    4:2:0 pictures use OpenCV's converter, ~4x faster than swscale here; the
    sink converts edited regions back with its inverse, which round-trips
    untouched pixels to within rounding (mean error 0.002 levels).
    """
    if frame.format.name in I420 and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(format=frame.format.name), cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


def plane_view(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """A (height, width) uint8 view of one picture plane's buffer, without the row padding."""
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]


def rgb_to_i420(rgb: np.ndarray) -> np.ndarray:
    """Packed I420 (H*3/2, W) of an even-sized RGB image: the inverse of `decoded_rgb`."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)


def _rotate(rgb: np.ndarray, degrees: int) -> np.ndarray:
    """Turn decoded pixels upright; `degrees` is the display rotation (counter-clockwise)."""
    turns = (round(degrees / 90) % 4)
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


@dataclass(frozen=True, slots=True, eq=False)
class Patch:
    """Edited RGB pixels of a box (x0, y0, x1, y1, even coordinates) of a frame."""

    box: tuple[int, int, int, int]
    rgb: np.ndarray


@dataclass(frozen=True, slots=True, eq=False)
class Face:
    """The target speaker in one frame: what every later stage reuses.

    Landmarks are computed once per frame by the face stage. `crop` is the
    smoothed, frame-clamped box (integer frame pixels, x0 y0 x1 y1) inside
    which stages work; `weight` (0..1) fades their effect in and out where
    the track starts or ends so nothing pops.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray | None  # (468, 3) FaceMesh points in frame pixels
    presence: float
    crop: tuple[int, int, int, int]
    weight: float = 1.0
    small: bool = False  # too small for reliable landmarks: stages skip alignment-heavy work


@dataclass(slots=True, eq=False)
class Frame:
    """One output video frame.

    `image` is None while the pixels are those of `decoded`; stages that change
    pixels return `frame.with_image(rgb)` rather than mutating, because the same
    frame object is also context in the neighbouring window.
    """

    index: int
    pts: int
    time_base: Fraction
    source_index: int
    decoded: av.VideoFrame | None = None
    rotation: int = 0
    image: np.ndarray | None = None
    patch: Patch | None = None  # an edited region over the decoded pixels (see with_patch)
    face: Face | None = None  # the target speaker, once the face stage has run
    _rgb: np.ndarray | None = field(default=None, repr=False)

    @property
    def time(self) -> Fraction:
        return self.pts * self.time_base

    @property
    def edited(self) -> bool:
        return self.image is not None or self.patch is not None

    def rgb(self) -> np.ndarray:
        """The upright RGB24 pixels (H, W, 3), converted once and cached."""
        if self.image is not None:
            return self.image
        if self._rgb is None:
            assert self.decoded is not None, "a frame needs decoded pixels or an image"
            rgb = _rotate(decoded_rgb(self.decoded), self.rotation)
            if self.patch is not None:
                x0, y0, x1, y1 = self.patch.box
                rgb[y0:y1, x0:x1] = self.patch.rgb
            self._rgb = rgb
        return self._rgb

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) as displayed."""
        if self.image is not None:
            return self.image.shape[1], self.image.shape[0]
        assert self.decoded is not None
        w, h = self.decoded.width, self.decoded.height
        return (h, w) if round(self.rotation / 90) % 2 else (w, h)

    def inside(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """`box` (x0, y0, x1, y1) clamped to the frame: what `rgb_region` reads."""
        width, height = self.size
        return max(box[0], 0), max(box[1], 0), min(box[2], width), min(box[3], height)

    def even_box(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """`box` widened to even coordinates (4:2:0 chroma pairs) within the frame: what `with_patch` stores."""
        x0, y0, x1, y1 = box
        width, height = self.size
        return x0 - x0 % 2, y0 - y0 % 2, min(x1 + x1 % 2, width), min(y1 + y1 % 2, height)

    def i420_planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Views (no copy) of the Y, U, V planes that `rgb()` converts, or None when they are not the pixels.

        Available on untouched, unrotated 4:2:0 frames. Models that resample
        the face anyway can sample each plane and convert only their small
        input, instead of converting the face region first.
        """
        return None if self.patch is not None else self._decoded_planes()

    def _decoded_planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The decoded picture's planes (whatever patch lies over them), when they can be read directly."""
        decoded = self.decoded
        if (
            self.image is not None
            or self.rotation
            or decoded is None
            or decoded.format.name not in I420
            or decoded.width % 2
            or decoded.height % 2
        ):
            return None
        luma, blue, red = (plane_view(p) for p in decoded.planes)
        return luma, blue, red

    def rgb_region(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """RGB pixels of `box` (x0, y0, x1, y1, clamped to the frame), converting only that region.

        Tracking and engines work near the face; converting only there saves
        most of a full-frame conversion. Equal to `rgb()[y0:y1, x0:x1]`.
        Treat the result as read-only: it may be a view of a cached frame.
        """
        width, height = self.size
        x0, y0, x1, y1 = self.inside(box)
        planes = self._decoded_planes()
        if self._rgb is not None or planes is None or width % 4 or height % 4:
            return self.rgb()[y0:y1, x0:x1]
        patch = self.patch
        if patch is not None:  # an edited frame: the decoded pixels around, the patch's over them
            px0, py0, px1, py1 = patch.box
            if px0 <= x0 and py0 <= y0 and x1 <= px1 and y1 <= py1:
                return patch.rgb[y0 - py0 : y1 - py0, x0 - px0 : x1 - px0]
            region = self._convert(planes, (x0, y0, x1, y1)).copy()
            ix0, iy0, ix1, iy1 = max(x0, px0), max(y0, py0), min(x1, px1), min(y1, py1)
            if ix1 > ix0 and iy1 > iy0:
                region[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = patch.rgb[iy0 - py0 : iy1 - py0, ix0 - px0 : ix1 - px0]
            return region
        return self._convert(planes, (x0, y0, x1, y1))

    def _convert(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray], box: tuple[int, int, int, int]) -> np.ndarray:
        """RGB of a box of the decoded planes (clamped box), converting only that region."""
        width, height = self.size
        x0, y0, x1, y1 = box
        # 4:2:0 in packed form needs even columns and rows in multiples of 4.
        ex0, ex1 = x0 - x0 % 2, min(x1 + x1 % 2, width)
        ey0 = y0 - y0 % 4
        ey1 = min(ey0 + -(-(y1 - ey0) // 4) * 4, height)
        if ex1 <= ex0 or ey1 <= ey0:
            return np.zeros((max(y1 - y0, 0), max(x1 - x0, 0), 3), np.uint8)
        luma, blue, red = planes
        w, h = ex1 - ex0, ey1 - ey0
        packed = np.empty((h * 3 // 2, w), np.uint8)
        packed[:h] = luma[ey0:ey1, ex0:ex1]
        chroma = packed[h:].reshape(-1)
        quarter = (h // 2) * (w // 2)
        chroma[:quarter] = blue[ey0 // 2 : ey1 // 2, ex0 // 2 : ex1 // 2].reshape(-1)
        chroma[quarter:] = red[ey0 // 2 : ey1 // 2, ex0 // 2 : ex1 // 2].reshape(-1)
        rgb = cv2.cvtColor(packed, cv2.COLOR_YUV2RGB_I420)
        return rgb[y0 - ey0 : y1 - ey0, x0 - ex0 : x1 - ex0]

    def with_image(self, rgb: np.ndarray) -> Frame:
        return replace(self, image=rgb, patch=None, _rgb=None)

    def with_patch(self, box: tuple[int, int, int, int], region: np.ndarray) -> Frame:
        """This frame with `region` (RGB, the size of `box`) replacing the pixels of `box`.

        Only the region is kept: the sink writes it into the decoded picture,
        so pixels outside it reach the encoder bit-identical and no full-frame
        copy is made. The box is widened to even coordinates (4:2:0 chroma)
        with the frame's own pixels.
        """
        x0, y0, x1, y1 = box
        ex0, ey0, ex1, ey1 = self.even_box(box)
        if self.patch is not None:  # a second edit: one patch covering both
            px0, py0, px1, py1 = self.patch.box
            ex0, ey0, ex1, ey1 = min(ex0, px0), min(ey0, py0), max(ex1, px1), max(ey1, py1)
        if (ex0, ey0, ex1, ey1) != (x0, y0, x1, y1):
            wide = self.rgb_region((ex0, ey0, ex1, ey1)).copy()
            wide[y0 - ey0 : y1 - ey0, x0 - ex0 : x1 - ex0] = region
            region = wide
        if self.image is not None:
            image = self.image.copy()
            image[ey0:ey1, ex0:ex1] = region
            return replace(self, image=image, _rgb=None)
        return replace(self, patch=Patch((ex0, ey0, ex1, ey1), np.ascontiguousarray(region)), _rgb=None)

    def with_face(self, face: Face | None) -> Frame:
        return replace(self, face=face)


@dataclass(frozen=True, slots=True)
class AudioSpan:
    """Mono float32 samples of the new audio starting at output time `start`."""

    start: Fraction
    rate: int
    samples: np.ndarray

    @property
    def end(self) -> Fraction:
        return self.start + Fraction(len(self.samples), self.rate)

    def at(self, t: Fraction | float, duration: float) -> np.ndarray:
        """`duration` seconds of samples starting at time `t`, zero-padded outside the span."""
        first = int(round((Fraction(t) - self.start) * self.rate))
        count = int(round(duration * self.rate))
        out = np.zeros(count, np.float32)
        lo, hi = max(first, 0), min(first + count, len(self.samples))
        if hi > lo:
            out[lo - first : hi - first] = self.samples[lo:hi]
        return out


W = TypeVar("W", bound="Window")


@dataclass(frozen=True, slots=True)
class Window:
    """Consecutive frames of which `frames[own_start:own_stop]` belong to this window.

    The frames before and after the owned range are context shared with the
    neighbouring windows; only owned frames are emitted, so every frame leaves
    the pipeline exactly once and in order.
    """

    index: int
    frames: tuple[Frame, ...]
    own_start: int
    own_stop: int
    audio: AudioSpan | None = None
    last: bool = False

    @property
    def owned(self) -> tuple[Frame, ...]:
        return self.frames[self.own_start : self.own_stop]

    def as_kind(self, kind: type[W], **payload: object) -> W:
        """This window as `kind` (a Window subclass carrying a stage's payload, or Window to drop one)."""
        return kind(**{f.name: getattr(self, f.name) for f in fields(Window)}, **payload)

    def with_frames(self, frames: tuple[Frame, ...] | list[Frame]) -> Window:
        frames = tuple(frames)
        assert len(frames) == len(self.frames), "a stage must keep the window's frame count"
        return replace(self, frames=frames)
