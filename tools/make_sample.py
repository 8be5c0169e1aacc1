"""Cut the bundled sample from ../shared/media/demo1 (run once; the output is committed).

    python tools/make_sample.py ../shared/media tests/data

Writes sample.mp4 (4 s of demo1_video at 540x960, H.264) and sample.wav (the
same span of demo1_audio.wav, 16 kHz mono), and demo2_excerpt.mp4/.wav (4 s of
demo2, where the speaker moves and gestures), all Apache-2.0 like their
source (bytedance/LatentSync assets).
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

LENGTH = Fraction(4)


def cut_video(src: Path, dst: Path, start: Fraction) -> None:
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "+faststart"}) as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height = vin.codec_context.width // 2, vin.codec_context.height // 2
        vout.pix_fmt = "yuv420p"
        vout.options = {"crf": "23", "preset": "slow"}
        first = None
        for frame in inp.decode(vin):
            t = frame.pts * vin.time_base
            if t < start:
                continue
            if t >= start + LENGTH:
                break
            first = frame.pts if first is None else first
            small = frame.reformat(width=vout.width, height=vout.height, format="yuv420p")
            small.pts = frame.pts - first
            small.time_base = vin.time_base
            for packet in vout.encode(small):
                out.mux(packet)
        for packet in vout.encode(None):
            out.mux(packet)


def cut_audio(src: Path, dst: Path, start: Fraction) -> None:
    with av.open(str(src)) as inp:
        rate = inp.streams.audio[0].rate
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in inp.decode(audio=0)])
    piece = samples[int(start * rate) : int((start + LENGTH) * rate)]
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(piece.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("media", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    cut_video(args.media / "demo1_video.mp4", args.out / "sample.mp4", Fraction(2))
    cut_audio(args.media / "demo1_audio.wav", args.out / "sample.wav", Fraction(2))
    cut_video(args.media / "demo2_video.mp4", args.out / "demo2_excerpt.mp4", Fraction(6))
    cut_audio(args.media / "demo2_audio.wav", args.out / "demo2_excerpt.wav", Fraction(6))


if __name__ == "__main__":
    main()
