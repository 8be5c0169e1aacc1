"""Fragmented MP4 for live streams: one fragment per frame, exact times, a keyframe on request."""

import io

import av
import numpy as np

from lipstream.stream.live_mux import LiveMuxer


def stream(frames=50, keyframe_at=None):
    muxer = LiveMuxer(64, 64, 25)
    video, audio = [], []
    for tick in range(frames):
        if tick == keyframe_at:
            muxer.keyframe()
        picture = np.full((96, 64), 16 + 4 * tick % 200, np.uint8)
        sound = (np.sin(np.arange(640) * 0.05 + tick) * 4000).astype(np.int16)
        v, a = muxer.write(tick, picture, sound)
        video.append(v)
        audio.append(a)
    v, a = muxer.close()
    return muxer, video + [v], audio + [a]


def test_each_frame_is_handed_out_as_it_is_encoded_with_exact_times():
    muxer, video, audio = stream()
    assert muxer.video_mime.startswith('video/mp4; codecs="avc1.42') and muxer.audio_mime == 'audio/mp4; codecs="opus"'
    assert all(video[1:-1]) and all(audio[1:-1])  # bytes after every frame: nothing waits for later frames
    with av.open(io.BytesIO(b"".join(video))) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 50 and [round(float(f.time) * 25) for f in frames] == list(range(50))
    with av.open(io.BytesIO(b"".join(audio))) as container:
        seconds = sum(f.samples / f.sample_rate for f in container.decode(audio=0))
    assert abs(seconds - 2.0) < 0.03


def test_a_keyframe_comes_when_asked_for():
    _, video, _ = stream(40, keyframe_at=17)
    with av.open(io.BytesIO(b"".join(video))) as container:
        keys = [k for k, packet in enumerate(p for p in container.demux(video=0) if p.size) if packet.is_keyframe]
    assert keys == [0, 17]  # the first and the one asked for (the next periodic one counts from it)
