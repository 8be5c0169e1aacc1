"""BlazeFace detector: anchor/decode/NMS math and the embedded TFLite models.

Video data: tests/data/synth_astronaut (a copy of /work/shared/media/synth_astronaut):
clip.mp4 is skimage's astronaut portrait (public domain) moved by a known
per-frame affine (motion.npz `affine`, source px -> frame px, 640x360, 250 frames).
Thresholds are measured values (2 cores, ai-edge-litert 2.3.0) plus a margin.
"""
from __future__ import annotations

import importlib.resources
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from lipstream.models.blazeface import (
    FULL_RANGE_ANCHORS,
    SHORT_RANGE_ANCHORS,
    BlazeFace,
    Letterbox,
    decode_boxes,
    generate_anchors,
    iou,
    sigmoid,
    weighted_nms,
)
from lipstream.models.face_types import Detection, FaceDetector

CLIP_DIR = Path(__file__).resolve().parent.parent / "data" / "synth_astronaut"


@pytest.fixture(scope="module")
def clip() -> tuple[list[np.ndarray], np.ndarray]:
    with av.open(str(CLIP_DIR / "clip.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    affine = np.load(CLIP_DIR / "motion.npz")["affine"]
    assert len(frames) == len(affine) == 250
    return frames, affine


@pytest.fixture(scope="module")
def detectors() -> dict[str, BlazeFace]:
    return {"short": BlazeFace("short"), "full": BlazeFace("full")}


def paste(frame: np.ndarray, scale: float, canvas: tuple[int, int], offset: tuple[float, float]):
    """`frame` scaled and placed on a grey canvas (W, H); returns the image and
    the 2x3 frame -> canvas map."""
    m = np.array([[scale, 0.0, offset[0]], [0.0, scale, offset[1]]])
    out = np.full((canvas[1], canvas[0], 3), 90, np.uint8)
    cv2.warpAffine(frame, m, canvas, dst=out, flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_TRANSPARENT)
    return out, m


def apply(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return np.asarray(xy) @ m[:, :2].T + m[:, 2]


def invert(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]


# ------------------------------------------------------------------ pure math


def test_anchor_counts_and_layout() -> None:
    short = generate_anchors(SHORT_RANGE_ANCHORS)
    full = generate_anchors(FULL_RANGE_ANCHORS)
    assert short.shape == (896, 4) and full.shape == (2304, 4)
    # fixed anchor size: every anchor is a unit box
    assert np.all(short[:, 2:] == 1.0) and np.all(full[:, 2:] == 1.0)
    # 16x16 map with 2 anchors per cell, then 8x8 with 6, row-major
    np.testing.assert_allclose(short[0, :2], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[1, :2], short[0, :2])
    np.testing.assert_allclose(short[2, :2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[512, :2], [0.5 / 8, 0.5 / 8])
    np.testing.assert_allclose(short[512:518, :2], np.tile([0.5 / 8, 0.5 / 8], (6, 1)))
    np.testing.assert_allclose(short[-1, :2], [7.5 / 8, 7.5 / 8])
    np.testing.assert_allclose(full[48, :2], [0.5 / 48, 1.5 / 48])
    np.testing.assert_allclose(full[-1, :2], [47.5 / 48, 47.5 / 48])


def test_decode_is_relative_to_anchor_in_input_pixels() -> None:
    anchors = np.array([[0.25, 0.75, 1.0, 1.0]], np.float32)
    raw = np.zeros((1, 16), np.float32)
    raw[0, :4] = [12.8, -12.8, 25.6, 51.2]  # dx, dy, w, h in 128-px input units
    raw[0, 4:6] = [6.4, 0.0]
    boxes, kps = decode_boxes(raw, anchors, 128)
    np.testing.assert_allclose(boxes[0], [0.35 - 0.1, 0.65 - 0.2, 0.35 + 0.1, 0.65 + 0.2], atol=1e-6)
    np.testing.assert_allclose(kps[0, 0], [0.3, 0.75], atol=1e-6)
    np.testing.assert_allclose(kps[0, 1:], np.tile([0.25, 0.75], (5, 1)), atol=1e-6)


def test_sigmoid_is_finite_on_extreme_logits() -> None:
    with np.errstate(all="raise"):
        s = sigmoid(np.array([-1e4, 0.0, 1e4], np.float32))
    np.testing.assert_allclose(s, [0.0, 0.5, 1.0], atol=1e-40)


def test_iou() -> None:
    boxes = np.array([[0, 0, 2, 2], [1, 1, 3, 3], [5, 5, 6, 6], [1, 1, 1, 1]], float)
    np.testing.assert_allclose(iou(boxes[0], boxes), [1.0, 1 / 7, 0.0, 0.0])


def test_weighted_nms_blends_overlaps_and_keeps_separate_faces() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    scores = np.array([0.9, 0.3, 0.6])
    kps = boxes[:, None, :2] + np.zeros((3, 6, 2))
    out = weighted_nms(boxes, scores, kps, iou_threshold=0.3)
    assert len(out) == 2
    (box, score, kp), (box2, score2, _) = out
    assert score == pytest.approx(0.9) and score2 == pytest.approx(0.6)
    np.testing.assert_allclose(box, [0.25, 0, 10.25, 10])  # (0.9*0 + 0.3*1) / 1.2
    np.testing.assert_allclose(kp[0], [0.25, 0])
    np.testing.assert_allclose(box2, boxes[2])
    assert weighted_nms(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2)), 0.3) == []


@pytest.mark.parametrize("size", [(640, 360), (360, 640), (128, 128), (1920, 1080), (50, 30)])
def test_letterbox_maps_input_back_to_frame(size: tuple[int, int]) -> None:
    w, h = size
    lb = Letterbox.fit(w, h, 128)
    # the image's outer pixel edges land on the frame's outer edges
    x0, y0 = np.array(lb.offset) / 128
    x1, y1 = (np.array(lb.offset) + lb.resized) / 128
    np.testing.assert_allclose(lb.to_frame(np.array([[x0, y0], [x1, y1]])), [[-0.5, -0.5], [w - 0.5, h - 0.5]])
    img = lb.apply(np.full((h, w, 3), 200, np.uint8))
    assert img.shape == (128, 128, 3)
    assert (img == 200).sum() == 3 * lb.resized[0] * lb.resized[1]


# ------------------------------------------------------------------ models


def test_assets_ship_with_the_package() -> None:
    assets = importlib.resources.files("lipstream.models") / "assets"
    names = {p.name for p in assets.iterdir()}
    assert {"face_detection_short_range.tflite", "face_detection_full_range_sparse.tflite",
            "face_landmark.tflite", "LICENSE-mediapipe.txt"} <= names


def test_protocol_and_input_checks(detectors: dict[str, BlazeFace]) -> None:
    assert isinstance(detectors["short"], FaceDetector)
    assert len(detectors["short"].anchors) == 896 and len(detectors["full"].anchors) == 2304
    with pytest.raises(ValueError):
        detectors["short"].detect([np.zeros((10, 10), np.uint8)])
    with pytest.raises(ValueError):
        BlazeFace("medium")  # type: ignore[arg-type]


@pytest.mark.parametrize("model", ["short", "full"])
def test_one_face_per_frame_following_the_motion(clip, detectors, model: str) -> None:
    """Box centre vs the ground-truth motion of the frame-0 box centre.

    Measured: short centre error mean 2.8 px, max 6.4 px; full mean 2.0,
    max 6.3 (face box ~123 px wide); box width / true scale within 0.88-1.04
    of frame 0. Asserted: mean < 4, max < 10 px, width ratio 0.8-1.2.
    """
    frames, affine = clip
    found = detectors[model].detect(frames)
    assert [len(d) for d in found] == [1] * len(frames)
    dets = [d[0] for d in found]
    assert min(d.score for d in dets) > 0.75  # measured 0.91 short, 0.81 full
    centres = np.array([d.center for d in dets])
    ref = apply(invert(affine[0]), centres[0])
    truth = np.einsum("tij,j->ti", affine[:, :, :2], ref) + affine[:, :, 2]
    err = np.linalg.norm(centres - truth, axis=1)
    assert err.mean() < 4.0 and err.max() < 10.0, (err.mean(), err.max())
    scale = np.sqrt(np.linalg.det(affine[:, :, :2]))
    ratio = np.array([d.width for d in dets]) / scale
    ratio /= ratio[0]
    assert 0.8 < ratio.min() and ratio.max() < 1.2
    # keypoints are in frame pixels: the eyes sit in the upper half of the box, right eye left
    kp = dets[0].keypoints
    assert kp.shape == (6, 2) and kp[0, 0] < kp[1, 0] and kp[0, 1] < centres[0, 1] < kp[3, 1]


def test_batch_equals_single_frames(clip, detectors) -> None:
    frames, _ = clip
    batch = detectors["short"].detect(frames[:3])
    single = [detectors["short"].detect([f])[0] for f in frames[:3]]
    for a, b in zip(batch, single):
        np.testing.assert_allclose(a[0].box, b[0].box)


def test_no_face_gives_no_detection(clip, detectors) -> None:
    frame = clip[0][0]
    rng = np.random.default_rng(0)
    images = [
        np.full((360, 640, 3), 128, np.uint8),
        rng.integers(0, 256, (360, 640, 3), dtype=np.uint8),
        np.ascontiguousarray(frame[:, :150]),  # clip background left of the face
    ]
    for model, det in detectors.items():
        assert det.detect(images) == [[], [], []], model


@pytest.mark.parametrize("offset", [(-270, 0), (0, 150)], ids=["left-edge", "bottom-edge"])
def test_face_cut_by_the_frame_border(clip, detectors, offset) -> None:
    """Face centre ~50 px from the left edge (40% of the box outside), or the
    chin cut by the bottom edge. Boxes are not clipped to the frame."""
    frame = clip[0][0]
    ref = detectors["short"].detect([frame])[0][0]
    img, m = paste(frame, 1.0, (640, 360), offset)
    for model, det in detectors.items():
        found = det.detect([img])[0]
        assert len(found) == 1, model
        np.testing.assert_allclose(found[0].center, apply(m, ref.center), atol=12)
    left = detectors["short"].detect([img])[0][0]
    if offset[0] < 0:
        assert left.x0 < 0


def test_small_face_needs_full_range(clip, detectors) -> None:
    """Face ~62 px wide on 960x540 (6.5% of the width, ~12 px in the model
    input): the full-range model finds it (score 0.87 measured), the short-range
    one is documented to miss it."""
    frame = clip[0][0]
    ref = detectors["short"].detect([frame])[0][0]
    img, m = paste(frame, 0.5, (960, 540), (500, 300))
    found = detectors["full"].detect([img])[0]
    assert len(found) == 1
    # measured centre offset 8.2 px = 13% of the face width (the two models' boxes differ)
    offset = np.linalg.norm(np.subtract(found[0].center, apply(m, ref.center)))
    assert offset < 0.25 * 0.5 * ref.width
    assert found[0].width == pytest.approx(0.5 * ref.width, rel=0.25)
    assert detectors["short"].detect([img]) == [[]]


def test_detection_is_immutable(detectors, clip) -> None:
    det = detectors["short"].detect([clip[0][0]])[0][0]
    assert isinstance(det, Detection)
    with pytest.raises(ValueError):
        det.keypoints[0, 0] = 1.0
