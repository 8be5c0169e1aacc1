"""The embedded lip engine: re-articulate the mouth from the new audio without learned weights.

Per owned frame: the articulator turns the audio around the frame's time
into a mouth pose; the frame's FaceMesh landmarks (set by the face stage)
give the lower-face geometry; the mouth is relaxed to a closed rest shape
and re-opened to the pose by a backward warp; the new opening is painted;
the warped region is blended back through a Laplacian pyramid inside the
face crop. Frames without a face, or with weight 0, pass untouched.

Everything works on the lower-face box only, and only that box is
converted to RGB (one remap, one small pyramid, vectorised numpy on a
half-resolution grid): about 2 ms per 1080x1920 frame on one core. There
is no JIT: numba's import and cache load cost ~0.45 s at every start and,
holding the GIL, starved the face stage meanwhile (measured: the job's
first window reached the encoder 0.7 s later), more than the vectorised
kernels cost on a 20 s clip.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from lipstream.config import SyncConfig
from lipstream.stream.frames import AudioSpan, Frame, Window

from .articulation import Articulation, ArticulationConfig, Articulator
from .blend import blend_region
from .face_region import editable
from .mouth_paint import observe_inside, paint_cavity, sample_colours, teeth_colour
from .mouth_warp import (
    MouthShape,
    Warp,
    WarpConfig,
    build_warp,
    frame_scale_ok,
    region_box,
    rest_shape,
    target_knots,
)

log = logging.getLogger(__name__)

_COLOUR_FOLLOW = 0.15  # per-frame update of the lip/skin colours: steady, yet follows lighting
_CUT_FADE = 0.06  # eye-distance units: the mask fades over this where the crop cuts the region


@dataclass(frozen=True)
class WarpEngineConfig:
    """Tuning of the embedded engine; the defaults are what the acceptance numbers were measured with."""

    articulation: ArticulationConfig = field(default_factory=ArticulationConfig)
    warp: WarpConfig = field(default_factory=WarpConfig)


@dataclass(frozen=True)
class Rendered:
    """What the engine did to one frame: the warp, the source mouth and where its knots went."""

    warp: Warp  # in the edited box's pixels: `origin` is the box's top-left corner in the frame
    shape: MouthShape  # in the box's pixels too
    pose: Articulation
    origin: tuple[int, int] = (0, 0)
    target: np.ndarray | None = None  # (COLUMNS, KNOTS) target v of each knot, box pixels

    @property
    def box(self) -> tuple[int, int, int, int]:
        """The edited box in frame pixels."""
        x0, y0, x1, y1 = self.warp.box
        ox, oy = self.origin
        return x0 + ox, y0 + oy, x1 + ox, y1 + oy


def fade_cut_edges(mask: np.ndarray, cut: list[bool], width: float) -> np.ndarray:
    """Fade the mask to zero along the box sides (left, top, right, bottom) where the crop cut the region.

    The warp is identity only at the region's own edges; where a tight
    crop cuts it short, this keeps the change from ending in a step.
    """
    h, w = mask.shape
    ramp_x = np.ones(w, np.float32)
    ramp_y = np.ones(h, np.float32)
    if cut[0]:
        ramp_x = np.minimum(ramp_x, np.arange(w, dtype=np.float32) / width)
    if cut[2]:
        ramp_x = np.minimum(ramp_x, np.arange(w - 1, -1, -1, dtype=np.float32) / width)
    if cut[1]:
        ramp_y = np.minimum(ramp_y, np.arange(h, dtype=np.float32) / width)
    if cut[3]:
        ramp_y = np.minimum(ramp_y, np.arange(h - 1, -1, -1, dtype=np.float32) / width)
    return mask * np.clip(ramp_y, 0, 1)[:, None] * np.clip(ramp_x, 0, 1)[None, :]


@dataclass(frozen=True, eq=False)
class Draft:
    """A frame's mouth warped to its pose, before the cavity is painted and the region blended in."""

    frame: Frame
    box: tuple[int, int, int, int]  # the edited box in frame pixels
    rgb: np.ndarray  # the box's pixels as they were
    region: np.ndarray  # the box warped to the pose (painted in place by `finish`)
    lip: np.ndarray
    teeth: np.ndarray
    weight: float
    cut: list[bool]  # box sides (left, top, right, bottom) where the crop cut the region
    rendered: Rendered


