"""Short clips cut from the bundled sample, made on the fly for the CLI tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np

from lipstream.stream.audio import AudioInput
from media import SAMPLE_AUDIO, SAMPLE_VIDEO, write_wav


def sample_clip(path: Path, frames: int, *, every: int = 1, fps: int = 25, size: tuple[int, int] | None = None, gop: int | None = None) -> Path:
    """`frames` frames of the sample (every `every`-th one, ping-ponged when it runs out) re-encoded at `fps`.

    `size`: (width, height) to scale to; `gop`: frames between keyframes.
    """
    with av.open(str(SAMPLE_VIDEO)) as source:
        pictures = [f.to_ndarray(format="rgb24", **({"width": size[0], "height": size[1]} if size else {})) for f in source.decode(video=0)]
    kept = pictures[every - 1 :: every]
    kept = kept + kept[-2:0:-1]
    return encode_rgb(path, (kept[i % len(kept)] for i in range(frames)), fps, {"crf": "12", **({"g": str(gop)} if gop else {})})


def encode_rgb(path: Path, pictures: Iterable[np.ndarray], fps: int, options: dict[str, str] | None = None) -> Path:
    """RGB pictures as an H.264 file at `fps` (frame i at i / fps), ultrafast; `options` add to the encoder's."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.options = {"preset": "ultrafast", **(options or {})}
        for i, rgb in enumerate(pictures):
            if i == 0:
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = "yuv420p"
            picture = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            picture.pts, picture.time_base = i, Fraction(1, fps)
            for packet in stream.encode(picture):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def sample_speech(path: Path, seconds: float) -> Path:
    """The first `seconds` of the sample's speech as a 16 kHz WAV."""
    speech = AudioInput(SAMPLE_AUDIO)
    try:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in speech.chunks(16000)])
    finally:
        speech.close()
    return write_wav(path, samples[: int(round(seconds * 16000))])
