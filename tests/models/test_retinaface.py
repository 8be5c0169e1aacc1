"""RetinaFace (ResNet-50 and MobileNet-0.25) at parity with the goldens (tests/golden/retinaface_*),
its official decoding, the registry entries and the `FaceDetector` adapter."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from torch import nn

_TESTS = str(Path(__file__).resolve().parents[1])  # holds golden_fill
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
from golden_fill import assert_close, assert_same_weights, fill, forward_with_hooks, load_golden, state_dict_layout  # noqa: E402

from lipstream.models import _loading  # noqa: E402
from lipstream.models._registry import CHECKPOINTS  # noqa: E402
from lipstream.models.face_types import Detection, FaceDetector  # noqa: E402
from lipstream.models.retinaface import (  # noqa: E402
    CONFIGS,
    NUM_PARAMS,
    RetinaFace,
    RetinaFaceDetector,
    decode,
    detections,
    prior_boxes,
    remap,
)

CLIP = Path(__file__).resolve().parents[1] / "data" / "synth_astronaut" / "clip.mp4"
CASES = {"retinaface_r50": "resnet50", "retinaface_mnet": "mobilenet0.25"}
GOLDENS = {name: load_golden(name) for name in CASES}


def _filled(name: str) -> RetinaFace:
    manifest, _ = GOLDENS[name]
    return fill(RetinaFace(CASES[name]), manifest["fill"]["mode"], manifest["fill"]["gain"]).eval()


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request) -> dict:
    """One golden: the filled network, its outputs and pooled hooks on the golden input."""
    name = request.param
    manifest, golden = GOLDENS[name]
    model = _filled(name)
    outputs, captured = forward_with_hooks(model, manifest["hooks"], torch.from_numpy(golden["in/image_minus_mean"]))
    return {"name": name, "manifest": manifest, "golden": golden, "model": model, "outputs": outputs, "hooks": captured}


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """The first frame of the synthetic astronaut clip (640x360, one face near the centre)."""
    with av.open(str(CLIP)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def test_input_follows_manifest_rule() -> None:
    image = torch.rand((1, 3, 150, 210), generator=torch.Generator().manual_seed(401)) * 255 - torch.tensor(
        [104.0, 117.0, 123.0]
    ).view(1, 3, 1, 1)
    for manifest, golden in GOLDENS.values():
        assert "manual_seed(401)" in manifest["inputs"][0]["how_generated"]
        assert image.numpy().tobytes() == golden["in/image_minus_mean"].tobytes()


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_dict_matches_manifest(name: str) -> None:
    assert state_dict_layout(RetinaFace(CASES[name])) == GOLDENS[name][0]["state_dict"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_parameter_count(name: str) -> None:
    counted = sum(p.numel() for p in RetinaFace(CASES[name]).parameters())
    assert counted == NUM_PARAMS[CASES[name]] == CONFIGS[CASES[name]].num_params == GOLDENS[name][0]["params"]


def test_unknown_config_is_refused() -> None:
    with pytest.raises(ValueError, match="mobilenet0.25"):
        RetinaFace("resnet18")


def test_outputs_match_golden(case) -> None:
    tol = case["manifest"]["tolerance"]
    for name, value in zip(("loc", "conf", "landms"), case["outputs"]):
        assert value.dtype == torch.float32
        assert_close(name, value.numpy(), case["golden"][f"out/{name}"], tol)
    for name, value in case["hooks"].items():
        assert_close(f"hook/{name}", value, case["golden"][f"hook/{name}"], tol)


def test_priors_and_decoding_match_post(case) -> None:
    tol, golden, config = case["manifest"]["post_tolerance"], case["golden"], case["model"].config
    loc, _, landms = case["outputs"]
    priors = prior_boxes(150, 210, config)
    assert_close("priors", priors.numpy(), golden["post/priors"], tol)
    boxes, points = decode(loc[0], landms[0], priors, 150, 210, config.variance)
    assert_close("boxes_px", boxes.numpy(), golden["post/boxes_px"], tol)
    assert_close("landms_px", points.numpy(), golden["post/landms_px"], tol)


def test_detect_pipeline_matches_post(case) -> None:
    (dets,) = detections(*case["outputs"], 150, 210, case["model"].config)
    assert_close("dets", dets.numpy(), case["golden"]["post/dets"], case["manifest"]["post_tolerance"])


def test_detections_one_result_per_image(case) -> None:
    loc, conf, landms = case["outputs"]
    batch = [torch.cat([t, t.flip(0)]) for t in (loc, conf, landms)]
    batch[1][1] = torch.tensor([1.0, 0.0])  # second image: no face anywhere
    first, second = detections(*batch, 150, 210, case["model"].config)
    assert_close("dets (batched)", first.numpy(), case["golden"]["post/dets"], case["manifest"]["post_tolerance"])
    assert second.shape == (0, 15)
    few = detections(loc, conf, landms, 150, 210, case["model"].config, score_threshold=0.5, keep_top_k=3)[0]
    assert len(few) == 3 and bool((few[:, 4] > 0.5).all()) and bool((few[:-1, 4] >= few[1:, 4]).all())


def test_prior_box_layout() -> None:
    config = CONFIGS["resnet50"]
    priors = prior_boxes(64, 96, config).numpy()
    # levels 8x12, 4x6, 2x3 cells, two sizes each
    assert priors.shape == ((8 * 12 + 4 * 6 + 2 * 3) * 2, 4)
    np.testing.assert_allclose(priors[0], [4 / 96, 4 / 64, 16 / 96, 16 / 64])
    np.testing.assert_allclose(priors[1], [4 / 96, 4 / 64, 32 / 96, 32 / 64])
    np.testing.assert_allclose(priors[2], [12 / 96, 4 / 64, 16 / 96, 16 / 64])  # next column
    np.testing.assert_allclose(priors[24], [4 / 96, 12 / 64, 16 / 96, 16 / 64])  # next row
    np.testing.assert_allclose(priors[192], [8 / 96, 8 / 64, 64 / 96, 64 / 64])  # level 2
    # the network makes exactly as many predictions for a size that is not a multiple of 32
    with torch.no_grad():
        loc, _, _ = RetinaFace("mobilenet0.25").eval()(torch.zeros(1, 3, 75, 101))
    assert loc.shape[1] == len(prior_boxes(75, 101, config))


def test_decode_constructed() -> None:
    priors = torch.tensor([[0.5, 0.25, 0.1, 0.2]])
    loc = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    landms = torch.arange(10.0)[None]
    boxes, points = decode(loc, landms, priors, 100, 200, (0.1, 0.2))
    # centre x = 0.5 + 1 * 0.1 * 0.1 = 0.51 -> 102 px; width 0.1 -> 20 px; height 0.2 * 100 = 20 px
    np.testing.assert_allclose(boxes.numpy(), [[92.0, 15.0, 112.0, 35.0]], atol=1e-4)
    expected = [[(0.5 + 2 * k * 0.01) * 200, (0.25 + (2 * k + 1) * 0.02) * 100] for k in range(5)]
    np.testing.assert_allclose(points.numpy(), np.reshape(expected, (1, 10)), atol=1e-4)


@pytest.mark.parametrize("wrap", ["plain", "module", "state_dict"])
def test_remap_unwraps_official_layouts(tmp_path: Path, wrap: str) -> None:
    source = _filled("retinaface_mnet")
    state = source.state_dict()
    if wrap != "plain":
        state = {"module." + k: v for k, v in state.items()}
    if wrap == "state_dict":
        state = {"state_dict": state}
    torch.save(state, tmp_path / "mobilenet0.25_Final.pth")
    loaded = RetinaFace("mobilenet0.25")
    loaded.load_state_dict(remap(torch.load(tmp_path / "mobilenet0.25_Final.pth", weights_only=True)), strict=True)
    assert_same_weights(loaded, source)


def test_remap_is_pure() -> None:
    weight = torch.zeros(1)
    checkpoint = {"module.body.x": weight}
    assert remap(checkpoint) == {"body.x": weight} and list(checkpoint) == ["module.body.x"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_registry_loads_official_layout(tmp_path: Path, monkeypatch, name: str) -> None:
    monkeypatch.delenv("LIPSTREAM_WEIGHTS", raising=False)
    manifest, golden = GOLDENS[name]
    entry = CHECKPOINTS[name]
    assert entry.config == CASES[name] and entry.num_params == manifest["params"]
    wrapped = {"module." + k: v for k, v in _filled(name).state_dict().items()}  # DataParallel keys
    torch.save(wrapped, tmp_path / entry.files[0].filename)
    _loading.clear_cache()
    try:
        model = _loading.load_model(name, weights_dirs=[tmp_path])
        with torch.no_grad():
            loc, conf, landms = model(torch.from_numpy(golden["in/image_minus_mean"]))
        assert_close("loc (registry)", loc.numpy(), golden["out/loc"], manifest["tolerance"])
        assert_close("conf (registry)", conf.numpy(), golden["out/conf"], manifest["tolerance"])
        assert _loading.verify(name, weights_dirs=[tmp_path]).status == "ok"
    finally:
        _loading.clear_cache()


# ------------------------------------------------------------------ adapter


class _Stub(nn.Module):
    """Stands in for RetinaFace: records its input and returns outputs set by the test."""

    def __init__(self, config: str = "resnet50") -> None:
        super().__init__()
        self.config = CONFIGS[config]
        self.anchor = nn.Parameter(torch.zeros(()))
        self.inputs: list[torch.Tensor] = []
        self.hot: dict[int, float] = {}  # prior index -> face probability

    def forward(self, image: torch.Tensor):
        self.inputs.append(image.clone())
        n = len(prior_boxes(image.shape[2], image.shape[3], self.config))
        conf = torch.zeros(image.shape[0], n, 2, dtype=image.dtype)
        conf[..., 0] = 1.0
        for index, p in self.hot.items():
            conf[:, index] = torch.tensor([1 - p, p])
        return conf.new_zeros(image.shape[0], n, 4), conf, conf.new_zeros(image.shape[0], n, 10)


def test_adapter_maps_priors_to_frame_pixels_and_clips() -> None:
    stub = _Stub().eval()
    height, width = 120, 200
    priors = prior_boxes(height, width, stub.config)
    inner = 2 * (5 * 25 + 7) + 1  # level 1, row 5, column 7, size 32: centre (60, 44), 32 px square
    edge = len(priors) - 1  # last level, last cell, size 512: far larger than the frame
    stub.hot = {inner: 0.95, edge: 0.9}
    detector = RetinaFaceDetector(stub)
    assert isinstance(detector, FaceDetector)
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = 10, 20, 30  # R, G, B
    (found,) = detector.detect([frame])
    assert [d.score for d in found] == pytest.approx([0.95, 0.9])
    first, second = found
    assert (first.x0, first.y0, first.x1, first.y1) == pytest.approx((44.0, 28.0, 76.0, 60.0), abs=1e-4)
    np.testing.assert_allclose(first.keypoints, np.tile([60.0, 44.0], (5, 1)), atol=1e-4)
    assert (second.x0, second.y0, second.x1, second.y1) == (0.0, 0.0, width - 1.0, height - 1.0)
    # official pre-processing: BGR order minus (104, 117, 123)
    x = stub.inputs[0]
    assert x.shape == (1, 3, height, width) and x.dtype == torch.float32
    assert x[0, :, 0, 0].tolist() == [30 - 104.0, 20 - 117.0, 10 - 123.0]


def test_adapter_batches_equal_sizes_and_keeps_order() -> None:
    stub = _Stub().eval()
    stub.hot = {19: 0.99}  # cell (1, 1) of 64x64 frames, cell (0, 9) of 128-wide ones
    detector = RetinaFaceDetector(stub, max_batch=2)
    small, large = np.zeros((64, 64, 3), np.uint8), np.zeros((96, 128, 3), np.uint8)
    results = detector.detect([small, large, small, small])
    assert [tuple(x.shape) for x in stub.inputs] == [(2, 3, 64, 64), (1, 3, 64, 64), (1, 3, 96, 128)]
    assert all(len(r) == 1 for r in results)
    assert results[0][0].box.tolist() == results[2][0].box.tolist() != results[1][0].box.tolist()
    assert detector.detect([]) == []
    with pytest.raises(ValueError, match="RGB uint8"):
        detector.detect([np.zeros((64, 64), np.uint8)])
    with pytest.raises(ValueError, match="eval mode"):
        RetinaFaceDetector(_Stub().train())
    with pytest.raises(ValueError, match="load it there"):
        RetinaFaceDetector(stub, device="cuda:1")


def test_adapter_follows_the_network_dtype() -> None:
    stub = _Stub().double().eval()
    stub.hot = {19: 0.99}
    (found,) = RetinaFaceDetector(stub).detect([np.zeros((64, 64, 3), np.uint8)])
    assert stub.inputs[0].dtype == torch.float64 and len(found) == 1
    assert (found[0].x0, found[0].y0) == pytest.approx((0.0, 0.0)) and found[0].x1 == pytest.approx(28.0)


@pytest.mark.parametrize("name, step", [("retinaface_mnet", 2), ("retinaface_r50", 4)])
def test_adapter_on_a_real_frame_with_filled_weights(frame: np.ndarray, name: str, step: int) -> None:
    model = _filled(name)
    detector = RetinaFaceDetector(model, score_threshold=0.6, max_faces=20, device="cpu")
    half = np.ascontiguousarray(frame[::step, ::step])  # 320x180 / 160x90 keep the test quick on 2 cores
    quarter = np.ascontiguousarray(frame[:: 2 * step, :: 2 * step])
    results = detector.detect([half, quarter, half])
    assert len(results) == 3 and results[0] and len(results[0]) <= 20
    for found, image in zip(results, [half, quarter, half]):
        h, w = image.shape[:2]
        for d in found:
            assert isinstance(d, Detection) and d.keypoints.shape == (5, 2)
            assert 0 <= d.x0 <= d.x1 <= w - 1 and 0 <= d.y0 <= d.y1 <= h - 1
            assert 0.6 < d.score <= 1.0
        assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    # the adapter is the official pipeline on the BGR-minus-mean frame, then clipped
    height, width = half.shape[:2]
    bgr = torch.from_numpy(half[..., ::-1].astype(np.float32) - np.float32([104, 117, 123])).permute(2, 0, 1)[None]
    with torch.no_grad():
        (rows,) = detections(*model(bgr), height, width, model.config, score_threshold=0.6, keep_top_k=20)
    want = rows.numpy()
    want[:, [0, 2]] = want[:, [0, 2]].clip(0, width - 1)
    want[:, [1, 3]] = want[:, [1, 3]].clip(0, height - 1)
    got = np.array([[*d.box, d.score, *d.keypoints.ravel()] for d in results[0]])
    assert_close("adapter vs pipeline", got, want, 1e-3)
    assert_close("same frame, same batch", np.array([d.box for d in results[2]]), np.array([d.box for d in results[0]]), 1e-3)
