"""A face made ready for live mode: the loop it idles on, tracked once and cached.

Live sessions cannot afford detection or landmarks per frame, and the same
face serves every session. So the first seconds of the face video (or one
still image) are decoded once, the target is tracked with the face stage,
a square crop that holds the face in every frame is cut and scaled to the
output size, and the frames are kept as packed I420 (half the bytes of RGB)
with their landmarks mapped into the crop. The result is cached on disk,
keyed by the file's content and the options, so a restart is instant.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from lipstream.config import FaceConfig, WindowConfig
from lipstream.errors import InputError
from lipstream.models._registry import cache_dir
from lipstream.stream.frames import Face, Frame, rgb_to_i420
from lipstream.stream.source import VideoSource
from lipstream.stream.timeline import output_frames
from lipstream.stream.windows import frame_windows

from ..faces.models import face_models
from ..faces.stage import FaceStage

log = logging.getLogger(__name__)

__all__ = ["FaceOptions", "LiveFace", "prepare_face"]

_FORMAT = 1  # bump when the cached layout or the preparation changes


@dataclass(frozen=True)
class FaceOptions:
    """How a face is prepared; every field is part of the cache key."""

    size: int = 512  # output side (square, even)
    fps: int = 25
    loop_seconds: float = 8.0  # the idle loop: the first this many seconds of the video
    margin: float = 1.0  # of the face box's side, added around it (the crop shows the head, not just the face)
    face: FaceConfig = FaceConfig()

    def __post_init__(self) -> None:
        if self.size < 64 or self.size % 2:
            raise InputError(f"live size {self.size} must be an even number of pixels, at least 64")
        if not 1 <= self.fps <= 60:
            raise InputError(f"live frame rate {self.fps} must be 1..60")
        if self.loop_seconds <= 0:
            raise InputError("the idle loop must last more than 0 seconds")


@dataclass(frozen=True, eq=False)
class LiveFace:
    """The prepared face: `frames` (N, size*3/2, size) packed I420 and the target in each (crop pixels)."""

    frames: np.ndarray
    faces: tuple[Face | None, ...]
    options: FaceOptions
    source: str

    def __post_init__(self) -> None:
        self.frames.flags.writeable = False  # frames are handed out as they are: nobody may draw on the loop

    @property
    def size(self) -> int:
        return self.options.size

    def loop_index(self, tick: int) -> int:
        """Which prepared frame shows at output frame `tick`: the loop ping-pongs, so it never jumps."""
        n = len(self.frames)
        if n == 1:
            return 0
        period = 2 * n - 2
        k = tick % period
        return k if k < n else period - k

    def frame(self, tick: int, time_base: Fraction) -> Frame:
        """Output frame `tick` of the idle loop, with its target, ready for an engine's stages."""
        import av

        k = self.loop_index(tick)
        decoded = av.VideoFrame.from_ndarray(self.frames[k], format="yuv420p")
        return Frame(tick, tick, time_base, k, decoded, face=self.faces[k])

    @property
    def coverage(self) -> float:
        """Share of loop frames with a usable target."""
        return sum(f is not None and f.landmarks is not None for f in self.faces) / max(len(self.faces), 1)


