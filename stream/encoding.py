"""What the output video is encoded as, chosen so it looks like the input (pure: no I/O).

Re-encoding a 0.7 Mbit/s HEVC phone video as H.264 at CRF 18 gave 3.5x its
bytes; the default now follows the input instead: HEVC stays HEVC, anything
else becomes H.264, and the quality target (CRF) is capped near the input's
bitrate, so the size lands close to the input's and an edit never costs more
bits than the source spent. `--codec`, `--crf` and `--bitrate` override each
part (tools/bench_encode.py measures what each choice costs).

4:2:0 video (what every player decodes) needs even sizes; an odd-sized or
4:4:4 input is written as even-sized 4:2:0 with one note saying so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from lipstream.config import EncodeConfig

ENCODERS = {"h264": "libx264", "hevc": "libx265"}
DEFAULT_PRESET = {"h264": "veryfast", "hevc": "ultrafast"}  # HEVC still costs ~1.5x H.264's CPU (README table)
DEFAULT_CRF = {"h264": 20, "hevc": 24}
# The cap on the quality target, as a share of the input's video bitrate: H.264
# needs about half again HEVC's bits for the same picture.
CAP_SHARE = {("hevc", "hevc"): 1.0, ("h264", "h264"): 1.0, ("hevc", "h264"): 1.5}
OTHER_INPUT_SHARE = 1.2  # VP9, AV1, MPEG-4 ... re-encoded as either codec
PIX_FMT = "yuv420p"
PLAIN_PIX_FMTS = ("yuv420p", "yuvj420p")


@dataclass(frozen=True)
class VideoTraits:
    """What the input video is, as far as the output should follow it."""

    codec: str | None = None  # FFmpeg decoder name, e.g. "h264", "hevc"
    bit_rate: int | None = None  # bits/s of the video stream; None when a pipe or container does not say
    pix_fmt: str | None = None


@dataclass(frozen=True)
class Encoding:
    """Encoder settings for one output."""

    codec: str  # "h264" | "hevc"
    encoder: str  # the FFmpeg encoder: libx264 | libx265
    options: dict[str, str]
    width: int
    height: int
    max_bit_rate: int | None  # the most the video may average (bits/s); None: quality only, size unknown
    notes: tuple[str, ...] = ()
    threads: int | None = None  # encoder threads; None: as many as useful

    @property
    def pix_fmt(self) -> str:
        return PIX_FMT


def choose_codec(config: EncodeConfig, traits: VideoTraits) -> str:
    if config.codec != "auto":
        return config.codec
    return "hevc" if traits.codec == "hevc" else "h264"


def choose_encoding(config: EncodeConfig, traits: VideoTraits, size: tuple[int, int]) -> Encoding:
    """The encoder, its options and the picture size for a `size` (width, height) input picture."""
    codec = choose_codec(config, traits)
    options: dict[str, str] = {"preset": config.preset or DEFAULT_PRESET[codec]}
    if config.tune:
        options["tune"] = config.tune
    if codec == "h264" and config.x264_params:
        options["x264-params"] = config.x264_params
    x265 = [config.x265_params] if codec == "hevc" and config.x265_params else []
    cap = config.bitrate
    if config.crf is None and config.bitrate is None and traits.bit_rate:
        share = CAP_SHARE.get((traits.codec or "", codec), OTHER_INPUT_SHARE)
        cap = max(int(traits.bit_rate * share), 100_000)
    if config.bitrate is not None and config.crf is None:
        options["b"] = str(config.bitrate)  # average bitrate
    else:
        crf = DEFAULT_CRF[codec] if config.crf is None else config.crf
        options["crf"] = str(crf)
        if codec == "hevc" and crf == 0:
            x265.append("lossless=1")
    if cap is not None and "b" not in options:
        options["maxrate"] = str(cap)
        options["bufsize"] = str(2 * cap)  # two seconds of buffer: room to spend bits where the picture needs them
    if x265:
        options["x265-params"] = ":".join(x265)
    # Without lookahead (zerolatency) x264's rate control under a bitrate bound depends on
    # which thread finishes first, so two runs would differ; one thread keeps runs identical.
    threads = 1 if config.tune == "zerolatency" and ("maxrate" in options or "b" in options) else None
    width, height = size
    even = (width - width % 2, height - height % 2)
    notes = []
    changed_size = even != (width, height)
    changed_format = traits.pix_fmt is not None and traits.pix_fmt not in PLAIN_PIX_FMTS
    if changed_size or changed_format:
        was = f"{width}x{height}" + (f" {traits.pix_fmt}" if traits.pix_fmt else "")
        why = "players decode 4:2:0 video, which needs even sizes" if changed_size else "players decode 4:2:0 video"
        notes.append(f"the output is {even[0]}x{even[1]} {PIX_FMT} (the input is {was}): {why}")
    return Encoding(codec, ENCODERS[codec], options, even[0], even[1], cap, tuple(notes), threads)


def output_time_base(source: Fraction) -> Fraction:
    """A time base every source timestamp maps to exactly, fine enough (<= 0.1 ms) to end a frame where the audio ends.

    `1001/30000` becomes `1/30000`, `1/25` becomes `1/10000`; `1/90000` stays.
    """
    source = Fraction(source)
    per_second = source.denominator
    finer = max(1, math.ceil(10_000 / per_second))
    return Fraction(1, per_second * finer)


def estimated_bytes(encoding: Encoding, seconds: float, audio_bit_rate: int) -> int | None:
    """An upper estimate of the output's size, or None when the video's size cannot be known (quality-only)."""
    if encoding.max_bit_rate is None:
        return None
    return int((encoding.max_bit_rate + audio_bit_rate) * seconds / 8)
