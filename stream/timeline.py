"""Map decoded source frames onto the output timeline for a length policy.

`--fit audio` makes the video last as long as the new audio: a longer video
is cut, a shorter one ping-pongs (seekable input) or holds its last frame (a
pipe). `--fit video` keeps the video's length and cuts or pads the audio;
`--fit shortest` cuts whichever is longer.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

from lipstream.config import Fit

from .frames import Frame
from .source import DecodedFrame, VideoSource


class Retimer:
    """Give each shown source frame its output pts (pure).

    The output advances by the source's own frame-to-frame delta, so variable
    frame rate is kept, played backwards as well as forwards; a repeated frame
    (no delta) advances by the nominal frame duration.
    """

    def __init__(self, nominal_step: int) -> None:
        self.nominal_step = nominal_step
        self._last_src: int | None = None
        self.next_pts = 0
        self.count = 0

    def place(self, source_pts: int) -> tuple[int, int]:
        """(output index, output pts) for the next frame to show."""
        if self._last_src is not None:
            delta = abs(source_pts - self._last_src)
            self.next_pts += delta if delta else self.nominal_step
        self._last_src = source_pts
        self.count += 1
        return self.count - 1, self.next_pts


def video_limit(fit: Fit, audio_duration: Fraction) -> Fraction | None:
    """Output time at which video stops, or None to play the source to its end."""
    return None if fit == "video" else audio_duration


def audio_end(fit: Fit, audio_duration: Fraction, video_end: Fraction) -> Fraction:
    """How long the muxed audio lasts once the video's output end is known."""
    if fit == "audio":
        return audio_duration
    if fit == "video":
        return video_end
    return min(audio_duration, video_end)


@dataclass
class Ending:
    """How the output video ended: `cut` when the length limit stopped it (a frame was due at or past it)."""

    cut: bool = False


def video_end(limit: Fraction | None, ending: Ending, last_time: Fraction, frame_duration: Fraction) -> Fraction:
    """When the output video ends: at the limit if the limit cut it (the last frame is held until then,
    across a gap or a 29.97 fps frame that would overrun it), else one frame after its last frame."""
    if limit is not None and ending.cut:
        return limit
    end = last_time + frame_duration
    return end if limit is None else min(end, limit)


def start_frame(source: VideoSource, time: Fraction, lead: int = 0) -> int:
    """The frame to start decoding at so that `lead` frames come before the first one shown at or after
    output `time`; 0 (the beginning) when the file has no trustworthy index or `time` is past its
    forward pass (ping-pong, held frames)."""
    index = source.frame_index()
    if index is None or time <= 0:
        return 0
    retimer = Retimer(source.nominal_step)
    for k, pts in enumerate(index):
        _, out = retimer.place(pts)
        if out * source.time_base >= time:
            return max(0, k - lead)
    return 0


def output_frames(
    source: VideoSource, fit: Fit, audio_duration: Fraction, ending: Ending | None = None, start: int = 0
) -> Iterator[Frame]:
    """The output video as frames with output timing, stopping at the policy's limit (noted in `ending`).

    `start` (see `start_frame`): begin at that frame, seeking; the frames, their numbers and times
    are the ones a run from the beginning gives from there on.
    """
    limit = video_limit(fit, audio_duration)
    stop_pts = None if limit is None else limit / source.time_base
    retimer = Retimer(source.nominal_step)
    ending = ending if ending is not None else Ending()
    if start:
        for pts in (source.frame_index() or [])[:start]:
            retimer.place(pts)

    def emit(decoded: DecodedFrame) -> Frame | None:
        src_index, src_pts, av_frame = decoded
        index, pts = retimer.place(src_pts)
        if stop_pts is not None and pts >= stop_pts:
            ending.cut = True
            return None
        return Frame(index, pts, source.time_base, src_index, av_frame, source.rotation)

    last: DecodedFrame | None = None
    for decoded in source.forward(start):
        frame = emit(decoded)
        if frame is None:
            return
        last = decoded
        yield frame
    if fit != "audio" or last is None:
        return
    count = source.frames_seen
    if source.seekable and count > 1:
        while True:
            passes = (source.backward(0, count - 2), source.replay(1))
            for run in passes:
                for decoded in run:
                    frame = emit(decoded)
                    if frame is None:
                        return
                    yield frame
    while True:
        frame = emit(last)
        if frame is None:
            return
        yield frame