def prepare_face(path: str | Path, options: FaceOptions = FaceOptions(), *, device: str = "cpu",
                 weights: tuple[Path, ...] = (), cache: Path | None = None) -> LiveFace:
    """The prepared face of `path` (a video or an image), from the cache when it was prepared before."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"face file not found: {path} (check the path)")
    folder = cache if cache is not None else cache_dir() / "live"
    key = _key(path, options)
    stored = folder / f"{key}.npz"
    if stored.is_file():
        try:
            face = _load(stored, options, str(path))
            log.info("live face from the cache: %s", stored)
            return face
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring a damaged cached face %s: %s", stored, exc)
    face = _prepare(path, options, device, weights)
    try:
        _store(face, stored)
    except OSError as exc:
        log.warning("could not cache the prepared face in %s: %s", folder, exc)
    return face


def _key(path: Path, options: FaceOptions) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update(repr((_FORMAT, options)).encode())
    return digest.hexdigest()[:32]


def _prepare(path: Path, options: FaceOptions, device: str, weights: tuple[Path, ...]) -> LiveFace:
    """Decode the loop at the output rate, track the target, cut one square crop for all of it."""
    window = WindowConfig()
    stage = FaceStage(options.face, window, face_models(options.face, device, weights))
    step = Fraction(1, options.fps)
    limit = Fraction(options.loop_seconds).limit_denominator(1000)
    frames: list[Frame] = []
    with VideoSource(path) as source:
        picked = _resampled(output_frames(source, "video", Fraction(0)), step, limit)
        for w in frame_windows(picked, None, window):
            frames.extend(stage(w).owned)
    if not frames:
        raise InputError(f"{path} has no picture to make a live face from (give a video or an image of the speaker)")
    boxes = [f.face.box for f in frames if f.face is not None and f.face.landmarks is not None]
    if not boxes:
        raise InputError(f"no face found in the first {options.loop_seconds:g} s of {path} (give a video or image where the speaker's face is visible)")
    width, height = frames[0].size
    square = _square(np.array(boxes), options.margin, width, height)
    scale = options.size / (square[2] - square[0])
    pictures = np.empty((len(frames), options.size * 3 // 2, options.size), np.uint8)
    faces: list[Face | None] = []
    for k, frame in enumerate(frames):
        crop = frame.rgb_region(square)
        pictures[k] = rgb_to_i420(cv2.resize(crop, (options.size, options.size), interpolation=cv2.INTER_AREA))
        faces.append(_moved(frame.face, square, scale, options.size))
    log.info("live face: %d frames of %s, crop %s, target in %d", len(frames), path, square, sum(f is not None for f in faces))
    return LiveFace(pictures, tuple(faces), options, str(path))


def _resampled(frames, step: Fraction, limit: Fraction):  # type: ignore[no-untyped-def]
    """The source frame showing at each output tick (0, step, 2 step, ...) before `limit`, renumbered."""
    tick = 0
    previous: Frame | None = None
    for frame in frames:
        while previous is not None and tick * step < limit and tick * step < frame.time:
            yield replace(previous, index=tick, pts=tick, time_base=step)
            tick += 1
        if tick * step >= limit:
            return
        previous = frame
    while previous is not None and tick == 0:  # a still image: one frame
        yield replace(previous, index=0, pts=0, time_base=step)
        tick += 1


def _square(boxes: np.ndarray, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """One square (even pixels, inside the frame) that holds every face box with `margin` around it."""
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    side = max(x1 - x0, y1 - y0) * (1.0 + margin)
    side = int(min(side, width, height)) // 2 * 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(np.clip(round(cx - side / 2), 0, width - side)) // 2 * 2
    top = int(np.clip(round(cy - side / 2), 0, height - side)) // 2 * 2
    return left, top, left + side, top + side


def _moved(face: Face | None, square: tuple[int, int, int, int], scale: float, size: int) -> Face | None:
    """`face` in the scaled crop's pixels."""
    if face is None or face.landmarks is None:
        return None
    ox, oy = square[0], square[1]
    landmarks = face.landmarks.copy()
    landmarks[:, 0] = (landmarks[:, 0] - ox) * scale
    landmarks[:, 1] = (landmarks[:, 1] - oy) * scale
    landmarks[:, 2] *= scale
    box = tuple(float(v) for v in ((face.box[0] - ox) * scale, (face.box[1] - oy) * scale, (face.box[2] - ox) * scale, (face.box[3] - oy) * scale))
    crop = tuple(int(np.clip(round(v), 0, size)) for v in ((face.crop[0] - ox) * scale, (face.crop[1] - oy) * scale, (face.crop[2] - ox) * scale, (face.crop[3] - oy) * scale))
    return Face(box, landmarks.astype(np.float32), face.presence, crop, face.weight, face.small)  # type: ignore[arg-type]


def _store(face: LiveFace, path: Path) -> None:
    """Write atomically: a half-written cache entry is never read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    present = np.array([f is not None for f in face.faces])
    blank = np.zeros((468, 3), np.float32)
    fd, temp = tempfile.mkstemp(prefix=".live-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez(
                out,
                frames=face.frames,
                present=present,
                landmarks=np.stack([blank if f is None else f.landmarks for f in face.faces]),
                boxes=np.array([(0, 0, 0, 0) if f is None else f.box for f in face.faces], np.float64),
                crops=np.array([(0, 0, 0, 0) if f is None else f.crop for f in face.faces], np.int64),
                numbers=np.array([(0, 0, 0) if f is None else (f.presence, f.weight, f.small) for f in face.faces], np.float64),
            )
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _load(path: Path, options: FaceOptions, source: str) -> LiveFace:
    with np.load(path, allow_pickle=False) as data:
        frames = data["frames"]
        if frames.shape[1:] != (options.size * 3 // 2, options.size):
            raise ValueError(f"frames of shape {frames.shape}")
        faces = tuple(
            Face(tuple(map(float, b)), lm.astype(np.float32), float(n[0]), tuple(map(int, c)), float(n[1]), bool(n[2])) if p else None  # type: ignore[arg-type]
            for p, lm, b, c, n in zip(data["present"], data["landmarks"], data["boxes"], data["crops"], data["numbers"])
        )
    return LiveFace(frames, faces, options, source)
