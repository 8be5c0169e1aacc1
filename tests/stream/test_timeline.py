from fractions import Fraction

from lipstream.stream.timeline import Retimer, audio_end, video_limit


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
