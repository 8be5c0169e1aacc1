"""Frame pixels: region conversion, the 4:2:0 planes, and patches, on a real decoded picture."""

from fractions import Fraction

import av
import numpy as np
import pytest

from lipstream.stream.frames import Frame
from media import SAMPLE_VIDEO


@pytest.fixture(scope="module")
def picture() -> av.VideoFrame:
    with av.open(str(SAMPLE_VIDEO)) as container:
        return next(container.decode(video=0))


def frame_of(picture: av.VideoFrame, **kw) -> Frame:
    return Frame(0, 0, Fraction(1, 25), 0, decoded=picture, **kw)


@pytest.mark.parametrize("box", [(101, 203, 377, 611), (0, 0, 540, 960), (-20, 950, 33, 990), (7, 9, 8, 10)])
def test_rgb_region_equals_the_converted_frame(picture, box):
    whole = frame_of(picture).rgb()
    x0, y0, x1, y1 = box
    np.testing.assert_array_equal(frame_of(picture).rgb_region(box), whole[max(y0, 0) : y1, max(x0, 0) : x1])


def test_i420_planes_are_the_decoded_planes_only_while_untouched(picture):
    frame = frame_of(picture)
    luma, blue, red = frame.i420_planes()
    assert luma.shape == (960, 540) and blue.shape == red.shape == (480, 270)
    np.testing.assert_array_equal(luma, picture.to_ndarray(format="yuv420p")[:960])
    assert frame.with_patch((10, 10, 20, 20), np.zeros((10, 10, 3), np.uint8)).i420_planes() is None
    assert frame.with_image(frame.rgb()).i420_planes() is None
    assert frame_of(picture, rotation=90).i420_planes() is None


def test_patches_show_in_regions_and_a_second_patch_keeps_the_first(picture):
    frame = frame_of(picture)
    red = np.full((20, 30, 3), (250, 0, 0), np.uint8)
    blue = np.full((20, 30, 3), (0, 0, 250), np.uint8)
    once = frame.with_patch((100, 100, 130, 120), red)
    np.testing.assert_array_equal(once.rgb_region((100, 100, 130, 120)), red)
    twice = once.with_patch((120, 110, 150, 130), blue)  # overlaps the first
    region = twice.rgb_region((100, 100, 150, 130))
    np.testing.assert_array_equal(region[:10, :20], red[:10, :20])
    np.testing.assert_array_equal(region[10:, 20:], blue)
    untouched = frame.rgb()
    np.testing.assert_array_equal(region[25:, :15], untouched[125:130, 100:115])


@pytest.mark.parametrize("box", [(120, 220, 180, 260), (90, 190, 400, 500), (300, 600, 340, 640), (0, 0, 540, 960)])
def test_regions_of_a_patched_frame_convert_only_the_region(picture, box):
    rng = np.random.default_rng(4)
    patched = frame_of(picture).with_patch((100, 200, 300, 400), rng.integers(0, 255, (200, 200, 3), np.uint8))
    whole = frame_of(picture).with_patch((100, 200, 300, 400), patched.patch.rgb).rgb()  # the reference: the full conversion
    x0, y0, x1, y1 = box
    np.testing.assert_array_equal(patched.rgb_region(box), whole[y0:y1, x0:x1])
    assert patched._rgb is None, "inside, across or outside the patch: no whole-frame conversion"
