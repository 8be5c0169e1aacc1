"""FAN 2DFAN-4 at parity with the golden (tests/golden/fan2d): network, flip pass, heatmap decoding,
crop, the registry entry and the `LandmarkModel` adapter. One forward costs ~0.6-2 s on 2 cores,
so the forwards are shared through module-scoped fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from torch import nn

_TESTS = str(Path(__file__).resolve().parents[1])  # holds golden_fill
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
from golden_fill import (  # noqa: E402
    assert_close,
    assert_golden_output,
    assert_same_weights,
    fill,
    forward_with_hooks,
    load_golden,
    state_dict_layout,
)

from lipstream.models import _loading  # noqa: E402
from lipstream.models.face_types import Detection, LandmarkModel, Landmarks  # noqa: E402
from lipstream.models.fan import (  # noqa: E402
    FAN,
    FLIP_68,
    NUM_PARAMS,
    FanLandmarks,
    box_center_scale,
    crop,
    decode_heatmaps,
    flip_heatmaps,
    remap,
    to_image,
)

CLIP = Path(__file__).resolve().parents[1] / "data" / "synth_astronaut" / "clip.mp4"
MANIFEST, GOLDEN = load_golden("fan2d")
TOL = float(MANIFEST["tolerance"])
POST = MANIFEST["post"]


@pytest.fixture(scope="module")
def model() -> FAN:
    return fill(FAN(), MANIFEST["fill"]["mode"], MANIFEST["fill"]["gain"]).eval()


@pytest.fixture(scope="module")
def run(model: FAN) -> tuple[list[torch.Tensor], dict[str, np.ndarray]]:
    return forward_with_hooks(model, MANIFEST["hooks"], torch.from_numpy(GOLDEN["in/image"]))


@pytest.fixture(scope="module")
def registry_model(model: FAN, tmp_path_factory) -> FAN:
    """FAN loaded through the registry from a filled file in the 2017 layout (no BatchNorm counters)."""
    folder = tmp_path_factory.mktemp("fan_weights")
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, folder / "2DFAN4-11f355bf06.pth.tar")
    _loading.clear_cache()
    try:
        return _loading.load_model("fan2d", weights_dirs=[folder])
    finally:
        _loading.clear_cache()


@pytest.fixture(scope="module")
def flip_sum(run, registry_model: FAN) -> torch.Tensor:
    """The API's flip test-time augmentation; the mirrored pass runs on the registry-loaded copy."""
    with torch.no_grad():
        mirrored = registry_model(torch.from_numpy(GOLDEN["in/image"]).flip(-1))[-1]
    return run[0][-1] + flip_heatmaps(mirrored)


def test_input_follows_manifest_rule() -> None:
    image = torch.rand((1, 3, 256, 256), generator=torch.Generator().manual_seed(501))
    assert "manual_seed(501)" in MANIFEST["inputs"][0]["how_generated"]
    assert image.numpy().tobytes() == GOLDEN["in/image"].tobytes()


def test_sample_indices_follow_manifest_rule() -> None:
    idx = torch.randint(0, 68 * 64 * 64, (4096,), generator=torch.Generator().manual_seed(1234)).numpy()
    for k in range(4):
        assert np.array_equal(GOLDEN[f"outsample_idx/heatmaps_stack{k}"], idx)


def test_state_dict_matches_manifest(model: FAN) -> None:
    assert state_dict_layout(model) == MANIFEST["state_dict"]


def test_parameter_count(model: FAN) -> None:
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS == MANIFEST["params"]


def test_stacks_match_golden(run) -> None:
    stacks, hooks = run
    assert len(stacks) == 4 and all(s.shape == (1, 68, 64, 64) for s in stacks)
    for k, value in enumerate(stacks):
        assert_golden_output(f"heatmaps_stack{k}", value, GOLDEN, TOL)
    for name, value in hooks.items():
        assert_close(f"hook/{name}", value, GOLDEN[f"hook/{name}"], TOL)


def test_registry_copy_and_flip_pass_match_golden(registry_model: FAN, model: FAN, flip_sum: torch.Tensor) -> None:
    assert_same_weights(registry_model, model)
    assert not registry_model.training
    assert_golden_output("heatmaps_flip_augmented", flip_sum, GOLDEN, TOL)


