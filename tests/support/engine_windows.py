"""Windows of the bundled sample as a job makes them, after the face stage (shared by engine tests)."""

from __future__ import annotations

from itertools import islice

from lipstream.config import WindowConfig
from lipstream.pipeline.faces.stage import FaceStage
from lipstream.stream.windows import frame_windows
from lipstream.stream.audio import AudioFeed, AudioInput
from lipstream.stream.frames import Frame, Window
from lipstream.stream.source import VideoSource
from lipstream.stream.timeline import output_frames
from media import SAMPLE_AUDIO, SAMPLE_VIDEO


def tracked_windows(count: int, window: WindowConfig) -> list[Window]:
    """The first `count` frames of the sample, windowed with the sample's audio, faces set."""
    audio = AudioInput(SAMPLE_AUDIO)
    try:
        with VideoSource(SAMPLE_VIDEO) as source:
            frames = list(islice(output_frames(source, "audio", audio.duration), count))
            for frame in frames:
                frame.rgb()  # decode while the container is open
            planned = list(frame_windows(iter(frames), AudioFeed(audio), window))
    finally:
        audio.close()
    stage = FaceStage(window=window)
    return [stage(w) for w in planned]


def owned(result: list[Window]) -> list[Frame]:
    return [f for w in result for f in w.owned]
