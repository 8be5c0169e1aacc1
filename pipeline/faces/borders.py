"""Target and crop at segment borders: a cheap pre-pass so independently processed segments meet without a jump.

Each segment starts its face stage fresh (what it writes depends only on the
input), so its tracker would choose the target again by the first-frame rule
(the largest face, or the one nearest `--target`, where the speaker may no
longer be) and its crop smoother would start where its warm-up left it, not
where the previous segment's crop ended: with a still face a few pixels
apart, a jump at the border. The pre-pass locks the target as the job does,
then on the few frames from each border on follows it by its look (the
identity gate's state handed from border to border) and records where it is:
the border's pin and the gate's state. A border's own frame is often a
keyframe, so the pre-pass seeks there and decodes a few frames per border. Every worker computes the same pins
from the same file. A segment's tracker takes up the gate's state of its
border (so the lock continues), and around each border the crop centre
glides to the pin over the last `glide` frames of one segment and starts
exactly on it in the next, so the step across a border is no larger than the
steps of the glide.

Borders past the end of the file's forward pass (the ping-pong of `--fit
audio`) get no pin; frames there keep the smoother's crop.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, Protocol, Sequence

import numpy as np

from lipstream.stream.frames import Frame
from lipstream.stream.source import VideoSource
from lipstream.stream.timeline import output_frames, start_frame

from .identity import IdentityGate, Signature

log = logging.getLogger(__name__)

PIN_FRAMES = 3  # frames from a border on whose target centres make its pin
GLIDE = 4  # frames on each side of a border over which the crop moves to and from the pin

Anchor = tuple[float, float, float]  # (x, y, weight): pull the crop centre this far towards (x, y)


@dataclass(frozen=True)
class BorderPins:
    """The crop centre at each border k (output time k * seconds), from the pre-pass."""

    seconds: Fraction
    frame_seconds: Fraction  # one frame's duration, to count the glide in frames
    pins: dict[int, tuple[float, float]] = field(default_factory=dict)
    seeds: dict[int, TargetSeed] = field(default_factory=dict)  # the target's lock at border k
    glide: int = GLIDE

    def anchor(self, time: Fraction) -> Anchor | None:
        """Where a frame at `time` pulls its crop centre: fully onto a pin at a segment's first frame, fading over `glide` frames."""
        k = math.floor(time / self.seconds)
        since = float((time - k * self.seconds) / self.frame_seconds)  # 0 on a segment's first frame
        until = float(((k + 1) * self.seconds - time) / self.frame_seconds)  # 1 on its last
        reach = self.glide + 1
        options = []
        if k in self.pins and since < reach:
            options.append((1 - since / reach, self.pins[k]))
        if k + 1 in self.pins and until < reach:
            options.append((1 - until / reach, self.pins[k + 1]))
        if not options:
            return None
        weight, (x, y) = max(options)
        return (x, y, weight)


@dataclass(frozen=True)
class TargetSeed:
    """The identity gate's state where the pre-pass last saw the target: what a segment's tracker takes up."""

    look: Signature
    box: np.ndarray
    time: Fraction  # of the frame it was seen on

    def missing(self, time: Fraction, frame_seconds: Fraction) -> int:
        """Frames between that sighting and `time`."""
        return round(abs(time - self.time) / frame_seconds)


class Tracker(Protocol):
    gate: IdentityGate

    def observe(self, frame: Frame, ahead: Sequence[Frame] = ()) -> Any: ...


def border_pins(
    video: Path, seconds: Fraction, tracker: Callable[[], Tracker], settings: Hashable, end: Fraction | None = None
) -> BorderPins:
    """The pins of every border of `video` cut into `seconds` segments (cached per process: every segment asks).

    `tracker()` makes a fresh face tracker; `settings`: what decides its answers (part of the cache key).
    `end`: the output's last time, when it stops before the video does: borders from it on start no
    segment, and not decoding up to them saves a pass over the rest of the file.
    """
    key = (str(video.resolve()), video.stat().st_mtime_ns, seconds, settings, end)
    with _LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    pins = _measure(video, seconds, tracker, end)
    with _LOCK:
        _CACHE.clear()  # one file at a time is what a job or a worker's task needs
        _CACHE[key] = pins
    return pins


