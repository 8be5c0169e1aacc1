"""Join finished segment files into the output: video remuxed (never re-encoded), the audio encoded once.

Each segment file holds one independently encoded run of video packets with
the output's own timestamps, so joining is copying packets in order into
one container; the new audio is encoded as AAC alongside them (one priming,
one edit list, as `Sink` does), and the last frame is made to end exactly
at the output's end. Packets are read and written one at a time: memory
does not grow with the video's length.
"""

from __future__ import annotations

import logging
import os
import threading
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av

from lipstream.config import EncodeConfig
from lipstream.errors import Cancelled

from .audio import AudioInput
from .partials import output_error, partial_path
from .sink import AudioTrack, VideoPackets, file_format, sync_path

log = logging.getLogger(__name__)


def join_segments(
    segments: Sequence[Path],
    output: Path,
    audio: AudioInput | None,
    config: EncodeConfig,
    *,
    video_end: Fraction,
    audio_end: Fraction,
    stop: threading.Event | None = None,
) -> None:
    """Write `output` from `segments` (in order) and the audio; publish it by renaming a partial file.

    Setting `stop` (from another thread) abandons the join before the rename: OUT stays as it was.
    """
    if not segments:
        raise ValueError("nothing to join")
    fmt = file_format(output)
    tmp = partial_path(output)
    options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
    try:
        container = av.open(str(tmp), "w", format=fmt, options=options)
        try:
            _mux_all(container, segments, audio, config, video_end, audio_end, stop or threading.Event())
        except BaseException:
            container.close()
            raise
        container.close()
        os.replace(tmp, output)
    except OSError as exc:
        raise output_error(exc, output) from None
    finally:
        tmp.unlink(missing_ok=True)
    sync_path(output.parent)


def _mux_all(
    container: av.container.OutputContainer,
    segments: Sequence[Path],
    audio: AudioInput | None,
    config: EncodeConfig,
    video_end: Fraction,
    audio_end: Fraction,
    stop: threading.Event,
) -> None:
    video: av.VideoStream | None = None
    packets: VideoPackets | None = None
    track: AudioTrack | None = None
    last_dts: int | None = None
    for path in segments:
        with av.open(str(path)) as segment:
            source = segment.streams.video[0]
            if video is None:
                video = container.add_stream_from_template(source)
                time_base = Fraction(source.time_base)
                if container.format.name in ("mp4", "mov") or "mp4" in container.format.name.split(","):
                    container.options["movie_timescale"] = str(time_base.denominator)
                packets = VideoPackets(container, time_base)
                if audio is not None:  # after the video, so video is stream 0
                    track = AudioTrack(container, audio, config)
            assert packets is not None
            for packet in segment.demux(source):
                if stop.is_set():
                    raise Cancelled("stopped while joining the segments")
                if packet.size == 0:
                    continue
                packet.stream = video
                if Fraction(source.time_base) != packets.time_base:
                    packet.pts, packet.dts = (None if t is None else packets.ticks(t, Fraction(source.time_base)) for t in (packet.pts, packet.dts))
                    packet.time_base = packets.time_base
                if packet.dts is not None:  # decoding order stays strictly increasing across the joins
                    if last_dts is not None and packet.dts <= last_dts:
                        packet.dts = last_dts + 1
                    last_dts = packet.dts
                packets.add([packet])
                if track is not None and packet.pts is not None:
                    track.write_until(packet.pts * packets.time_base)
    assert packets is not None
    if stop.is_set():
        raise Cancelled("stopped while joining the segments")
    packets.finish(video_end)
    if track is not None:
        track.write_until(audio_end, final=True)