class WarpLips:
    """Stage: mouth re-articulation by geometry and signal processing (`--engine warp`).

    Another stage may use it in parts (`poses`, `draft`, `finish`) to draw
    over the new mouth (the exemplar engine does).
    """

    name = "warp_lips"
    device: str | None = None

    def __init__(self, config: SyncConfig | None = None, engine: WarpEngineConfig = WarpEngineConfig()) -> None:
        """`config` is the job's (the engine needs no device or weights from it)."""
        self.engine = engine
        self.articulator = Articulator(engine.articulation)
        self._lip: np.ndarray | None = None
        self._teeth: np.ndarray | None = None
        self._teeth_guess = True  # no real teeth seen yet

    def __call__(self, window: Window) -> Window:
        owned = window.owned
        if not owned:
            return window
        frames = list(window.frames)
        for i, pose in enumerate(self.poses(window)):
            frames[window.own_start + i], _ = self.render(frames[window.own_start + i], pose)
        return window.with_frames(frames)

    def poses(self, window: Window) -> list[Articulation]:
        """The mouth pose of each owned frame, from the audio around it (call once per window, in order)."""
        owned = window.owned
        span = window.audio if window.audio is not None else AudioSpan(owned[0].time, 16000, np.zeros(0, np.float32))
        return self.articulator(span, [f.time for f in owned]) if owned else []

    def render(self, frame: Frame, pose: Articulation) -> tuple[Frame, Rendered | None]:
        """The frame with its mouth re-articulated to `pose` (unchanged if the face is unusable)."""
        draft = self.draft(frame, pose)
        return (frame, None) if draft is None else self.finish(draft)

    def draft(self, frame: Frame, pose: Articulation) -> Draft | None:
        """The warp of the frame's mouth to `pose`, not yet painted or blended (None if the face is unusable).

        A later stage that knows what it will draw over the mouth (the
        exemplar engine) finishes the draft without painting a cavity it
        would cover anyway.
        """
        face = frame.face
        if not editable(face):
            return None
        assert face is not None and face.landmarks is not None
        cfg = self.engine.warp
        shape = rest_shape(face.landmarks, cfg)
        if not frame_scale_ok(shape):
            return None
        # The edit stays inside the face crop; only its box is converted to RGB.
        full = region_box(shape)
        crop = face.crop
        box = (max(full[0], crop[0]), max(full[1], crop[1]), min(full[2], crop[2]), min(full[3], crop[3]))
        if box[2] - box[0] < 4 or box[3] - box[1] < 4:
            return None
        ox, oy = box[0], box[1]
        rgb = frame.rgb_region(box)
        landmarks = face.landmarks - np.array([ox, oy, 0.0])
        local = replace(shape, frame=replace(shape.frame, origin=shape.frame.origin - [ox, oy]))
        h, w = rgb.shape[:2]
        weight = float(np.clip(face.weight, 0.0, 1.0))
        target = target_knots(local, pose, weight, cfg)
        warp = build_warp(local, target, pose, (0, 0, w, h), cfg, weight)
        region = cv2.remap(rgb, warp.map_x, warp.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        lip, teeth = self._colours(rgb, landmarks)
        frame_w, frame_h = frame.size
        cut = [box[i] != full[i] and box[i] != edge for i, edge in enumerate((0, 0, frame_w, frame_h))]
        return Draft(frame, box, rgb, region, lip, teeth, weight, cut, Rendered(warp, local, pose, (ox, oy), target))

    def finish(self, draft: Draft, paint: bool = True) -> tuple[Frame, Rendered]:
        """Paint the opened mouth (unless `paint` is False) and blend the warped region into the frame."""
        rendered = draft.rendered
        warp, shape, region = rendered.warp, rendered.shape, draft.region
        if paint:
            half = 0.5 * (shape.inner[1] - shape.inner[0])
            paint_cavity(region, warp, draft.lip, draft.teeth, shape.frame.scale, half)
        mask = warp.mask * draft.weight if draft.weight < 1.0 else warp.mask
        if any(draft.cut):
            mask = fade_cut_edges(mask, draft.cut, max(2.0, _CUT_FADE * shape.frame.scale))
        patch = blend_region(draft.rgb, region, mask)
        return draft.frame.with_patch(draft.box, patch), rendered

    def _colours(self, rgb: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lip and teeth colours, followed slowly so the paint does not flicker."""
        lip, skin = sample_colours(rgb, landmarks)
        seen = observe_inside(rgb, landmarks)
        if self._lip is None:
            self._lip = lip
        else:
            self._lip = self._lip + _COLOUR_FOLLOW * (lip - self._lip)
        if seen is not None:
            self._teeth = seen if self._teeth_guess else self._teeth + _COLOUR_FOLLOW * (seen - self._teeth)
            self._teeth_guess = False
        elif self._teeth_guess:
            guess = teeth_colour(skin)
            self._teeth = guess if self._teeth is None else self._teeth + _COLOUR_FOLLOW * (guess - self._teeth)
        return self._lip, self._teeth
