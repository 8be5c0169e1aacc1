"""The warp benchmark's measuring helpers on the bundled sample (the timed runs stay out of the suite)."""

import cv2
import numpy as np
import pytest

from media import SAMPLE_VIDEO
from tool_scripts import load_tool


@pytest.fixture(scope="module")
def bench_warp():
    yield from load_tool("bench_warp")


def test_face_boxes_psnr_and_contact_sheet(bench_warp, tmp_path):
    boxes = bench_warp.face_boxes(SAMPLE_VIDEO)
    assert len(boxes) == 100 and all(b is not None for b in boxes)
    x0, y0, x1, y1 = boxes[0]
    assert 0 < x1 - x0 < 540 and 0 < y1 - y0 < 960
    assert bench_warp.psnr_outside_faces(SAMPLE_VIDEO, SAMPLE_VIDEO, boxes) == float("inf")
    sheet = tmp_path / "contact.png"
    bench_warp.contact_sheet(SAMPLE_VIDEO, SAMPLE_VIDEO, boxes, sheet, count=4, tile=64)
    image = cv2.imread(str(sheet))
    assert image.shape[1] == 4 * 64 and np.ptp(image) > 0
