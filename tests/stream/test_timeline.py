import hashlib
from fractions import Fraction

from clips import sample_clip
from lipstream.stream.source import VideoSource
from lipstream.stream.timeline import Retimer, audio_end, output_frames, start_frame, video_limit


def test_retimer_keeps_variable_deltas_forward_and_backward():
    retimer = Retimer(nominal_step=40)
    source = [0, 40, 120, 140, 260]  # VFR
    forward = [retimer.place(p)[1] for p in source]
    assert forward == source
    backward = [retimer.place(p)[1] for p in reversed(source[:-1])]
    assert backward == [260 + 120, 380 + 20, 400 + 80, 480 + 40]


def test_retimer_holds_a_frozen_frame_for_the_nominal_step():
    retimer = Retimer(nominal_step=40)
    assert [retimer.place(100) for _ in range(3)] == [(0, 0), (1, 40), (2, 80)]


def test_length_policies():
    a, v = Fraction(5), Fraction(3)
    assert video_limit("audio", a) == a and video_limit("shortest", a) == a and video_limit("video", a) is None
    assert audio_end("audio", a, v) == a
    assert audio_end("video", a, v) == v
    assert audio_end("shortest", a, v) == v
    assert audio_end("shortest", Fraction(2), v) == 2


def test_starting_at_a_frame_seeks_and_gives_the_frames_decoding_from_the_start_gives(tmp_path):
    path = sample_clip(tmp_path / "gop.mp4", 40, every=2, fps=8, size=(136, 240), gop=8)  # a keyframe a second

    def frames(start=None, lead=0):
        with VideoSource(path) as source:
            first = 0 if start is None else start_frame(source, start, lead)
            return first, [(f.index, f.pts, hashlib.sha256(f.rgb().tobytes()).hexdigest()) for f in output_frames(source, "video", Fraction(0), None, first)]

    _, whole = frames()
    assert len(whole) == 40
    first, tail = frames(Fraction(3), lead=5)  # frame 24 is at 3 s: start 5 before it, in the GOP of frame 16
    assert first == 19 and tail == whole[19:]
    assert frames(Fraction(99))[0] == 0  # past the file's frames: from the beginning
