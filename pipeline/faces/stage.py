"""The face stage: find the target speaker once, follow it, give every frame its `Face`.

Landmarks are computed once per frame (context frames shared by two windows
are not analysed twice) and every later stage reuses them. Tracking runs
FaceMesh from the previous frame's landmarks and falls back to the detector
only when the face-presence score drops or the identity gate rejects the
face; the target never changes to another person.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from lipstream.config import FaceConfig, SyncConfig, WindowConfig
from lipstream.models.blazeface import BlazeFace
from lipstream.models.face_types import Detection, FaceDetector, Landmarks
from lipstream.models.facemesh import FaceMesh, FaceRoi, warp_crop, warp_crop_i420
from lipstream.stream.frames import Face, Frame, Window

from .borders import BorderPins, TargetSeed, border_pins
from .crop import CropSmoother
from .identity import IdentityGate, box_of, choose_initial, signature
from .models import FaceModels, face_models, fit_mesh

DETECT_BATCH = 8  # frames an official detector looks at in one forward while the target is missing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observation:
    points: np.ndarray  # (468, 3) frame pixels
    presence: float
    box: np.ndarray  # (4,) x0 y0 x1 y1 of the landmarks


class FaceTracker:
    """Per-frame target observations, in frame order (holds the models and the identity)."""

    def __init__(self, config: FaceConfig, models: FaceModels | None = None) -> None:
        self.config = config
        models = models or FaceModels()
        self.detector: FaceDetector = models.detector or BlazeFace(
            "short" if config.detector == "blazeface-short" else "full", num_threads=config.threads
        )
        # official detectors cost the same per frame on a batch: look ahead when the target is missing
        self.batch = 1 if models.detector is None else DETECT_BATCH
        self.mesh = FaceMesh(num_threads=config.threads)
        self.gate = IdentityGate()
        self._last: Landmarks | None = None
        self._count = 0
        self._ahead: dict[int, list[Detection]] = {}  # full-frame detections made early for later frames

    def observe(self, frame: Frame, ahead: Sequence[Frame] = ()) -> Observation | None:
        """The target in `frame`, or None; call once per frame, in order (`ahead`: the frames that follow)."""
        periodic = self.config.detect_every > 0 and self._count % self.config.detect_every == 0
        self._count += 1
        if self._last is not None and not periodic:
            found = self._track(frame, self.mesh.roi(self._last))
            if found is not None:
                self._ahead.clear()
                return found
        target = self.config.target
        if not self.gate.started and target is not None and frame.time < target.time:
            return None  # the chosen speaker is looked for from its time on
        if self.gate.started:
            # the target was seen: look where it was heading first, then over the whole picture
            found = self._follow(frame, self._near(frame))
            if found is None:
                found = self._follow(frame, self._full_frame(frame, ahead))
        else:
            first = choose_initial(self._full_frame(frame, ahead), None if target is None else (target.x, target.y))
            found = None if first is None else self._track(frame, self.mesh.roi(first))
        if found is None:
            self.gate.miss()
            self._last = None
        return found

    def _follow(self, frame: Frame, detections: list[Detection]) -> Observation | None:
        centre = self.gate.predicted_centre()
        for detection in sorted(detections, key=lambda d: np.hypot(d.center[0] - centre[0], d.center[1] - centre[1])):
            found = self._track(frame, self.mesh.roi(detection))
            if found is not None:
                return found
        return None

    def _near(self, frame: Frame) -> list[Detection]:
        """Faces around where the target is expected, found in that region of the frame only."""
        assert self.gate.box is not None
        size = max(float(self.gate.box[2] - self.gate.box[0]), float(self.gate.box[3] - self.gate.box[1]), 8.0)
        cx, cy = self.gate.predicted_centre()
        width, height = frame.size
        reach = 1.5 * size
        x0, y0 = max(int(cx - reach), 0), max(int(cy - reach), 0)
        x1, y1 = min(int(cx + reach) + 1, width), min(int(cy + reach) + 1, height)
        if x1 - x0 < 16 or y1 - y0 < 16:
            return []
        (found,) = self.detector.detect([frame.rgb_region((x0, y0, x1, y1))])
        return [d.mapped(offset=(x0, y0)) for d in found]

    def _full_frame(self, frame: Frame, ahead: Sequence[Frame]) -> list[Detection]:
        """Faces in the whole picture, detected together with the next frames when the detector batches."""
        if frame.index in self._ahead:
            return self._ahead.pop(frame.index)
        batch = [frame, *list(ahead)[: self.batch - 1]]
        found = self.detector.detect([f.rgb() for f in batch])
        self._ahead = {f.index: dets for f, dets in zip(batch[1:], found[1:])}
        return found[0]

    def _track(self, frame: Frame, roi: FaceRoi) -> Observation | None:
        """Landmarks inside `roi`, accepted if they are the target; only the crop's pixels are converted."""
        crop = self._crop(frame, roi)
        if crop is None:
            return None
        marks = self.mesh.infer(crop, roi)
        if marks.presence < self.config.presence:
            return None
        look = signature(crop, roi.to_crop(marks.points))
        points = np.asarray(marks.points)
        box_of_points = box_of(points)
        if not self.gate.fits(box_of_points, look):
            return None
        self.gate.accept(box_of_points, look)
        self._last = marks
        return Observation(points, marks.presence, box_of_points)

    @staticmethod
    def _crop(frame: Frame, roi: FaceRoi) -> np.ndarray | None:
        """FaceMesh's input for `roi`: from the decoded planes when possible, else from the RGB around the ROI."""
        if not roi.size > 1.0:
            return None
        planes = frame.i420_planes()
        if planes is not None:
            return warp_crop_i420(planes, roi)
        reach = 0.75 * roi.size  # half-diagonal of the rotated square, rounded up
        x0, y0 = int(np.floor(roi.cx - reach)), int(np.floor(roi.cy - reach))
        box = (x0, y0, int(np.ceil(roi.cx + reach)) + 1, int(np.ceil(roi.cy + reach)) + 1)
        ox, oy = max(x0, 0), max(y0, 0)
        region = frame.rgb_region(box)
        if region.shape[0] < 2 or region.shape[1] < 2:
            return None
        return warp_crop(region, FaceRoi(roi.cx - ox, roi.cy - oy, roi.size, roi.angle))


