import numpy as np

from lipstream.config import CropConfig
from lipstream.pipeline.faces.crop import CropSmoother


def box(cx, cy, size=100):
    return np.array([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2])


def test_small_moves_inside_the_deadband_do_not_move_the_crop():
    smoother = CropSmoother((1920, 1080))
    first = smoother.update([box(900, 500)] * 8)
    second = smoother.update([box(903, 502)] * 8)
    assert set(first) == set(second) and len(set(first)) == 1


def test_crop_follows_a_moving_face_smoothly_and_contains_it():
    smoother = CropSmoother((1920, 1080), CropConfig(pad=0.1))
    crops = []
    for w in range(10):
        boxes = [box(500 + 12 * (8 * w + k), 500) for k in range(8)]
        out = smoother.update(boxes)
        for b, c in zip(boxes, out):
            assert c[0] <= b[0] - 10 + 1 and c[2] >= b[2] + 10 - 1
        crops += out
    steps = np.abs(np.diff([c[0] for c in crops]))
    assert steps.max() < 40  # no jumps: the face moves 12 px per frame


def test_crop_is_clamped_to_the_frame_and_none_without_face():
    smoother = CropSmoother((640, 360))
    crops = smoother.update([box(20, 20, 200), None])
    assert crops[1] is None
    x0, y0, x1, y1 = crops[0]
    assert x0 == 0 and y0 == 0 and x1 <= 640 and y1 <= 360
