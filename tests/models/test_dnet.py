"""D-Net (video-retalking stabiliser) at parity with the golden reference (tests/golden/dnet)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds golden_fill
from golden_fill import assert_close, fill, load_golden, state_dict_layout  # noqa: E402

from lipstream.models._face3d_coeffs import driving_window, window_indices  # noqa: E402
from lipstream.models.dnet import NUM_PARAMS, DNet, flow_to_deformation, remap  # noqa: E402

MANIFEST, GOLDEN = load_golden("dnet")
OUTPUTS = [o["name"] for o in MANIFEST["outputs"]]


def _filled() -> DNet:
    return fill(DNet(), MANIFEST["fill"]["mode"], MANIFEST["fill"]["gain"]).eval()


def _image() -> torch.Tensor:
    return torch.rand((2, 3, 256, 256), generator=torch.Generator().manual_seed(21)) * 2 - 1


def _coeff() -> torch.Tensor:
    return torch.from_numpy(GOLDEN["input/coeff"])


def _summary(value: torch.Tensor) -> np.ndarray:
    """The manifest's hook summary: 4-D -> pooled to at most 4x4, else the first 256 values per sample."""
    if value.dim() == 4:
        return F.adaptive_avg_pool2d(value, (min(value.shape[2], 4), min(value.shape[3], 4))).numpy()
    return value.reshape(value.shape[0], -1)[:, :256].numpy()


@pytest.fixture(scope="module")
def model() -> DNet:
    return _filled()


@pytest.fixture(scope="module")
def run(model: DNet) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """One forward of the golden inputs, with the manifest's hooked modules summarised."""
    captured: dict[str, np.ndarray] = {}
    modules = dict(model.named_modules())
    handles = []
    for name in {e["module"] for e in MANIFEST["hooks"]["entries"]}:

        def hook(_m, _i, out, name=name):
            if isinstance(out, dict):
                items = {f"out.{k}": v for k, v in out.items()}
            elif isinstance(out, (list, tuple)):
                items = {f"out.{i}": v for i, v in enumerate(out)}
            else:
                items = {"out": out}
            for item, value in items.items():
                captured[f"hook/{name}/{item}"] = _summary(value)

        handles.append(modules[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = model(_image(), _coeff())
    finally:
        for h in handles:
            h.remove()
    return out, captured


def test_inputs_follow_manifest_rule() -> None:
    c = torch.randn((2, 73, 26), generator=torch.Generator().manual_seed(22))
    c[:, 64:67] *= 0.2
    c[:, 67:70] *= 0.5
    c[:, 70] = 1 + 0.1 * c[:, 70]
    c[:, 71:73] = 128 + 10 * c[:, 71:73]
    assert torch.equal(c, _coeff())
    check = MANIFEST["inputs"][0]["check"]
    image = _image()
    np.testing.assert_allclose(image.flatten()[:8].numpy(), check["first8"], rtol=0, atol=1e-7)
    assert abs(float(image.double().sum()) - check["sum"]) < 1e-3


def test_state_dict_matches_manifest() -> None:
    got = state_dict_layout(DNet())
    assert got == MANIFEST["state_dict"]


def test_parameter_count() -> None:
    assert sum(p.numel() for p in DNet().parameters()) == NUM_PARAMS == MANIFEST["params"]


@pytest.mark.parametrize("name", OUTPUTS)
def test_outputs_match_golden(run, name: str) -> None:
    out, _ = run
    value = out[name]
    tol = MANIFEST["tolerance"][name]
    if f"output/{name}" in GOLDEN.files:
        assert_close(name, value.numpy(), GOLDEN[f"output/{name}"], tol)
        return
    pooled = GOLDEN[f"output/{name}/pool"]
    assert_close(f"{name}/pool", F.adaptive_avg_pool2d(value, pooled.shape[-2:]).numpy(), pooled, tol)
    idx = GOLDEN[f"output/{name}/sample_idx"]
    assert_close(f"{name}/sample", value.flatten().numpy()[idx], GOLDEN[f"output/{name}/sample"], tol)


def test_hooks_match_golden(run) -> None:
    """Intermediate summaries, to localise a regression; relative tolerance as the outputs'."""
    _, captured = run
    for entry in MANIFEST["hooks"]["entries"]:
        key = f"hook/{entry['module']}/{entry['item']}"
        want = GOLDEN[key]
        assert_close(key, captured[key], want, 1e-5 * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("prefix", ["", "module."])
def test_remap_loads_official_layout(model: DNet, tmp_path: Path, prefix: str) -> None:
    path = tmp_path / "DNet.pt"
    state = {prefix + k: v for k, v in model.state_dict().items()}
    torch.save({"net_G_ema": state, "epoch": 200}, path)
    loaded = DNet()
    loaded.load_state_dict(remap(torch.load(path, map_location="cpu", weights_only=True)), strict=True)
    loaded.eval()
    image, coeff = _image()[:1, :, :64, :64], _coeff()[:1]  # small input: the same weights are what matter
    with torch.no_grad():
        want, got = model(image, coeff), loaded(image, coeff)
    for name in OUTPUTS:
        assert torch.equal(got[name], want[name]), name


def test_zero_flow_is_identity_grid() -> None:
    """flow_to_deformation maps pixel i of a w-grid to 2i/(w-1)-1 (x in channel 0, y in channel 1)."""
    grid = flow_to_deformation(torch.zeros(1, 2, 4, 5))
    assert torch.allclose(grid[0, 2, :, 0], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))
    assert torch.allclose(grid[0, :, 3, 1], torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0]))
    shifted = flow_to_deformation(torch.ones(1, 2, 4, 5))
    assert torch.allclose(shifted - grid, torch.tensor([2 / 4, 2 / 3]).expand_as(grid))


def test_driving_window_feeds_dnet(model: DNet) -> None:
    """A window built by the helper has the shape D-Net expects."""
    semantics = np.random.default_rng(0).normal(size=(5, 262)).astype(np.float32)
    semantics[:, 259] = 1.0
    window = driving_window(semantics[window_indices(2, 5)], expression=np.zeros(64), crop_ratio=1.0)
    with torch.no_grad():
        out = model(_image()[:1, :, :64, :64], torch.from_numpy(window)[None])
    assert out["fake_image"].shape == (1, 3, 64, 64)