class FaceStage:
    """Sets `frame.face` on every frame of a window (None where the target is absent)."""

    name = "face"

    def __init__(
        self,
        config: FaceConfig = FaceConfig(),
        window: WindowConfig = WindowConfig(),
        models: FaceModels | None = None,
        segment_seconds: Fraction | None = None,
    ) -> None:
        """`models`: official detector / FAN from `faces.models.face_models`; the embedded ones by default.
        `segment_seconds`: the job's segment length, whose borders `prepare` pins the crop at."""
        self.config = config
        self.segment_seconds = segment_seconds
        self._pins: BorderPins | None = None
        self._seed: TargetSeed | None = None  # the pre-pass's lock at this segment's border
        self.models = models or FaceModels()
        # torch models run on their device's executor; the embedded TFLite ones on the stage's own thread
        self.device: str | None = self.models.device
        lookahead = window.overlap - window.overlap // 2
        self.fade = max(0, min(config.fade, lookahead))
        self._tracker: FaceTracker | None = None
        self._smoother: CropSmoother | None = None
        self._observed: dict[int, Observation | None] = {}
        self._final: dict[int, Face | None] = {}
        self._run = 1 << 30  # face frames in a row before the next owned frame

    def prepare(self, video: Path, end: Fraction | None = None) -> None:
        """Pin the crop at the segment borders before `end` (a pre-pass over the file, once per process), so segments meet smoothly."""
        if self.segment_seconds is not None:
            tracker = lambda: FaceTracker(self.config, self.models)  # noqa: E731
            self._pins = border_pins(video, self.segment_seconds, tracker, (self.config, id(self.models.detector)), end)

    def enter(self, segment: int) -> None:
        """This stage (fresh) is about to process segment `segment`: take up the target's lock at its border."""
        self._seed = None if self._pins is None else self._pins.seeds.get(segment)

    def __call__(self, window: Window) -> Window:
        if self._tracker is None:
            self._tracker = FaceTracker(self.config, self.models)
            if self._seed is not None and self._pins is not None:
                missing = self._seed.missing(window.frames[0].time, self._pins.frame_seconds)
                self._tracker.gate.resume(self._seed.look, self._seed.box, missing)
            self._smoother = CropSmoother(window.frames[0].size, self.config.crop)
        assert self._smoother is not None
        new = [f for f in window.frames if f.index not in self._observed]
        for k, frame in enumerate(new):
            self._observed[frame.index] = self._tracker.observe(frame, new[k + 1 :])
        if self.models.refiner is not None:
            self._refine([f for f in new if self._observed[f.index] is not None])
        owned = window.owned
        after = window.frames[window.own_stop :]
        obs = [self._observed[f.index] for f in owned]
        anchors = [self._pins.anchor(f.time) for f in owned] if self._pins is not None else []
        crops = self._smoother.update([o.box if o else None for o in obs], [self._box(f) for f in after], anchors)
        present_after = [self._observed[f.index] is not None for f in after]
        for k, (frame, o, crop) in enumerate(zip(owned, obs, crops)):
            if o is None or crop is None:
                self._final[frame.index] = None
                self._run = 0
                continue
            self._run += 1
            ahead = _faces_ahead([x is not None for x in obs[k + 1 :]] + present_after)
            weight = 1.0 if self.fade == 0 else min(1.0, self._run / (self.fade + 1), (ahead + 1) / (self.fade + 1))
            self._final[frame.index] = self._face(o, crop, weight)
        provisional = crops[-1] if crops and crops[-1] is not None else None
        frames = [self._with_face(f, provisional) for f in window.frames]
        oldest = window.frames[0].index  # later windows never reach further back
        for cache in (self._observed, self._final):
            for index in [i for i in cache if i < oldest]:
                del cache[index]
        return window.with_frames(frames)

    def _refine(self, frames: list[Frame]) -> None:
        """FAN on the window's new faces in one batch; each mesh moved to agree with it."""
        assert self.models.refiner is not None
        if not frames:
            return
        observed = [self._observed[f.index] for f in frames]
        marks = self.models.refiner.landmarks_batch(
            [(f.rgb(), Landmarks(o.points, o.presence)) for f, o in zip(frames, observed)]  # type: ignore[union-attr]
        )
        for frame, o, fan in zip(frames, observed, marks):
            assert o is not None
            fitted = fit_mesh(o.points, fan.xy)
            if fitted is not None:
                self._observed[frame.index] = replace(o, points=fitted, box=box_of(fitted))

    def _box(self, frame: Frame) -> np.ndarray | None:
        o = self._observed.get(frame.index)
        return None if o is None else o.box

    def _face(self, o: Observation, crop: tuple[int, int, int, int], weight: float) -> Face:
        x0, y0, x1, y1 = (float(v) for v in o.box)
        return Face((x0, y0, x1, y1), o.points, o.presence, crop, weight, small=(x1 - x0) < self.config.min_face)

    def _with_face(self, frame: Frame, provisional: tuple[int, int, int, int] | None) -> Frame:
        if frame.index in self._final:
            return frame.with_face(self._final[frame.index])
        o = self._observed[frame.index]
        if o is None or provisional is None:
            return frame.with_face(None)
        return frame.with_face(self._face(o, provisional, 1.0))


def face_stage(config: SyncConfig) -> FaceStage:
    """The face stage of a lip-sync job, with the detector and landmark models its options name."""
    return FaceStage(config.face, config.window, face_models(config.face, config.device, config.weights), config.segment.span)


def _faces_ahead(present: list[bool]) -> int:
    """Face frames in a row after the current one; unbounded when no gap is in sight."""
    for n, p in enumerate(present):
        if not p:
            return n
    return 1 << 30
