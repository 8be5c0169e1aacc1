"""Face regions on a torch device: the exact pixels of `Frame.rgb_region`, and patches that land as `with_patch`'s."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest
import torch

from lipstream.pipeline.engines.shared.blend import blend_region
from lipstream.pipeline.engines.shared.pyramid_torch import blend_regions
from lipstream.pipeline.engines.shared.region_torch import download_patches, upload_regions, use_torch_regions
from lipstream.stream.frames import Frame
from lipstream.stream.source import VideoSource
from lipstream.stream.timeline import output_frames
from media import SAMPLE_VIDEO

BOXES = [(231, 317, 333, 446), (240, 320, 341, 441), (0, 1, 77, 64), (463, 899, 540, 960)]  # odd and even corners, frame edges


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    """Decoded 4:2:0 frames of the sample with no RGB converted yet."""
    with VideoSource(SAMPLE_VIDEO) as source:
        decoded = list(islice(output_frames(source, "video", None), len(BOXES)))
    assert all(f.i420_planes() is not None for f in decoded)
    return decoded


def crops_of(frames: list[Frame], boxes: list, device: str = "cpu") -> list[np.ndarray]:
    batch = upload_regions(frames, boxes, device)
    host = batch.crops().permute(0, 2, 3, 1).cpu().numpy()
    return [host[n, :h, :w] for n, (h, w) in enumerate(batch.sizes)]


def test_regions_are_converted_on_the_device_bit_exact(frames):
    for frame, box, got in zip(frames, BOXES, crops_of(frames, BOXES)):
        np.testing.assert_array_equal(got, frame.rgb_region(box), err_msg=f"box {box}")
    assert all(f._rgb is None for f in frames)  # no frame was converted whole on the way


def test_edited_frames_travel_as_rgb(frames):
    edited = [f.with_patch(b, np.full((b[3] - b[1], b[2] - b[0], 3), 200, np.uint8)) for f, b in zip(frames, BOXES)]
    assert edited[0].i420_planes() is None
    grown = [(x0 - 5, y0 - 5, x1, y1) for x0, y0, x1, y1 in BOXES]  # half patch, half decoded pixels
    for frame, box, got in zip(edited, grown, crops_of(edited, grown)):
        np.testing.assert_array_equal(got, frame.rgb_region(box), err_msg=f"box {box}")


def test_patches_land_as_with_patch_would_put_them(frames):
    batch = upload_regions(frames, BOXES, "cpu")
    crops = batch.crops()
    changed = (255 - crops.int()).to(torch.uint8)  # every box pixel different from the frame's
    for frame, box, (wide, pixels) in zip(frames, BOXES, download_patches(batch, batch.put(changed))):
        want = frame.with_patch(box, 255 - frame.rgb_region(box))
        got = frame.with_patch(wide, pixels)
        assert got.patch.box == want.patch.box
        np.testing.assert_array_equal(got.patch.rgb, want.patch.rgb, err_msg=f"box {box}")


def test_one_function_chooses_the_path():
    assert not use_torch_regions("cpu") and use_torch_regions("cuda:0") and use_torch_regions(torch.device("cuda", 1))
    assert use_torch_regions("cpu", "torch") and not use_torch_regions("cuda:0", "opencv")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_cuda_regions_and_blend_match_the_cpu(frames):
    boxes = BOXES[:2]
    for got, frame, box in zip(crops_of(frames, boxes, "cuda"), frames, boxes):
        np.testing.assert_array_equal(got, frame.rgb_region(box))
    batch = upload_regions(frames, boxes, "cuda")
    crops = batch.crops()
    src = crops.flip(3)  # mirrored faces as the edit
    mask = torch.zeros(len(boxes), 1, *crops.shape[2:], device="cuda")
    mask[:, :, 30:90, 20:80] = 1.0
    blended = blend_regions(crops, src, mask, batch.sizes).cpu().permute(0, 2, 3, 1).numpy()
    for n, (h, w) in enumerate(batch.sizes):
        base = crops[n, :, :h, :w].permute(1, 2, 0).cpu().numpy()
        want = blend_region(base, src[n, :, :h, :w].permute(1, 2, 0).cpu().numpy(), mask[n, 0, :h, :w].cpu().numpy())
        assert np.abs(blended[n, :h, :w].astype(int) - want.astype(int)).max() <= 1