@pytest.mark.parametrize("tag", ["noflip", "flip"])
def test_decoding_matches_post(run, flip_sum: torch.Tensor, tag: str) -> None:
    heat = run[0][-1] if tag == "noflip" else flip_sum
    center, scale = box_center_scale(POST["box"])
    np.testing.assert_allclose(center, POST["center"], rtol=1e-7)
    assert scale == pytest.approx(POST["scale"], rel=1e-12)
    points, scores = decode_heatmaps(heat.numpy())
    exact = MANIFEST["post_tolerance"]
    assert_close(f"{tag}_pts64", points[0], GOLDEN[f"post/{tag}_pts64"], exact)
    assert_close(f"{tag}_pts_img", to_image(points[0], center, scale), GOLDEN[f"post/{tag}_pts_img"], exact)
    # scores are heatmap values: as close as the heatmaps themselves
    assert_close(f"{tag}_scores", scores[0], GOLDEN[f"post/{tag}_scores"], TOL)


def test_flip_table_is_the_68_point_mirror() -> None:
    assert sorted(FLIP_68) == list(range(68))
    assert all(FLIP_68[FLIP_68[i]] == i for i in range(68))  # an involution
    assert [i for i in range(68) if FLIP_68[i] == i] == [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]
    pairs = {0: 16, 16: 0, 17: 26, 21: 22, 31: 35, 36: 45, 39: 42, 40: 47, 48: 54, 55: 59, 60: 64, 65: 67}
    assert all(FLIP_68[a] == b for a, b in pairs.items())
    heat = torch.rand(2, 68, 64, 64, generator=torch.Generator().manual_seed(3))
    assert torch.equal(flip_heatmaps(flip_heatmaps(heat)), heat)
    assert torch.equal(flip_heatmaps(heat)[:, 16, :, 0], heat[:, 0, :, 63])


def test_decode_recovers_constructed_peaks() -> None:
    heat = np.zeros((1, 5, 64, 64), np.float32)
    heat[0, 0, 30, 20], heat[0, 0, 30, 21], heat[0, 0, 31, 20] = 1.0, 0.5, 0.4  # right and lower neighbours higher
    heat[0, 1, 10, 40], heat[0, 1, 10, 39], heat[0, 1, 9, 40] = 2.0, 0.5, 0.3  # left and upper neighbours higher
    heat[0, 2, 12, 12] = 1.5  # equal neighbours: no shift
    heat[0, 3, 0, 5], heat[0, 3, 0, 6] = 1.0, 0.9  # border peak: no shift
    heat[0, 4, 7, 7] = heat[0, 4, 50, 50] = 3.0  # tie: the first maximum wins
    points, scores = decode_heatmaps(heat)
    expected = [[20.25, 30.25], [39.75, 9.75], [12.0, 12.0], [5.0, 0.0], [7.0, 7.0]]
    np.testing.assert_array_equal(points[0], np.float32(expected) + np.float32(0.5))
    np.testing.assert_array_equal(scores[0], [1.0, 2.0, 1.5, 1.0, 3.0])


def test_crop_and_back_to_image_constructed() -> None:
    """scale 1.28, centre (128, 128): the 256 crop is the image itself (with the official one-pixel offset)."""
    image = np.random.default_rng(0).integers(0, 256, (300, 320, 3), dtype=np.uint8)
    center, scale = np.float32([128.0, 128.0]), 256 / 200
    np.testing.assert_array_equal(crop(image, center, scale), cv2.resize(image[1:256, 1:256], (256, 256)))
    # heatmap pixels are 4 image pixels; the image point is truncated towards zero
    np.testing.assert_array_equal(to_image(np.float32([[20.75, 10.25], [0.1, 63.9]]), center, scale), [[83, 41], [0, 255]])
    # a window reaching past the top-left corner is zero there
    shifted = crop(image, np.float32([28.0, 128.0]), scale)
    assert not shifted[:, :90].any() and shifted[:, 120:].any()


def test_box_center_scale() -> None:
    center, scale = box_center_scale([10, 20, 110, 220])
    assert center.dtype == np.float32 and center.tolist() == [60.0, pytest.approx(120.0 - 24.0)]
    assert scale == pytest.approx(300 / 195)
    with pytest.raises(ValueError, match="no size"):
        box_center_scale([5, 5, 5, 5])


def test_remap_accepts_plain_and_prefixed() -> None:
    weight = torch.zeros(1)
    assert remap({"conv1.weight": weight}) == {"conv1.weight": weight}
    checkpoint = {"module.conv1.weight": weight}
    assert remap(checkpoint) == {"conv1.weight": weight} and list(checkpoint) == ["module.conv1.weight"]


# ------------------------------------------------------------------ adapter


class _Stub(nn.Module):
    """Stands in for FAN: returns the heatmaps set by the test (last stack) and records its inputs."""

    def __init__(self, heat: torch.Tensor, mirrored: torch.Tensor | None = None) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))
        self.heat, self.mirrored = heat, mirrored
        self.inputs: list[torch.Tensor] = []

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        self.inputs.append(image.clone())
        second = len(self.inputs) % 2 == 0 and self.mirrored is not None
        heat = self.mirrored if second else self.heat
        return [torch.zeros_like(heat), heat.expand(image.shape[0], -1, -1, -1)]


