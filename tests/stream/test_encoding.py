"""How the output's encoding follows the input, and what the user's choices override (pure)."""

from fractions import Fraction

import pytest

from lipstream.config import EncodeConfig
from lipstream.errors import InputError
from lipstream.stream.encoding import VideoTraits, choose_encoding, estimated_bytes, output_time_base

HEVC = VideoTraits("hevc", 700_000, "yuv420p")
H264 = VideoTraits("h264", 2_000_000, "yuv420p")


def test_by_default_the_codec_follows_the_input_and_the_bitrate_is_capped_near_it():
    hevc = choose_encoding(EncodeConfig(), HEVC, (1080, 1920))
    assert (hevc.encoder, hevc.options["crf"], hevc.options["maxrate"], hevc.options["bufsize"]) == ("libx265", "24", "700000", "1400000")
    assert "open-gop=0" in hevc.options["x265-params"] and "scenecut=0" in hevc.options["x265-params"]
    h264 = choose_encoding(EncodeConfig(), H264, (1280, 720))
    assert (h264.encoder, h264.options["maxrate"], h264.options["x264-params"]) == ("libx264", "2000000", "scenecut=0:b-adapt=0")
    other = choose_encoding(EncodeConfig(), VideoTraits("vp9", 1_000_000), (640, 360))
    assert other.encoder == "libx264" and other.options["maxrate"] == "1200000"


def test_choosing_h264_for_hevc_input_allows_more_bits():
    encoding = choose_encoding(EncodeConfig(codec="h264"), HEVC, (1080, 1920))
    assert encoding.encoder == "libx264" and encoding.options["maxrate"] == "1050000" and encoding.max_bit_rate == 1_050_000


def test_explicit_quality_and_bitrate():
    crf = choose_encoding(EncodeConfig(crf=18), HEVC, (64, 64))
    assert crf.options["crf"] == "18" and "maxrate" not in crf.options and crf.max_bit_rate is None
    abr = choose_encoding(EncodeConfig(bitrate=900_000), HEVC, (64, 64))
    assert abr.options["b"] == "900000" and "crf" not in abr.options
    capped = choose_encoding(EncodeConfig(crf=20, bitrate=900_000, codec="h264"), HEVC, (64, 64))
    assert (capped.options["crf"], capped.options["maxrate"]) == ("20", "900000")
    unknown = choose_encoding(EncodeConfig(), VideoTraits("h264", None), (64, 64))  # a pipe: no bitrate known
    assert unknown.options["crf"] == "20" and "maxrate" not in unknown.options


def test_lossless_stays_lossless_in_both_codecs():
    assert choose_encoding(EncodeConfig(crf=0), H264, (64, 64)).options["crf"] == "0"
    assert "lossless=1" in choose_encoding(EncodeConfig(crf=0), HEVC, (64, 64)).options["x265-params"]


def test_zero_latency_under_a_bitrate_bound_uses_one_thread_so_runs_repeat():
    live = choose_encoding(EncodeConfig(codec="h264", tune="zerolatency"), H264, (64, 64))
    assert live.threads == 1
    assert choose_encoding(EncodeConfig(codec="h264", tune="zerolatency", crf=20), H264, (64, 64)).threads is None
    assert choose_encoding(EncodeConfig(), H264, (64, 64)).threads is None


def test_odd_sizes_and_4_4_4_become_even_4_2_0_with_one_note():
    odd = choose_encoding(EncodeConfig(), VideoTraits("ffv1", None, "yuv444p"), (271, 481))
    assert (odd.width, odd.height, odd.pix_fmt) == (270, 480, "yuv420p")
    assert odd.notes == ("the output is 270x480 yuv420p (the input is 271x481 yuv444p): players decode 4:2:0 video, which needs even sizes",)
    assert choose_encoding(EncodeConfig(), VideoTraits("h264", None, "yuv444p"), (320, 180)).notes == (
        "the output is 320x180 yuv420p (the input is 320x180 yuv444p): players decode 4:2:0 video",
    )
    assert choose_encoding(EncodeConfig(), H264, (320, 180)).notes == ()


@pytest.mark.parametrize(
    "source,expected",
    [(Fraction(1001, 30000), Fraction(1, 30000)), (Fraction(1, 25), Fraction(1, 10000)), (Fraction(1, 90000), Fraction(1, 90000)),
     (Fraction(1, 15360), Fraction(1, 15360)), (Fraction(1, 1000), Fraction(1, 10000))],
)
def test_the_output_time_base_holds_every_source_time_exactly(source, expected):
    out = output_time_base(source)
    assert out == expected
    assert all((k * source / out).denominator == 1 for k in (1, 7, 12345))


def test_size_estimate_and_validation():
    capped = choose_encoding(EncodeConfig(), HEVC, (64, 64))
    assert estimated_bytes(capped, 10.0, 128_000) == (700_000 + 128_000) * 10 // 8
    assert estimated_bytes(choose_encoding(EncodeConfig(crf=20), HEVC, (64, 64)), 10.0, 128_000) is None
    with pytest.raises(InputError):
        EncodeConfig(crf=60)
    with pytest.raises(InputError):
        EncodeConfig(bitrate=100)
