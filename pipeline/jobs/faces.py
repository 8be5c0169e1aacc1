"""Inspect tracking: the face stage over a video, reported per frame, optionally drawn."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Callable

from lipstream.config import EncodeConfig, FaceConfig, WindowConfig
from lipstream.stream.frames import Frame
from lipstream.stream.sink import Sink, check_output
from lipstream.stream.source import VideoSource
from lipstream.stream.timeline import output_frames
from lipstream.stream.windows import frame_windows

from ..faces.overlay import Overlay
from ..faces.models import face_models
from ..faces.stage import FaceStage
from ..progress import ProgressCallback
from ..runner import Runner


async def run_faces(
    video: str | Path | BinaryIO,
    on_frame: Callable[[Frame], None],
    *,
    face: FaceConfig = FaceConfig(),
    window: WindowConfig = WindowConfig(),
    overlay: Path | None = None,
    device: str = "cpu",
    weights: tuple[Path, ...] = (),
    on_progress: ProgressCallback | None = None,
) -> int:
    """Track the target over `video`; call `on_frame` for each frame in order. Returns frames seen."""
    if overlay is not None:
        check_output(overlay, video)
    models = await asyncio.to_thread(face_models, face, device, weights)
    stages = [FaceStage(face, window, models)] + ([Overlay()] if overlay is not None else [])
    with VideoSource(video) as source:
        sink = Sink(overlay, None, EncodeConfig(), rate=source.average_rate) if overlay is not None else None

        def write(w):  # type: ignore[no-untyped-def]
            for frame in w.owned:
                on_frame(frame)
            return sink.write(w.owned) if sink is not None else b""

        try:
            total = round(source.duration * source.average_rate) if source.duration else None
            count = await Runner(stages, in_flight=window.in_flight).run(
                frame_windows(output_frames(source, "video", Fraction(0)), None, window), write, total_frames=total, on_progress=on_progress
            )
            if sink is not None:
                end = sink.end_time + source.frame_duration
                sink.close(end, end)
        except BaseException:
            if sink is not None:
                sink.abort()
            raise
    return count
