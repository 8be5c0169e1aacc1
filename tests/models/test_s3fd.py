"""S3FD at parity with the golden (tests/golden/s3fd), its official decoding, the registry entry
and the `FaceDetector` adapter."""

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
from lipstream.models.face_types import Detection, FaceDetector  # noqa: E402
from lipstream.models.s3fd import NUM_PARAMS, S3FD, S3FDDetector, candidates, detections, remap  # noqa: E402

CLIP = Path(__file__).resolve().parents[1] / "data" / "synth_astronaut" / "clip.mp4"
MANIFEST, GOLDEN = load_golden("s3fd")
TOL = float(MANIFEST["tolerance"])
POST_TOL = float(MANIFEST["post_tolerance"])
NAMES = [f"{kind}{level}" for level in range(1, 7) for kind in ("cls", "reg")]


def _filled() -> S3FD:
    return fill(S3FD(), MANIFEST["fill"]["mode"], MANIFEST["fill"]["gain"]).eval()


@pytest.fixture(scope="module")
def model() -> S3FD:
    return _filled()


@pytest.fixture(scope="module")
def run(model: S3FD) -> tuple[list[torch.Tensor], dict[str, np.ndarray]]:
    return forward_with_hooks(model, MANIFEST["hooks"], torch.from_numpy(GOLDEN["in/image_minus_mean"]))


def test_input_follows_manifest_rule() -> None:
    image = torch.rand((1, 3, 160, 224), generator=torch.Generator().manual_seed(301)) * 255 - torch.tensor(
        [104.0, 117.0, 123.0]
    ).view(1, 3, 1, 1)
    assert "manual_seed(301)" in MANIFEST["inputs"][0]["how_generated"]
    assert image.numpy().tobytes() == GOLDEN["in/image_minus_mean"].tobytes()


def test_state_dict_matches_manifest(model: S3FD) -> None:
    assert state_dict_layout(model) == MANIFEST["state_dict"]


def test_parameter_count(model: S3FD) -> None:
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS == MANIFEST["params"]


def test_outputs_match_golden(run) -> None:
    outputs, hooks = run
    assert len(outputs) == 12
    for name, value in zip(NAMES, outputs):
        assert_close(name, value.numpy(), GOLDEN[f"out/{name}"], TOL)
    for name, value in hooks.items():
        assert_close(f"hook/{name}", value, GOLDEN[f"hook/{name}"], TOL)


def test_candidates_match_post(run) -> None:
    (rows,) = candidates(run[0])
    assert_close("candidates", rows.numpy(), GOLDEN["post/candidates"][:, 0], POST_TOL)


def test_final_detections_match_post(run) -> None:
    (dets,) = detections(run[0])
    assert_close("final_dets", dets.numpy(), GOLDEN["post/final_dets"], POST_TOL)


def test_one_result_per_image(run) -> None:
    outputs = [torch.cat([o, o]) for o in run[0]]
    for level in range(6):  # second image: background everywhere
        outputs[2 * level][1, 0], outputs[2 * level][1, 1] = 10.0, -10.0
    first, second = detections(outputs)
    assert_close("final_dets (batched)", first.numpy(), GOLDEN["post/final_dets"], POST_TOL)
    assert second.shape == (0, 5)


def test_anchor_layout_constructed() -> None:
    """One hot position per level: centre stride/2 + index * stride, size 4 * stride, variance decode."""
    shapes = [(8, 10), (4, 5), (2, 3), (3, 4), (2, 2), (1, 1)]
    outputs = []
    for level, (h, w) in enumerate(shapes):
        cls = torch.zeros(1, 2, h, w)
        cls[0, 0] = 5.0
        cls[0, :, h - 1, w - 1] = torch.tensor([0.0, 5.0])  # last position is a face
        reg = torch.zeros(1, 4, h, w)
        reg[0, :, h - 1, w - 1] = torch.tensor([1.0, -1.0, 0.0, np.log(2) / 0.2])
        outputs += [cls, reg]
    (rows,) = candidates(outputs)
    assert len(rows) == 6
    for level, ((h, w), row) in enumerate(zip(shapes, rows.numpy())):
        stride = 2 ** (level + 2)
        cx = stride / 2 + (w - 1) * stride + 0.1 * 4 * stride
        cy = stride / 2 + (h - 1) * stride - 0.1 * 4 * stride
        half_w, half_h = 2 * stride, 4 * stride
        np.testing.assert_allclose(row[:4], [cx - half_w, cy - half_h, cx + half_w, cy + half_h], rtol=1e-6)
        assert row[4] == pytest.approx(1 / (1 + np.exp(-5.0)))


