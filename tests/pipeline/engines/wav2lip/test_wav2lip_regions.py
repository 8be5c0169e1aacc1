"""The Wav2Lip stage's torch region path against its OpenCV path, on the CPU (and a CUDA smoke test)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from golden_fill import fill, load_golden
from lipstream.config import WindowConfig
from lipstream.models.wav2lip import Wav2Lip
from lipstream.pipeline.engines.shared.face_region import face_box
from lipstream.pipeline.engines.shared.region_torch import upload_regions
from lipstream.pipeline.engines.wav2lip.config import Wav2LipConfig
from lipstream.pipeline.engines.wav2lip.regions import network_input
from lipstream.pipeline.engines.wav2lip.stage import Wav2LipStage, _network_input
from lipstream.stream.frames import Frame, Window
from engine_windows import owned, tracked_windows

MANIFEST, _ = load_golden("wav2lip")


@pytest.fixture(scope="module")
def network() -> Wav2Lip:
    return fill(Wav2Lip(), MANIFEST["fill"]["mode"], MANIFEST["fill"]["gain"]).eval()


@pytest.fixture(scope="module")
def tracked() -> list[Window]:
    return tracked_windows(5, WindowConfig(size=5, overlap=2))


def run(network: torch.nn.Module, windows: list[Window], regions: str, device: str = "cpu") -> list[Frame]:
    stage = Wav2LipStage(network, Wav2LipConfig(regions=regions), device=device)  # type: ignore[arg-type]
    return owned([stage(w) for w in windows])


def boxes_of(windows: list[Window]) -> tuple[list[Frame], list[tuple[int, int, int, int]]]:
    frames, boxes = [], []
    for w in windows:
        for k in range(w.own_start, w.own_stop):
            frames.append(w.frames[k])
            boxes.append(face_box(list(w.frames), k, pads=Wav2LipConfig().pads))
    return frames, boxes


def test_network_input_matches_the_opencv_one_within_one_level(tracked):
    frames, boxes = boxes_of(tracked)
    # Odd sizes too, and boxes under 96 px on a side (INTER_LINEAR there, as OpenCV's path).
    boxes += [(x0 + 1, y0 + 3, x1, y1 - 1) for x0, y0, x1, y1 in boxes[:2]] + [(250, 350, 330, 420)]
    frames += frames[:3]
    batch = upload_regions(frames, boxes, "cpu")
    got = network_input(batch.crops(), batch.sizes).numpy()
    want = np.stack([_network_input(f.rgb_region(b)) for f, b in zip(frames, boxes)])
    worst = np.abs(got - want).max() * 255
    assert worst <= 1.0 + 1e-3, f"{worst} levels"


def test_torch_path_on_the_cpu_gives_the_opencv_path_frames_within_two_levels(network, tracked):
    opencv = run(network, tracked, "opencv")
    on_torch = run(network, tracked, "torch")
    changed = 0
    for a, b, src in zip(opencv, on_torch, owned(tracked)):
        assert a.patch is not None and b.patch is not None and a.patch.box == b.patch.box
        diff = np.abs(a.rgb().astype(int) - b.rgb().astype(int))
        assert diff.max() <= 2, f"frame {a.index}: {diff.max()} levels, {(diff > 0).sum()} pixels differ"
        changed += int((a.rgb() != src.rgb()).any())
    assert changed == len(opencv)


def test_regions_option_is_checked():
    with pytest.raises(ValueError, match="regions"):
        Wav2LipConfig(regions="gpu")  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_cuda_stage_runs_the_torch_path_and_matches_the_cpu(network, tracked):
    on_cpu = run(network, tracked[:1], "opencv")
    on_cuda = run(copy.deepcopy(network).to("cuda"), tracked[:1], "auto", "cuda")
    for a, b in zip(on_cpu, on_cuda):
        # Another device's convolutions: the generated faces differ in their last bits, a few levels at most.
        assert np.abs(a.rgb().astype(int) - b.rgb().astype(int)).max() <= 4
