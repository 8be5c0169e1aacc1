"""The exemplar stage: the re-articulated mouth redrawn from the speaker's own footage.

Per window:

1. learn: every frame not seen before adds its mouth to the bank, from its
   decoded pixels, so a pipe builds its bank while streaming and a file's
   pre-pass (`prepare`) is topped up with every frame;
2. move: the re-articulation (`WarpLips`) moves lips and jaw to the shape
   the audio asks for, opening the mouth no further than this speaker does
   (a little past the widest mouths in the bank), and paints a cavity;
3. choose: per owned frame the exemplar closest to the re-articulated lip
   shape, steady over time (`select.choose`, carried across windows);
4. draw: the chosen exemplar's lips, teeth and tongue over the re-articulated
   mouth (`render.draw_exemplar`); where no exemplar is near the asked-for
   shape, the re-articulated mouth stays (the `warp` engine's result).

`report()` says how many edited frames showed an exemplar.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from lipstream.config import SyncConfig
from lipstream.stream.frames import Frame, Window

from ..shared.mouth_warp import LI, LO, UI, UO
from ..shared.rearticulate import Rendered, WarpLips
from .bank import BankConfig, Exemplar, MouthBank, learn_frame
from .render import draw_exemplar
from .select import SelectConfig, choose

log = logging.getLogger(__name__)

__all__ = ["ExemplarConfig", "ExemplarMouths", "target_descriptor"]


@dataclass(frozen=True)
class ExemplarConfig:
    bank: BankConfig = field(default_factory=BankConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    prepass_frames: int = 240  # keyframes of a long file looked at before the job starts (spread over its length)
    prepass_seconds: float = 60.0  # files shorter than this are not looked over (the look-ahead suffices)
    learn_every: int = 2  # while streaming, every this many frames adds to the bank (0: never; live mode learns beforehand)
    reach: float = 2.0  # the mouth opens up to this times the bank's 90th-percentile opening ...
    least_reach: float = 0.1  # ... but at least this far (eye distances), at most as far as the warp engine
    min_bank: int = 8  # exemplars needed before the bank sets the range


def target_descriptor(rendered: Rendered) -> np.ndarray | None:
    """The re-articulated lip shape as a bank descriptor (eye distances), at the mouth's middle."""
    if rendered.target is None:
        return None
    shape = rendered.shape
    d = shape.frame.scale
    mid = int(np.argmin(np.abs(shape.columns - 0.5 * (shape.inner[0] + shape.inner[1]))))
    t = rendered.target[mid]
    width = (shape.outer[1] - shape.outer[0]) / d
    return np.array([max(t[LI] - t[UI], 0.0) / d, width, (t[UI] - t[UO]) / d, (t[LO] - t[LI]) / d])


def _original(frame: Frame) -> Frame | None:
    """The frame as decoded, without the edits of earlier stages (None when only an edited picture exists)."""
    if frame.decoded is not None and frame.image is None:
        return replace(frame, patch=None, _rgb=None)
    return None if frame.patch is not None else frame


class ExemplarMouths:
    """Stage: see the module docstring."""

    name = "exemplar"
    device: str | None = None

    def __init__(self, job: SyncConfig = SyncConfig(), config: ExemplarConfig = ExemplarConfig()) -> None:
        self.face = job.face
        self.config = config
        self.bank = MouthBank(config.bank)
        self.warp = WarpLips(job)
        self._widest = self.warp.engine.warp.max_opening
        self._learned = -1  # highest frame index learned from
        self._previous: tuple[int, Exemplar] | None = None  # last frame shown with an exemplar, and which
        self.edited = 0
        self.drawn = 0

    def prepare(self, video: Path, end: Fraction | None = None) -> None:
        """Fill the bank from keyframes spread over a long file before the job starts (a pipe has no pre-pass)."""
        from .prepass import learn_file

        added = learn_file(video, self.face, self.bank, self.config.prepass_frames, self.config.prepass_seconds)
        log.info("exemplar pre-pass: %d exemplars from %s (%d in the bank)", added, video, len(self.bank))

    def __call__(self, window: Window) -> Window:
        self._learn(window)
        self._fit_range()
        poses = self.warp.poses(window)
        if not poses:
            return window
        frames = list(window.frames)
        owned = range(window.own_start, window.own_stop)
        drafts = [self.warp.draft(frames[k], pose) for k, pose in zip(owned, poses)]
        records = [None if d is None else d.rendered for d in drafts]
        targets = [None if r is None else target_descriptor(r) for r in records]
        first = frames[window.own_start].index
        previous = self._previous[1] if self._previous is not None and self._previous[0] == first - 1 else None
        choices = choose(targets, self.bank.exemplars(), previous, self.config.select, self.bank.typical)
        for k, draft, target, exemplar in zip(owned, drafts, targets, choices):
            if draft is None:
                continue
            open_mouth = target is not None and target[0] >= self.config.select.least_opening
            drawn = open_mouth and exemplar is not None
            # a mouth an exemplar will cover needs no painted cavity
            frames[k], record = self.warp.finish(draft, paint=not drawn)
            if not open_mouth:
                continue  # a closed mouth: the re-articulated lips are the speaker's own
            self.edited += 1
            if drawn:
                assert exemplar is not None
                face = frames[k].face
                frames[k] = draw_exemplar(frames[k], record, exemplar, 1.0 if face is None else float(face.weight))
                self.drawn += 1
                self._previous = (frames[k].index, exemplar)
        return window.with_frames(frames)

    def _fit_range(self) -> None:
        """Open the mouth as far as this speaker does (the bank's openings), never further than the warp engine."""
        openings = [e.opening for e in self.bank.exemplars()]
        if len(openings) < self.config.min_bank:
            return
        reach = self.config.reach * float(np.percentile(openings, 90))
        widest = float(np.clip(reach, self.config.least_reach, self._widest))
        engine = self.warp.engine
        self.warp.engine = replace(engine, warp=replace(engine.warp, max_opening=widest))

    def _learn(self, window: Window) -> None:
        if not self.config.learn_every:
            return
        for frame in window.frames:
            if frame.index <= self._learned:
                continue
            self._learned = frame.index
            if frame.index % self.config.learn_every == 0:
                self.learn(frame)

    def learn(self, frame: Frame) -> bool:
        """Offer the mouth of `frame` (as decoded, with its target) to the bank; True if kept."""
        face = frame.face
        if face is None or face.landmarks is None or face.small:
            return False
        original = _original(frame)
        return original is not None and learn_frame(self.bank, original, face.landmarks, frame.index)

    def report(self) -> dict[str, float | int]:
        """For the job's summary: the share of open-mouth frames drawn from exemplars (the rest show
        the warp engine's painted mouth), and the bank's size."""
        coverage = self.drawn / self.edited if self.edited else 0.0
        return {"exemplar_coverage": round(coverage, 4), "exemplars": len(self.bank)}
