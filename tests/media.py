"""Media built on the fly for tests, and decoders that check outputs independently."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import av
import numpy as np

DATA = Path(__file__).parent / "data"
SAMPLE_VIDEO = DATA / "sample.mp4"
SAMPLE_AUDIO = DATA / "sample.wav"

BITS = 12
CELL = 16


def index_image(index: int, width: int = 320, height: int = 180) -> np.ndarray:
    """A frame whose pixels encode `index` as big black/white cells (survives lossy coding)."""
    img = np.full((height, width, 3), 90, np.uint8)
    img[:, :, 2] = np.linspace(40, 200, width, dtype=np.uint8)[None, :]
    y = height // 2 - CELL // 2
    for bit in range(BITS):
        x = 8 + bit * (CELL + 4)
        img[y : y + CELL, x : x + CELL] = 255 if (index >> bit) & 1 else 0
    return img


def read_index(rgb: np.ndarray) -> int:
    height = rgb.shape[0]
    y = height // 2 - CELL // 2
    value = 0
    for bit in range(BITS):
        x = 8 + bit * (CELL + 4)
        if rgb[y + 4 : y + CELL - 4, x + 4 : x + CELL - 4].mean() > 128:
            value |= 1 << bit
    return value


def write_indexed_clip(
    path: Path,
    count: int,
    *,
    size: tuple[int, int] = (320, 180),
    pts: Sequence[int] | None = None,
    time_base: Fraction = Fraction(1, 1000),
    rate: int = 25,
    fmt: str | None = None,
    options: dict[str, str] | None = None,
    rotation: int = 0,
    with_audio: bool = False,
) -> Path:
    """Encode `count` index frames; `pts` (in `time_base`) makes variable frame rate."""
    width, height = size
    stamps = list(pts) if pts is not None else [round(i / rate / time_base) for i in range(count)]
    with av.open(str(path), "w", format=fmt, options=options or {}) as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.options = {"preset": "ultrafast", "crf": "12", "g": "12"}
        if rotation:
            stream.set_display_rotation(rotation)
        audio = out.add_stream("aac", rate=16000, layout="mono") if with_audio else None
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(index_image(i, width, height), format="rgb24")
            frame.pts = stamps[i]
            frame.time_base = time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if audio is not None:
            tone = tone_samples(float(stamps[-1] * time_base) + 0.04)
            for start in range(0, len(tone), 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="flt", layout="mono")
                chunk.sample_rate = 16000
                chunk.pts = start
                for packet in audio.encode(chunk):
                    out.mux(packet)
            for packet in audio.encode(None):
                out.mux(packet)
    return path


def tone_samples(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def video_frames(path: Path | bytes) -> list[tuple[Fraction, np.ndarray]]:
    """(time from the stream start, rgb) of every decoded frame (small clips only)."""
    import io

    source = io.BytesIO(path) if isinstance(path, bytes) else str(path)
    with av.open(source) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        return [((f.pts - start) * stream.time_base, f.to_ndarray(format="rgb24")) for f in container.decode(stream)]


def video_times(path: Path | bytes) -> list[Fraction]:
    import io

    source = io.BytesIO(path) if isinstance(path, bytes) else str(path)
    with av.open(source) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        return [(f.pts - start) * stream.time_base for f in container.decode(stream)]


def audio_samples(path: Path | bytes) -> tuple[int, int]:
    """(decoded samples, rate) of the first audio stream, after the container's edit lists."""
    import io

    source = io.BytesIO(path) if isinstance(path, bytes) else str(path)
    with av.open(source) as container:
        stream = container.streams.audio[0]
        return sum(f.samples for f in container.decode(stream)), stream.rate


def run_cli(args: Iterable[str], *, stdin: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m lipstream ARGS` as a user would, capturing bytes."""
    return subprocess.run(
        [sys.executable, "-m", "lipstream", *map(str, args)],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
