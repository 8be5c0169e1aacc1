"""Resizes as matrices against OpenCV: INTER_LINEAR and INTER_AREA for a padded batch of sizes."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from lipstream.pipeline.engines.shared.resample_torch import Kind, resample, resize_weights, take

SIZES = [(450, 400), (451, 397), (192, 288), (97, 130), (60, 80)]


def resized(images: list[np.ndarray], out: list[tuple[int, int]], kinds: list[Kind]) -> list[np.ndarray]:
    """Each (h, w, 3) image resized to its (h, w) in `out`, through one padded batch."""
    height, width = max(i.shape[0] for i in images), max(i.shape[1] for i in images)
    batch = np.zeros((len(images), 3, height, width), np.float32)
    for n, image in enumerate(images):
        batch[n, :, : image.shape[0], : image.shape[1]] = image.transpose(2, 0, 1)
    padded_out = (max(h for h, _ in out), max(w for _, w in out))
    rows, cols = resize_weights([i.shape[:2] for i in images], out, kinds, (height, width), padded_out, torch.device("cpu"))
    got = resample(torch.from_numpy(batch), rows, cols).permute(0, 2, 3, 1).numpy()
    return [got[n, :h, :w] for n, (h, w) in enumerate(out)]


def worst(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())


def test_shrinking_to_96_matches_inter_area_and_inter_linear_within_one_level():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES]
    for kind, flag in (("area", cv2.INTER_AREA), ("linear", cv2.INTER_LINEAR)):
        got = resized(images, [(96, 96)] * len(images), [kind] * len(images))
        for image, g in zip(images, got):
            # OpenCV's 8-bit resizes round through fixed point (INTER_LINEAR's 11-bit weights,
            # INTER_AREA's integer path at whole scales): 1 level at most.
            assert worst(np.rint(g), cv2.resize(image, (96, 96), interpolation=flag)) <= 1, (kind, image.shape)


def test_growing_from_96_is_inter_linear_and_bilinear_without_aligned_corners():
    rng = np.random.default_rng(1)
    faces = [(rng.random((96, 96, 3)) * 255).astype(np.float32) for _ in SIZES]
    got = resized(faces, SIZES, ["linear"] * len(SIZES))
    for face, g, (h, w) in zip(faces, got, SIZES):
        assert worst(g, cv2.resize(face, (w, h), interpolation=cv2.INTER_LINEAR)) < 1e-3
        torch_bilinear = F.interpolate(torch.from_numpy(face).permute(2, 0, 1)[None], size=(h, w), mode="bilinear", align_corners=False)
        assert worst(g, torch_bilinear[0].permute(1, 2, 0).numpy()) < 1e-2  # torch's float source positions: 0.002 off


def test_take_crops_each_sample_at_its_own_offset():
    images = torch.arange(2 * 1 * 6 * 7).reshape(2, 1, 6, 7)
    rows = torch.tensor([[0, 1, 2], [3, 4, 5]])
    cols = torch.tensor([[1, 2], [5, 6]])
    got = take(images, rows, cols)
    assert torch.equal(got[0, 0], images[0, 0, 0:3, 1:3]) and torch.equal(got[1, 0], images[1, 0, 3:6, 5:7])