def _peaks() -> torch.Tensor:
    heat = torch.zeros(1, 68, 64, 64)
    for k in range(68):
        heat[0, k, 10 + k % 40, 5 + k // 2] = 0.8
    heat[0, 0, 30, 21] = 0.5  # landmark 0 peaks at (x 20, y 30) -> shift right
    heat[0, 0, 30, 20] = 0.9
    return heat


def test_adapter_maps_heatmap_peaks_to_frame_pixels() -> None:
    stub = _Stub(_peaks()).eval()
    fan = FanLandmarks(stub, flip=False)
    assert isinstance(fan, LandmarkModel)
    box = Detection(100, 80, 200, 180, 0.9)  # centre (150, 130 - 12), scale 200 / 195
    frame = np.full((300, 320, 3), 7, np.uint8)
    frame[:, :, 0] = 200
    result = fan.landmarks(frame, box)
    assert isinstance(result, Landmarks) and result.points.shape == (68, 3)
    assert not result.points[:, 2].any()
    # landmark 0 peaks at heatmap (x 20, y 30), right neighbour higher: (20.75, 30.5) after the shift and -0.5;
    # a heatmap pixel is 200 * scale / 64 frame pixels around the crop centre, truncated towards zero
    side = 200 * (200 / 195)
    expected = [int(20.75 * side / 64 + 150 - side / 2), int(30.5 * side / 64 + 118 - side / 2)]
    assert expected == [113, 113] and result.xy[0].tolist() == expected
    center, scale = box_center_scale(box.box)
    points, _ = decode_heatmaps(_peaks().numpy())
    np.testing.assert_array_equal(result.xy, to_image(points[0], center, scale))
    assert result.presence == pytest.approx((0.9 + 67 * 0.8) / 68)
    # the network saw the official crop of the frame, RGB / 255
    (seen,) = stub.inputs
    assert seen.shape == (1, 3, 256, 256)
    np.testing.assert_allclose(seen[0, :, 100, 100].numpy(), [200 / 255, 7 / 255, 7 / 255], rtol=1e-6)


def test_adapter_flip_pass_adds_the_mirrored_heatmaps() -> None:
    heat, mirrored = _peaks(), torch.rand(1, 68, 64, 64, generator=torch.Generator().manual_seed(5))
    stub = _Stub(heat, mirrored).eval()
    fan = FanLandmarks(stub, flip=True)
    crops = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(6))
    combined = fan.heatmaps(crops)
    assert torch.equal(stub.inputs[1], crops.flip(-1))
    assert torch.equal(combined, heat + flip_heatmaps(mirrored))


def test_adapter_batch_and_landmark_roi() -> None:
    stub = _Stub(_peaks()).eval()
    fan = FanLandmarks(stub, flip=False, max_batch=2)
    frame = np.zeros((200, 240, 3), np.uint8)
    box = Detection(60, 40, 180, 170, 0.9)
    as_points = Landmarks(np.array([[60.0, 40.0, 0.0], [180.0, 170.0, 0.0], [100.0, 90.0, 0.0]]), 1.0)
    results = fan.landmarks_batch([(frame, box), (frame, as_points), (frame, box)])
    assert [len(x) for x in stub.inputs] == [2, 1]
    np.testing.assert_array_equal(results[0].points, results[1].points)  # same bounding box -> same crop
    np.testing.assert_array_equal(results[0].points, results[2].points)
    with pytest.raises(ValueError, match="RGB uint8"):
        fan.landmarks(frame.astype(np.float32), box)


def test_adapter_on_a_real_frame_with_filled_weights(model: FAN) -> None:
    with av.open(str(CLIP)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    # the astronaut's face: centre ~(320, 178) in frame 0, ~120 px wide
    box = Detection(260, 110, 380, 250, 0.99)
    fan = FanLandmarks(model, flip=False, device="cpu")
    (result,) = fan.landmarks_batch([(frame, box)])
    assert result.points.shape == (68, 3) and not result.points[:, 2].any()
    assert 0.0 <= result.presence <= 1.0
    # every point lies in the crop window (side 200 * scale around the lifted centre)
    center, scale = box_center_scale(box.box)
    half = 100 * scale
    assert (np.abs(result.xy - center) <= half + 1).all()
    # it is the official pipeline: crop, /255, last stack, decode, back to the frame
    crop_in = torch.from_numpy(crop(frame, center, scale)).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        points, scores = decode_heatmaps(model(crop_in)[-1].numpy())
    np.testing.assert_array_equal(result.xy, to_image(points[0], center, scale))
    assert result.presence == pytest.approx(float(np.clip(scores.mean(), 0, 1)), abs=1e-6)
