"""The enhance stage: template alignment, paste inside the lower face only, and no flicker on still faces.

The restoration networks' parity is tested in tests/models; here stand-ins
with the property that matters are used: an identity (the round trip must
give the picture back) and a "GAN" whose output detail jumps with tiny input
changes (what makes per-frame restoration flicker).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine_windows import owned, tracked_windows
from lipstream.config import WindowConfig
from lipstream.pipeline.engines.shared.enhance import TEMPLATE_512, EnhanceConfig, EnhanceStage, similarity
from lipstream.pipeline.engines.shared.face_region import LOWER_FACE, lower_face_mask
from lipstream.pipeline.engines.shared.rearticulate import WarpLips
from lipstream.stream.frames import Window

WINDOW = WindowConfig(size=16, overlap=8)


class Identity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Flicker(nn.Module):
    """Adds +-0.08 (about 10 levels) of texture that flips with input changes far below a level."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + 0.08 * torch.sign(torch.sin(4000.0 * x.mean(dim=1, keepdim=True)))


class AllFace(nn.Module):
    """ParseNet stand-in: class 1 (skin) everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(19))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.bias.view(1, 19, 1, 1).expand(x.shape[0], 19, x.shape[2], x.shape[3]).clone()
        logits[:, 1] = 1.0
        return logits, x


@pytest.fixture(scope="module")
def warped() -> list:
    """Windows of the sample after the warp engine: edited frames, as an engine hands them on."""
    stage = WarpLips()
    return [stage(w) for w in tracked_windows(40, WINDOW)]


def run(windows, network: nn.Module, config: EnhanceConfig = EnhanceConfig()) -> list:
    stage = EnhanceStage(network.eval(), AllFace().eval(), "gpen", config=config)
    return owned([stage(w) for w in windows])


def test_similarity_recovers_a_known_alignment():
    angle, scale, shift = 0.3, 0.7, np.array([40.0, -25.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (TEMPLATE_512 - shift) @ np.linalg.inv(rotation).T  # where the template's points sit in a frame
    matrix = similarity(points, TEMPLATE_512)
    np.testing.assert_allclose(points @ matrix[:, :2].T + matrix[:, 2], TEMPLATE_512, atol=1e-9)


def test_the_round_trip_gives_the_face_back_and_nothing_outside_the_lower_face_changes(warped):
    before = owned(warped)
    after = run(warped, Identity())
    assert len(after) == len(before) and all(a.index == b.index for a, b in zip(after, before))
    for a, b in zip(after, before):
        landmarks = b.face.landmarks
        height, width = b.size[1], b.size[0]
        region = lower_face_mask(landmarks, (0, 0, width, height), 0.0) > 0
        grown = np.zeros_like(region)
        ys, xs = np.nonzero(region)
        pad = int(0.15 * (xs.max() - xs.min()))  # the mask's feather and the Laplacian reach
        grown[max(ys.min() - pad, 0) : ys.max() + pad, max(xs.min() - pad, 0) : xs.max() + pad] = True
        diff = np.abs(a.rgb().astype(int) - b.rgb().astype(int)).max(axis=2)
        assert not diff[~grown].any(), f"frame {a.index} changed outside the lower face"
        assert diff[region].mean() < 3.0, f"frame {a.index}: the warp round trip lost detail ({diff[region].mean():.2f})"
    assert len(LOWER_FACE) > 10


def mouth_flicker(frames) -> float:
    """Mean |frame-to-frame difference| inside the mouth's box."""
    diffs = []
    for previous, current in zip(frames, frames[1:]):
        xy = current.face.landmarks[[61, 291, 0, 17], :2]
        x0, y0 = np.floor(xy.min(axis=0)).astype(int) - 4
        x1, y1 = np.ceil(xy.max(axis=0)).astype(int) + 4
        diffs.append(np.abs(current.rgb()[y0:y1, x0:x1].astype(float) - previous.rgb()[y0:y1, x0:x1]).mean())
    return float(np.mean(diffs))


def test_restoration_does_not_make_the_mouth_flicker(warped):
    base = mouth_flicker(owned(warped))
    steady = mouth_flicker(run(warped, Flicker()))
    assert steady <= 1.2 * base, (steady, base)


def test_a_still_face_stays_still(warped):
    """One picture with sensor noise (1 level) for 12 frames: the naive restoration flickers, ours does not."""
    first = owned(warped)[0]
    rng = np.random.default_rng(3)
    still = [
        first.__class__(i, i, first.time_base, i, image=np.clip(first.rgb() + rng.normal(0, 1.0, first.rgb().shape), 0, 255).astype(np.uint8)).with_face(first.face)
        for i in range(12)
    ]
    windows = [Window(0, tuple(still), 0, len(still), None, True)]
    base = mouth_flicker(still)
    steady = mouth_flicker(run(windows, Flicker()))
    naive = mouth_flicker(run(windows, Flicker(), EnhanceConfig(keep=1.0)))
    assert naive > 3 * base, f"the stand-in must flicker without the smoothing ({naive:.2f} vs {base:.2f})"
    assert steady <= 1.2 * base + 0.5, (steady, base)


def test_frames_no_engine_edited_pass_as_they_are(warped):
    plain = tracked_windows(16, WINDOW)
    stage = EnhanceStage(Identity().eval(), AllFace().eval(), "gpen")
    for window in plain:
        out = stage(window)
        assert all(a is b for a, b in zip(out.frames, window.frames))


def _max_level_difference(a_frames, b_frames) -> int:
    return max(int(np.abs(a.rgb().astype(int) - b.rgb().astype(int)).max()) for a, b in zip(a_frames, b_frames))


def test_half_precision_networks_give_the_float32_frames(warped):
    """The stage feeds a float16 network float16 and reads float32 back: same frames within one level."""
    full = run(warped[:2], Identity())
    stage = EnhanceStage(Identity().half().eval(), AllFace().half().eval(), "gpen")
    half = owned([stage(w) for w in warped[:2]])
    assert _max_level_difference(full, half) <= 1


def test_float16_only_on_cuda_and_only_where_parity_was_measured():
    from lipstream.models import checkpoints
    from lipstream.models._loading import inference_dtype

    entries = {name: c for name, c in checkpoints().items() if c.kind == "network"}
    for name, entry in entries.items():
        assert inference_dtype(name, "cpu") == torch.float32
        assert inference_dtype(name, "cuda:1") == (torch.float16 if entry.half else torch.float32)
    assert all(isinstance(entry.half, bool) for entry in entries.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_cuda_half_smoke(warped):
    """On a GPU: the stage on float16 CUDA networks gives the CPU float32 frames within one level."""
    full = run(warped[:2], Identity())
    stage = EnhanceStage(Identity().half().cuda().eval(), AllFace().half().cuda().eval(), "gpen", device="cuda")
    assert _max_level_difference(full, owned([stage(w) for w in warped[:2]])) <= 1
