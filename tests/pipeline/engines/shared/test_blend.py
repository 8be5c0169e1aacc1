"""Laplacian-pyramid blending inside a box: exact outside the mask, faithful inside, no seam."""

import numpy as np
import pytest

from lipstream.pipeline.engines.shared.blend import blend, pyramid_levels


def disk_mask(h: int, w: int, radius: float, feather: float) -> np.ndarray:
    y, x = np.mgrid[:h, :w]
    d = np.hypot(x - (w - 1) / 2, y - (h - 1) / 2)
    return np.clip((radius - d) / feather, 0, 1).astype(np.float32)


@pytest.fixture
def images():
    rng = np.random.default_rng(1)
    dst = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    src = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    return dst, src, (50, 30, 130, 94)


def test_pixels_outside_the_mask_and_box_are_untouched(images):
    dst, src, box = images
    mask = disk_mask(64, 80, 26, 8)
    before = dst.copy()
    out = blend(dst, src, mask, box)
    np.testing.assert_array_equal(dst, before)  # the input is never modified
    x0, y0, x1, y1 = box
    outside = np.ones(dst.shape[:2], bool)
    outside[y0:y1, x0:x1] = mask <= 0
    diff = np.argwhere(out[outside] != dst[outside])
    assert diff.size == 0, f"{len(diff)} pixels changed outside the mask"
    # well inside the feather the source comes through exactly; near it, coarse bands still mix
    core = disk_mask(64, 80, 10, 0.01) > 0.5
    np.testing.assert_array_equal(out[y0:y1, x0:x1][core], src[core])
    full = mask >= 1
    assert np.abs(out[y0:y1, x0:x1][full].astype(int) - src[full].astype(int)).mean() < 1.0


def test_full_mask_gives_the_source_and_empty_mask_the_destination(images):
    dst, src, box = images
    x0, y0, x1, y1 = box
    out = blend(dst, src, np.ones(src.shape[:2], np.float32), box)
    assert np.abs(out[y0:y1, x0:x1].astype(int) - src.astype(int)).max() <= 1
    out = blend(dst, src, np.zeros(src.shape[:2], np.float32), box)
    np.testing.assert_array_equal(out, dst)


def test_in_place_and_grey_images(images):
    dst, src, box = images
    mask = disk_mask(64, 80, 26, 8)
    expected = blend(dst, src, mask, box)
    edited = dst.copy()
    assert blend(edited, src, mask, box, out=edited) is edited
    np.testing.assert_array_equal(edited, expected)
    grey = blend(dst[..., 0].copy(), src[..., 0].copy(), mask, box)
    assert grey.shape == dst.shape[:2]


def test_a_colour_difference_fades_without_a_step():
    """Flat images of different colours: the transition is spread, never a jump at the mask's edge."""
    dst = np.full((200, 200, 3), 60, np.uint8)
    src = np.full((160, 160, 3), 200, np.uint8)
    mask = disk_mask(160, 160, 60, 15)
    out = blend(dst, src, mask, (20, 20, 180, 180)).astype(int)
    row = out[100, :, 0]
    steps = np.abs(np.diff(row))
    assert row[100] >= 199 and row[0] == 60
    assert steps.max() <= 0.2 * 140, steps.max()  # the 140-level change is spread over many pixels


def test_bad_arguments_are_refused(images):
    dst, src, box = images
    with pytest.raises(ValueError, match="box size"):
        blend(dst, src[:10], np.ones((10, 80), np.float32), box)
    with pytest.raises(ValueError, match="outside"):
        blend(dst, src, np.ones(src.shape[:2], np.float32), (100, 30, 180, 94))
    with pytest.raises(ValueError, match="uint8"):
        blend(dst.astype(np.float32), src, np.ones(src.shape[:2], np.float32), box)


def test_levels_follow_the_region_size():
    assert pyramid_levels(8, 8) == 0
    assert pyramid_levels(16, 400) == 1
    assert pyramid_levels(300, 300) == 5