_CACHE: dict[Any, BorderPins] = {}
_LOCK = threading.Lock()


def _measure(video: Path, seconds: Fraction, tracker: Callable[[], Tracker], end: Fraction | None = None) -> BorderPins:
    source = VideoSource(video)
    try:
        frame_seconds = 1 / source.average_rate
        pins: dict[int, tuple[float, float]] = {}
        seeds: dict[int, TargetSeed] = {}
        seed = _first_lock(video, seconds, tracker)
        for border, frames in _at_borders(source, seconds, frame_seconds, end):
            follower = tracker()
            if seed is not None:
                follower.gate.resume(seed.look, seed.box, seed.missing(frames[0].time, frame_seconds))
            found = _pin(frames, follower)
            if found is not None:
                pins[border], seed = found
                seeds[border] = seed
    finally:
        source.close()
    log.info("target pre-pass: %d border pin(s) in %s", len(pins), video)
    return BorderPins(seconds, frame_seconds, pins, seeds)


def _first_lock(video: Path, seconds: Fraction, tracker: Callable[[], Tracker]) -> TargetSeed | None:
    """The target as the job locks it (first frame rule, `--target`), looked for until the first border."""
    follower = tracker()
    with VideoSource(video) as source:
        for frame in output_frames(source, "video", Fraction(0)):
            if frame.time >= seconds:
                return None
            if follower.observe(frame) is not None:
                assert follower.gate.look is not None and follower.gate.box is not None
                return TargetSeed(follower.gate.look, follower.gate.box, frame.time)
    return None


def _at_borders(
    source: VideoSource, seconds: Fraction, frame_seconds: Fraction, end: Fraction | None = None
) -> Iterator[tuple[int, list[Frame]]]:
    """(border, the frames shown in the `PIN_FRAMES` frame times from it on) for each border in the
    file's forward pass that comes before `end` (None: the file's end).

    With a trustworthy frame index each border's frames are reached by a seek: a border's own frame
    is often a keyframe (a 10 s GOP, or 2 s ones, against 10 s segments), so nothing before it is
    decoded. Otherwise the file is decoded once from the start.
    """
    reach = PIN_FRAMES * frame_seconds
    border = 1
    if source.frame_index() is None:
        frames: list[Frame] = []
        for frame in output_frames(source, "video", Fraction(0)):
            while frame.time >= border * seconds + reach:
                if frames:
                    yield border, frames
                    frames = []
                border += 1
            if end is not None and border * seconds >= end:
                return
            if frame.time >= border * seconds:
                frames.append(frame)
        if frames:
            yield border, frames
        return
    frames_in = output_frames(source, "video", Fraction(0))  # from the start, unless a seek saves decoding
    position = -1  # the last frame taken from `frames_in`
    while True:
        time = border * seconds
        if end is not None and time >= end:
            return
        first = start_frame(source, time)
        if first == 0:
            return  # the border is past the forward pass
        if source.keyframe_before(first) > position + 1:  # a seek skips frames the pins do not need
            frames_in, position = output_frames(source, "video", Fraction(0), None, first), first - 1
        frames = []
        ended = True
        for frame in frames_in:
            position = frame.index
            if frame.time >= time + reach:
                ended = False
                break
            if frame.time >= time:
                frames.append(frame)
        if frames:
            yield border, frames
        if ended:
            return  # the file ends within this border's frames
        border += 1


def _pin(frames: list[Frame], tracker: Tracker) -> tuple[tuple[float, float], TargetSeed] | None:
    """The mean centre of the target's landmark box on these frames, and the gate's state after the last sighting."""
    centres = []
    seed = None
    for k, frame in enumerate(frames):
        found = tracker.observe(frame, frames[k + 1 :])
        if found is not None:
            x0, y0, x1, y1 = (float(v) for v in found.box)
            centres.append(((x0 + x1) / 2, (y0 + y1) / 2))
            assert tracker.gate.look is not None and tracker.gate.box is not None
            seed = TargetSeed(tracker.gate.look, tracker.gate.box, frame.time)
    if not centres or seed is None:
        return None
    x, y = np.mean(np.array(centres), axis=0)
    return (float(x), float(y)), seed
