"""Configuration as frozen dataclasses, grouped by concern and passed down explicitly.

Only the CLI parses arguments; the library, the server and the tests build
these objects directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Fit = Literal["audio", "video", "shortest"]
Container = Literal["mp4", "mkv"]


@dataclass(frozen=True)
class WindowConfig:
    """How frames are grouped for the stages.

    Memory per window is about `size` decoded frames (1080x1920 yuv420p: 3 MB
    each); each queue between stages holds `queue_size` windows.
    """

    size: int = 32
    overlap: int = 8
    queue_size: int = 2
    audio_margin: float = 0.5  # seconds of audio attached before and after a window

    def __post_init__(self) -> None:
        if self.size < 1 or not 0 <= self.overlap < self.size:
            raise ValueError(f"window size must be >= 1 and overlap in [0, size), got {self.size}/{self.overlap}")
        if self.queue_size < 1:
            raise ValueError("queue_size must be >= 1")


@dataclass(frozen=True)
class EncodeConfig:
    """Video and audio encoding of the output."""

    codec: str = "libx264"
    preset: str = "veryfast"
    crf: int = 18
    audio_bitrate: int = 128_000
    container: Container = "mp4"  # for pipes and fragment callbacks; files follow their extension
    fragment_seconds: float = 1.0  # longest fragment of a streamed MP4


@dataclass(frozen=True)
class SyncConfig:
    """One lip-sync job."""

    engine: str = "passthrough"
    fit: Fit = "audio"
    device: str = "cpu"
    window: WindowConfig = field(default_factory=WindowConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
