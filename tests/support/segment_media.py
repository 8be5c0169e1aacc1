"""A 12 s talking-head clip at 4 fps (small frames) and 12 s of tone, for tests that cut the output into 4 s segments."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np

from clips import sample_clip
from media import tone_samples, write_wav

SECONDS, FPS, SEGMENT = 12, 4, 4


def twelve_seconds(folder: Path) -> tuple[Path, Path]:
    video = sample_clip(folder / "clip.mp4", SECONDS * FPS, every=2, fps=FPS, size=(270, 480), gop=2 * FPS)  # workers seek to keyframes
    return video, write_wav(folder / "speech.wav", tone_samples(SECONDS))


def decoded(path: Path) -> tuple[list[float], list[str], np.ndarray]:
    """(frame times, a digest per frame's pixels, the audio samples)."""
    with av.open(str(path)) as container:
        frames = [(float(f.time), hashlib.sha256(f.to_ndarray(format="rgb24").tobytes()).hexdigest()) for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    return [t for t, _ in frames], [d for _, d in frames], samples


def pictures(path: Path) -> np.ndarray:
    """Every frame's RGB pixels, (frames, height, width, 3): for the short test clips only."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
