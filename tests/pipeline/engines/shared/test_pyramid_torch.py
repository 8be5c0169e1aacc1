"""The batched torch Laplacian blend against `blend_region` (OpenCV): within 1 level, whatever the sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lipstream.pipeline.engines.shared.blend import blend_region, pyramid_levels
from lipstream.pipeline.engines.shared.pyramid_torch import blend_regions


def batched(regions: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """blend_regions over one zero-padded batch of (base, src, mask), cut back to each region."""
    height = max(b.shape[0] for b, _, _ in regions)
    width = max(b.shape[1] for b, _, _ in regions)
    base = np.zeros((len(regions), height, width, 3), np.uint8)
    src, mask = base.copy(), np.zeros((len(regions), 1, height, width), np.float32)
    for n, (b, s, m) in enumerate(regions):
        h, w = m.shape
        base[n, :h, :w], src[n, :h, :w], mask[n, 0, :h, :w] = b, s, m
    sizes = [m.shape for _, _, m in regions]
    out = blend_regions(torch.from_numpy(base).permute(0, 3, 1, 2), torch.from_numpy(src).permute(0, 3, 1, 2), torch.from_numpy(mask), sizes)
    host = out.permute(0, 2, 3, 1).numpy()
    return [host[n, :h, :w] for n, (h, w) in enumerate(sizes)]


def assert_within_one(got: np.ndarray, want: np.ndarray, what: str) -> int:
    diff = np.abs(got.astype(int) - want.astype(int))
    worst = int(diff.max())
    assert worst <= 1, f"{what}: {worst} levels at {np.unravel_index(diff.argmax(), diff.shape)}, {(diff > 1).sum()} pixels over 1"
    return worst


def face_like(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth shaded 'face' with texture, a brighter shifted copy as the source, a feathered ellipse mask."""
    y, x = np.mgrid[:h, :w].astype(np.float32)
    shade = 90 + 80 * np.exp(-(((x - w / 2) / (0.4 * w)) ** 2 + ((y - h / 2) / (0.5 * h)) ** 2))
    base = np.clip(shade[..., None] * (1.0, 0.8, 0.7) + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    src = np.clip(np.roll(base.astype(np.float32), 3, axis=1) * 1.1 + 12, 0, 255).astype(np.uint8)
    inside = ((x - w / 2) / (0.35 * w)) ** 2 + ((y - 0.7 * h) / (0.2 * h)) ** 2
    mask = np.clip((1.2 - inside) / 0.4, 0, 1).astype(np.float32)
    return base, src, mask


def test_random_regions_of_different_sizes_and_depths():
    rng = np.random.default_rng(3)
    sizes = [(450, 400), (451, 397), (133, 130), (37, 61), (20, 18), (9, 13)]
    assert len({pyramid_levels(h, w) for h, w in sizes}) == 5  # several pyramid depths in one batch
    regions = [
        (
            rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
            rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
            (rng.random((h, w)) * 1.4 - 0.2).astype(np.float32),  # out of range on purpose: clipped like OpenCV's
        )
        for h, w in sizes
    ]
    for (h, w), got, (b, s, m) in zip(sizes, batched(regions), regions):
        assert_within_one(got, blend_region(b, s, m), f"random {h}x{w}")


def test_face_like_regions_and_the_exact_edges():
    rng = np.random.default_rng(4)
    regions = [face_like(h, w, rng) for h, w in [(305, 263), (306, 265), (300, 259)]]
    regions.append((regions[0][0], regions[0][1], np.zeros((305, 263), np.float32)))
    got = batched(regions)
    for n, (b, s, m) in enumerate(regions):
        assert_within_one(got[n], blend_region(b, s, m), f"face {n}")
        outside = m <= 0
        np.testing.assert_array_equal(got[n][outside], b[outside])  # no change where the mask is zero, as OpenCV's
