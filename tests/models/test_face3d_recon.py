"""Deep3DFaceRecon ResNet-50 at parity with the golden reference (tests/golden/face3d_recon),
plus the pure coefficient / driving-window / alignment helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds golden_fill
from golden_fill import assert_close, fill, load_golden, state_dict_layout  # noqa: E402

from lipstream.models._face3d_coeffs import (  # noqa: E402
    crop_norm_ratio,
    driving_window,
    face3d_alignment,
    five_points,
    pos_fit,
    semantic_row,
    split_coeffs,
    window_indices,
)
from lipstream.models.face3d_recon import NUM_PARAMS, Face3dRecon, remap  # noqa: E402

MANIFEST, GOLDEN = load_golden("face3d_recon")


def _image() -> torch.Tensor:
    return torch.rand((2, 3, 224, 224), generator=torch.Generator().manual_seed(31))


@pytest.fixture(scope="module")
def model() -> Face3dRecon:
    return fill(Face3dRecon(), MANIFEST["fill"]["mode"], MANIFEST["fill"]["gain"]).eval()


@pytest.fixture(scope="module")
def run(model: Face3dRecon) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    captured: dict[str, np.ndarray] = {}
    modules = dict(model.named_modules())
    handles = []
    for entry in MANIFEST["hooks"]["entries"]:
        name = entry["module"]

        def hook(_m, _i, out, name=name):
            size = (min(out.shape[2], 4), min(out.shape[3], 4))
            captured[f"hook/{name}/out"] = F.adaptive_avg_pool2d(out, size).numpy()

        handles.append(modules[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = model(_image())
    finally:
        for h in handles:
            h.remove()
    return out, captured


def test_input_follows_manifest_rule() -> None:
    check = MANIFEST["inputs"][0]["check"]
    image = _image()
    np.testing.assert_allclose(image.flatten()[:8].numpy(), check["first8"], rtol=0, atol=1e-7)
    assert abs(float(image.double().sum()) - check["sum"]) < 1e-2


def test_state_dict_matches_manifest() -> None:
    got = state_dict_layout(Face3dRecon())
    assert got == MANIFEST["state_dict"]


def test_parameter_count() -> None:
    model = Face3dRecon()
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS == MANIFEST["params"]
    assert sum(v.numel() for v in model.state_dict().values()) == MANIFEST["state_dict_numel"]


def test_coeffs_match_golden(run) -> None:
    out, _ = run
    assert out.shape == (2, 257)
    assert_close("coeffs", out.numpy(), GOLDEN["output/coeffs"], MANIFEST["tolerance"]["coeffs"])


def test_hooks_match_golden(run) -> None:
    _, captured = run
    for entry in MANIFEST["hooks"]["entries"]:
        key = f"hook/{entry['module']}/{entry['item']}"
        want = GOLDEN[key]
        assert_close(key, captured[key], want, 1e-5 * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("prefix", ["", "module."])
def test_remap_loads_official_layout(model: Face3dRecon, tmp_path: Path, prefix: str) -> None:
    path = tmp_path / "face3d_pretrain_epoch_20.pth"
    state = {prefix + k: v for k, v in model.state_dict().items()}
    torch.save({"net_recon": state, "epoch": 20, "optimizer": {"lr": 1e-4}}, path)
    loaded = Face3dRecon()
    loaded.load_state_dict(remap(torch.load(path, map_location="cpu", weights_only=True)), strict=True)
    loaded.eval()
    image = _image()[:1, :, :64, :64]  # any size works through the global pool; weights are what matter
    with torch.no_grad():
        assert torch.equal(loaded(image), model(image))


# --- helpers -----------------------------------------------------------------


def test_split_coeffs_layout() -> None:
    coeffs = torch.arange(257.0)[None]
    parts = split_coeffs(coeffs)
    assert [p.shape[-1] for p in parts] == [80, 64, 80, 3, 27, 3]
    assert parts.exp[0, 0] == 80 and parts.angle[0, 0] == 224 and parts.gamma[0, 0] == 227
    assert parts.trans[0].tolist() == [254, 255, 256]
    semantic = semantic_row(np.arange(257.0), np.arange(257.0, 262.0))
    assert semantic.shape == (262,) and semantic.dtype == np.float32
    assert split_coeffs(semantic).trans.tolist() == [254, 255, 256]
    with pytest.raises(ValueError):
        split_coeffs(np.zeros(73))


def test_window_indices_clamp_and_centre() -> None:
    assert window_indices(0, 100) == [0] * 14 + list(range(1, 13))
    assert window_indices(50, 100) == list(range(37, 63))
    assert window_indices(99, 100)[12:] == [98] + [99] * 13  # current frame at column 13
    assert window_indices(3, 1) == [0] * 26


def test_driving_window_rows() -> None:
    rng = np.random.default_rng(7)
    semantics = rng.normal(size=(30, 262)).astype(np.float32)
    idx = window_indices(5, 30)
    window = driving_window(semantics[idx], crop_ratio=2.0)
    assert window.shape == (73, 26) and window.dtype == np.float32
    rows = semantics[idx]
    np.testing.assert_array_equal(window[0:64], rows[:, 80:144].T)
    np.testing.assert_array_equal(window[64:67], rows[:, 224:227].T)
    np.testing.assert_array_equal(window[67:70], rows[:, 254:257].T)
    np.testing.assert_array_equal(window[70], rows[:, 259] * np.float32(2.0))
    np.testing.assert_array_equal(window[71:73], rows[:, 260:262].T)
    assert np.array_equal(semantics[idx], rows)  # input untouched

    template = rng.normal(size=(1, 70))
    hacked = driving_window(semantics[idx], expression=template)
    np.testing.assert_array_equal(hacked[:64], np.repeat(template[0, :64, None], 26, 1).astype(np.float32))
    np.testing.assert_array_equal(hacked[64:], driving_window(semantics[idx])[64:])


def test_crop_norm_ratio_picks_most_similar_frame() -> None:
    semantics = np.zeros((3, 262), dtype=np.float32)
    semantics[:, 259] = [2.0, 4.0, 8.0]
    semantics[1, 80:144] = 0.1  # frame 1: expression close to the source's
    semantics[2, 224:227] = 5.0  # frame 2: far away pose
    source = semantics[0].copy()
    source[80:144] = 0.1
    source[259] = 3.0
    assert crop_norm_ratio(source, semantics) == pytest.approx(0.75)
    # upstream searches the whole video, which holds the source row itself -> 1
    assert crop_norm_ratio(semantics[2], semantics) == 1.0


def _synthetic_template() -> np.ndarray:
    lm68 = np.random.default_rng(3).normal(size=(68, 3))
    return five_points(lm68)


def test_five_points_order() -> None:
    lm = np.zeros((68, 2))
    lm[36], lm[39] = (0, 0), (2, 0)
    lm[42], lm[45] = (10, 0), (12, 2)
    lm[30], lm[48], lm[54] = (6, 5), (3, 9), (9, 9)
    np.testing.assert_array_equal(five_points(lm), [[1, 0], [11, 1], [6, 5], [3, 9], [9, 9]])


def test_pos_fit_recovers_scale_and_translation() -> None:
    template = _synthetic_template()
    points = 3.5 * template[:, :2] + np.array([120.0, 90.0])
    t, s = pos_fit(points, template)
    np.testing.assert_allclose(t, [120.0, 90.0], atol=1e-9)
    assert s == pytest.approx(3.5)


def test_face3d_alignment_geometry() -> None:
    template = _synthetic_template()
    width, height = 256, 256
    # Image landmarks whose y-flipped 5 points are exactly 2.3 * template + (128.3, 100.7).
    lm68 = np.zeros((68, 2))
    target = 2.3 * template[:, :2] + np.array([128.3, 100.7])
    lm68[36] = lm68[39] = target[0]
    lm68[42] = lm68[45] = target[1]
    lm68[30], lm68[48], lm68[54] = target[2], target[3], target[4]
    lm68[:, 1] = height - 1 - lm68[:, 1]
    align = face3d_alignment(lm68, width, height, template)
    s = 102.0 / 2.3
    np.testing.assert_allclose(align.params, [256, 256, s, 128.3, 100.7], rtol=1e-6)
    w = int(256 * s)  # the original truncates: 11353
    assert align.resized == (w, w)
    left = int(w / 2 - 112 + (128.3 - 128) * s)
    up = int(w / 2 - 112 + (128 - 100.7) * s)
    assert align.box == (left, up, left + 224, up + 224)


def test_face3d_alignment_without_face_uses_template() -> None:
    template = _synthetic_template()
    align = face3d_alignment(None, 200, 100, template)
    t, s = pos_fit((template[:, :2] + 1) / 2 * np.array([200.0, 100.0]), template)
    np.testing.assert_allclose(align.params, [200, 100, 102.0 / s, t[0], t[1]], rtol=1e-6)
