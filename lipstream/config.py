"""Configuration as frozen dataclasses, grouped by concern and passed down explicitly.

Only the CLI parses arguments; the library, the server and the tests build
these objects directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

from lipstream.errors import InputError

Fit = Literal["audio", "video", "shortest"]
FITS: tuple[Fit, ...] = ("audio", "video", "shortest")
Container = Literal["mp4", "mkv"]
VideoCodec = Literal["auto", "h264", "hevc"]
VIDEO_CODECS: tuple[VideoCodec, ...] = ("auto", "h264", "hevc")
Quality = Literal["fast", "balanced", "best"]
Enhance = Literal["auto", "none", "gpen", "gfpgan"]
Precision = Literal["auto", "float32"]
PRECISIONS: tuple[Precision, ...] = ("auto", "float32")
ENHANCES: tuple[Enhance, ...] = ("auto", "none", "gpen", "gfpgan")
Detector = Literal["blazeface", "blazeface-short", "retinaface", "retinaface-mnet", "s3fd"]
DETECTORS: tuple[Detector, ...] = ("blazeface", "blazeface-short", "retinaface", "retinaface-mnet", "s3fd")
QUALITIES: tuple[Quality, ...] = ("fast", "balanced", "best")


@dataclass(frozen=True)
class WindowConfig:
    """How frames are grouped for the stages.

    The pipeline admits `in_flight` windows at once (None: 2, plus one per
    model stage with cores of its own), so about `in_flight` x (size - overlap) + overlap decoded
    frames are alive (1080x1920 yuv420p: 3 MB each), whatever the video's
    length (see lipstream.pipeline.runner). More windows let plain stages
    run beside each other: worth it only with cores to spare.
    """

    size: int = 24
    overlap: int = 8
    in_flight: int | None = None
    audio_margin: float = 0.5  # seconds of audio attached before and after a window

    def __post_init__(self) -> None:
        if self.size < 1 or not 0 <= self.overlap < self.size:
            raise InputError(
                f"window overlap ({self.overlap}) must be from 0 to one less than the window size ({self.size}); "
                "lower --overlap or raise --window"
            )
        if self.in_flight is not None and self.in_flight < 1:
            raise InputError("in_flight must be >= 1 window")


@dataclass(frozen=True)
class EncodeConfig:
    """Video and audio encoding of the output (see lipstream.stream.encoding for how "auto" chooses).

    By default the output looks like the input: HEVC stays HEVC, anything else
    becomes H.264, and the bitrate is held near the input's.
    """

    codec: VideoCodec = "auto"  # auto: HEVC input -> hevc, else h264
    preset: str | None = None  # None: veryfast for h264, ultrafast for hevc (about the same encode cost)
    crf: int | None = None  # quality (lower is better, 0 lossless); None: the codec's default
    bitrate: int | None = None  # bits/s; alone: average bitrate, with crf: a cap; neither: capped near the input's
    tune: str | None = None  # e.g. "zerolatency" for live preview: x264 then holds 2 frames instead of ~17
    # Frame types fixed in advance rather than chosen from the content, so an edit
    # to the face cannot change how the rest of the picture is coded (and
    # streamed fragments start at predictable places). Closed GOPs, so every
    # segment of a resumable run starts with a keyframe that needs nothing before it.
    x264_params: str = "scenecut=0:b-adapt=0"
    x265_params: str = "scenecut=0:b-adapt=0:open-gop=0:log-level=error"
    audio_bitrate: int = 128_000
    container: Container = "mp4"  # for pipes and fragment callbacks; files follow their extension
    fragment_seconds: float = 1.0  # longest fragment of a streamed MP4

    def __post_init__(self) -> None:
        if self.crf is not None and not 0 <= self.crf <= 51:
            raise InputError(f"crf must be from 0 (lossless) to 51, got {self.crf}")
        if self.bitrate is not None and self.bitrate < 10_000:
            raise InputError(f"bitrate must be at least 10k bits/s, got {self.bitrate}")


@dataclass(frozen=True)
class CropConfig:
    """The working crop around the target (see lipstream.pipeline.faces.crop)."""

    margin: float = 0.4  # of the face size, added on each side
    deadband: float = 0.08  # of the crop side: moves smaller than this are ignored
    follow: float = 0.6  # share of the way to the proposal covered per window
    pad: float = 0.1  # of the face size: every frame's face stays this far inside


@dataclass(frozen=True)
class Target:
    """Who speaks: the face nearest (x, y) in frame pixels on the first frame with faces at or after `time` seconds.

    Frames before `time` pass through untouched, so a speaker who enters the
    shot later can be chosen even when someone else is visible before.
    """

    x: float
    y: float
    time: float = 0.0

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.x, self.y, self.time)) or self.time < 0:
            raise InputError(f"target must be finite X,Y frame pixels and a time >= 0 s, got {self.x},{self.y}@{self.time}")


@dataclass(frozen=True)
class FaceConfig:
    """Finding and following the target speaker."""

    # blazeface (embedded, full range: faces down to ~1/15 of the frame), blazeface-short (close-ups),
    # or an official network from --weights: retinaface, retinaface-mnet, s3fd
    detector: Detector = "blazeface"
    landmarks: Literal["facemesh", "fan"] = "facemesh"  # fan: FAN's 68 points place the FaceMesh mesh
    detect_size: int = 640  # longest side the official detectors see (frames are shrunk to it)
    detect_every: int = 0  # 0: detect only when tracking is lost; k: also re-anchor every k-th frame
    presence: float = 0.5  # FaceMesh face-presence below this means tracking is lost
    target: Target | None = None  # pick the face nearest this frame point (from its time on), else the largest
    fade: int = 5  # frames over which stages fade in/out at track boundaries
    min_face: float = 48.0  # faces narrower than this (px) are flagged small: landmarks are unreliable
    threads: int = 1  # TFLite interpreter threads
    crop: CropConfig = field(default_factory=CropConfig)


@dataclass(frozen=True)
class SegmentConfig:
    """How a file output is cut into independent segments (see lipstream.pipeline.jobs.segments).

    Each segment starts with a keyframe and its stages start fresh `warmup`
    frames before its first frame, so its pixels depend only on the input:
    a resumed run writes what an uninterrupted one would. Warm-up costs
    `warmup` extra frames of stage work per segment (about 6 % at 10 s, 25 fps).
    """

    seconds: float = 10.0  # output seconds per segment: what a kill can lose
    warmup: int = 16  # frames processed (not written) before each segment's first frame

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and self.seconds >= 0.1) or self.warmup < 0:
            raise InputError(f"segments must last at least 0.1 s with warm-up >= 0 frames, got {self.seconds} s, {self.warmup}")

    @property
    def span(self) -> Fraction:
        """`seconds` as the exact fraction the segment plan and the crop pins both use."""
        return Fraction(self.seconds).limit_denominator(1000)


@dataclass(frozen=True)
class SyncConfig:
    """One lip-sync job."""

    engine: str = "auto"  # the best engine whose checkpoints are present, else warp
    fit: Fit = "audio"
    device: str = "cpu"
    weights: tuple[Path, ...] = ()  # folders searched first for checkpoints (then $LIPSTREAM_WEIGHTS, the cache)
    quality: Quality = "balanced"  # fast: reduced size/rate generation where an engine has it
    # restore the re-drawn mouth with GPEN or GFPGAN (wav2lip, retalking); auto: the engine's choice
    # for the quality (retalking best: GFPGAN, as VideoReTalking does), else none
    enhance: Enhance = "auto"
    # auto: float16 on CUDA and bfloat16 on CPUs that compute it natively, for the networks measured
    # to keep their pictures within a level or two (models/_registry.py); float32: always full precision
    precision: Precision = "auto"
    window: WindowConfig = field(default_factory=WindowConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    resume: bool = False  # file outputs: continue a killed run's finished segments; keep them if this one stops
    strict: bool = False  # no target face anywhere is an error (InputError) instead of a warning