@pytest.mark.parametrize("prefix", ["", "module."])
def test_remap_loads_official_layout(model: S3FD, tmp_path: Path, prefix: str) -> None:
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, tmp_path / "s3fd.pth")
    loaded = S3FD()
    loaded.load_state_dict(remap(torch.load(tmp_path / "s3fd.pth", weights_only=True)), strict=True)
    assert_same_weights(loaded, model)


def test_remap_is_pure() -> None:
    weight = torch.zeros(1)
    checkpoint = {"conv1_1.weight": weight}
    assert remap(checkpoint) == checkpoint and remap(checkpoint) is not checkpoint


def test_registry_loads_official_layout(model: S3FD, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("LIPSTREAM_WEIGHTS", raising=False)
    torch.save(model.state_dict(), tmp_path / "s3fd-619a316812.pth")
    _loading.clear_cache()
    try:
        loaded = _loading.load_model("s3fd", weights_dirs=[tmp_path])
        with torch.no_grad():
            outputs = loaded(torch.from_numpy(GOLDEN["in/image_minus_mean"]))
        for name, value in zip(NAMES, outputs):
            assert_close(f"{name} (registry)", value.numpy(), GOLDEN[f"out/{name}"], TOL)
    finally:
        _loading.clear_cache()


# ------------------------------------------------------------------ adapter


class _Stub(nn.Module):
    """Stands in for S3FD: records its input; one face at the stride-8 cell (row 3, column 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))
        self.inputs: list[torch.Tensor] = []

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        self.inputs.append(image.clone())
        b, _, h, w = image.shape
        out = []
        for level in range(6):
            stride = 2 ** (level + 2)
            cls = torch.zeros(b, 2, max(1, h // stride), max(1, w // stride))
            cls[:, 0] = 4.0
            if level == 1:
                cls[:, :, 3, 5] = torch.tensor([-4.0, 4.0])
            out += [cls, torch.zeros(b, 4, *cls.shape[2:])]
        return out


@pytest.mark.parametrize("order", ["bgr", "rgb"])
def test_adapter_maps_anchors_to_frame_pixels(order: str) -> None:
    stub = _Stub().eval()
    detector = S3FDDetector(stub, channel_order=order)  # type: ignore[arg-type]
    assert isinstance(detector, FaceDetector)
    frame = np.zeros((48, 60, 3), np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = 10, 20, 30  # R, G, B
    (found,) = detector.detect([frame])
    (face,) = found
    # stride 8, cell (3, 5): centre (44, 28), anchor 32 px -> (28, 12, 60, 44), clipped to the 60x48 frame
    assert (face.x0, face.y0, face.x1, face.y1) == pytest.approx((28.0, 12.0, 59.0, 44.0))
    assert face.score == pytest.approx(1 / (1 + np.exp(-8.0))) and face.keypoints.shape == (0, 2)
    pixel = stub.inputs[0][0, :, 0, 0].tolist()
    channels = [30, 20, 10] if order == "bgr" else [10, 20, 30]  # Wav2Lip subtracts the BGR means from RGB
    assert pixel == [c - m for c, m in zip(channels, [104.0, 117.0, 123.0])]
    with pytest.raises(ValueError, match="channel_order"):
        S3FDDetector(stub, channel_order="yuv")  # type: ignore[arg-type]


def test_adapter_on_a_real_frame_with_filled_weights(model: S3FD) -> None:
    with av.open(str(CLIP)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    half = np.ascontiguousarray(frame[::2, ::2])  # 320x180 keeps the test quick on 2 cores
    detector = S3FDDetector(model, score_threshold=0.5, max_batch=2)
    results = detector.detect([half, half])
    assert len(results) == 2 and results[0]
    height, width = half.shape[:2]
    for d in results[0]:
        assert isinstance(d, Detection) and d.keypoints.shape == (0, 2)
        assert 0 <= d.x0 <= d.x1 <= width - 1 and 0 <= d.y0 <= d.y1 <= height - 1 and 0.5 < d.score <= 1
    # the adapter is the official pipeline on the BGR-minus-mean frame, then clipped
    bgr = torch.from_numpy(half[..., ::-1].astype(np.float32) - np.float32([104, 117, 123])).permute(2, 0, 1)[None]
    with torch.no_grad():
        (want,) = detections(model(bgr))
    want = want.numpy()
    want[:, [0, 2]] = want[:, [0, 2]].clip(0, width - 1)
    want[:, [1, 3]] = want[:, [1, 3]].clip(0, height - 1)
    got = np.array([[*d.box, d.score] for d in results[0]])
    assert_close("adapter vs pipeline", got, want, 1e-3)
    assert_close("batch member 2", np.array([d.box for d in results[1]]), got[:, :4], 1e-3)
