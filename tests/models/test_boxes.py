"""The torch box helpers shared by RetinaFace and S3FD: SSD decoding and greedy NMS."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lipstream.models._boxes import decode_center_size, nms


def _brute_force_nms(boxes: list[list[float]], scores: list[float], threshold: float) -> list[int]:
    """Greedy NMS in plain Python: best first, drop IoU > threshold, areas with the "+1" convention."""

    def iou(a: list[float], b: list[float]) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
        inter = w * h
        area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
        return inter / (area(a) + area(b) - inter)

    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # sorted() is stable: ties keep input order
    keep: list[int] = []
    for i in order:
        if all(iou(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.3, 0.4, 0.7])
def test_nms_matches_brute_force(seed: int, threshold: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    n = 200
    corner = torch.rand(n, 2, generator=gen) * 100
    size = torch.rand(n, 2, generator=gen) * 40 + 1
    boxes = torch.cat([corner, corner + size], dim=1)
    scores = torch.rand(n, generator=gen)
    scores[:10] = scores[10:20]  # some exact ties
    keep = nms(boxes, scores, threshold)
    assert keep.dtype == torch.long
    assert keep.tolist() == _brute_force_nms(boxes.double().tolist(), scores.tolist(), threshold)
    assert nms(boxes, scores, threshold, max_kept=7).tolist() == keep[:7].tolist()


def test_nms_constructed_cases() -> None:
    boxes = torch.tensor(
        [
            [0.0, 0.0, 9.0, 9.0],  # area 100 with +1
            [0.0, 0.0, 9.0, 4.0],  # inside the first: IoU 50/100 = 0.5
            [5.0, 0.0, 14.0, 9.0],  # IoU 50 / 150 = 1/3 with the first
            [100.0, 100.0, 110.0, 110.0],
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.1])
    assert nms(boxes, scores, 0.4).tolist() == [0, 2, 3]
    assert nms(boxes, scores, 0.5).tolist() == [0, 1, 2, 3]  # IoU equal to the threshold is kept
    assert nms(boxes, scores, 0.3).tolist() == [0, 3]
    assert nms(boxes[:0], scores[:0], 0.3).tolist() == []
    # touching edges overlap by one pixel under the +1 convention
    assert nms(torch.tensor([[0.0, 0.0, 9.0, 9.0], [9.0, 0.0, 18.0, 9.0]]), torch.tensor([1.0, 0.5]), 0.05).tolist() == [0]


def test_nms_follows_dtype() -> None:
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0], [1.0, 1.0, 10.0, 10.0]], dtype=torch.float64)
    assert nms(boxes, torch.tensor([0.2, 0.9], dtype=torch.float64), 0.5).tolist() == [1]


def test_decode_center_size() -> None:
    priors = torch.tensor([[10.0, 20.0, 4.0, 8.0]])
    assert decode_center_size(torch.zeros(1, 4), priors, (0.1, 0.2)).tolist() == [[8.0, 16.0, 12.0, 24.0]]
    loc = torch.tensor([[[1.0, -2.0, math.log(2) / 0.2, 0.0]]])  # batch dim passes through
    box = decode_center_size(loc, priors, (0.1, 0.2))[0, 0].numpy()
    centre = (10 + 1 * 0.1 * 4, 20 - 2 * 0.1 * 8)
    np.testing.assert_allclose(box, [centre[0] - 4, centre[1] - 4, centre[0] + 4, centre[1] + 4], rtol=1e-6)
