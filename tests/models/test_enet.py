"""VideoReTalking ENet (with its inner LNet) at parity with tests/golden/enet."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds golden_fill
from golden_fill import assert_close, fill, load_golden, state_dict_layout  # noqa: E402

from lipstream.models.enet import NUM_PARAMS, ENet, remap  # noqa: E402
from lipstream.models.lnet import NUM_PARAMS as LNET_PARAMS  # noqa: E402

MANIFEST, GOLDEN = load_golden("enet")
TOL: dict[str, float] = MANIFEST["tolerance"]
NOISE_SHAPES = [(2, 1, 200, 200), (2, 1, 200, 200), (2, 1, 400, 400), (2, 1, 400, 400)]
LNET_LOGITS = "low_res.decoder.final.model.0"


def _mel() -> torch.Tensor:
    return torch.from_numpy(GOLDEN["input/mel"])


def _face() -> torch.Tensor:
    """The manifest's rule; the (2, 6, 384, 384) face is not stored in the npz."""
    face = torch.rand((2, 6, 384, 384), generator=torch.Generator().manual_seed(12))
    face[:, 0:3, 192:, :] = 0
    return face


def _noise() -> list[torch.Tensor]:
    return [torch.randn(s, generator=torch.Generator().manual_seed(100 + i)) for i, s in enumerate(NOISE_SHAPES)]


def _summary(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 4:
        return F.adaptive_avg_pool2d(x, (min(x.shape[2], 4), min(x.shape[3], 4)))
    return x.reshape(x.shape[0], -1)[:, :256]


def _assert_big_output(name: str, got: torch.Tensor, batch: slice = slice(None)) -> None:
    """Compare the pooled and sampled forms the golden stores for 384x384 outputs."""
    pool = F.adaptive_avg_pool2d(got, tuple(GOLDEN[f"output/{name}/pool"].shape[-2:]))
    assert_close(f"{name}/pool", pool.numpy(), GOLDEN[f"output/{name}/pool"][batch], TOL[name])
    if batch == slice(None):
        idx = GOLDEN[f"output/{name}/sample_idx"]
        assert_close(f"{name}/sample", got.flatten().numpy()[idx], GOLDEN[f"output/{name}/sample"], TOL[name])


@pytest.fixture(scope="module")
def model() -> ENet:
    return fill(ENet(), MANIFEST["fill"]["mode"], MANIFEST["fill"]["gain"]).eval()


@pytest.fixture(scope="module")
def seeded(model: ENet) -> dict[str, torch.Tensor]:
    """Forward with the golden's seeded noise, capturing the hooked modules (as the golden did)."""
    modules = dict(model.named_modules())
    captured: dict[str, torch.Tensor] = {}
    handles = [
        modules[e["module"]].register_forward_hook(
            lambda _m, _i, out, name=e["module"]: captured.__setitem__(name, out)
        )
        for e in MANIFEST["hooks"]["entries"]
    ]
    try:
        with torch.no_grad():
            face = _face()
            out, low_res = model(_mel(), face, face[:, 3:6], noise=_noise())
    finally:
        for h in handles:
            h.remove()
    return {"out": out, "low_res": low_res, "lnet_final_logits": captured[LNET_LOGITS]} | {
        f"hook/{name}/out": _summary(value) for name, value in captured.items()
    }


def test_inputs_follow_manifest_rule() -> None:
    mel = torch.rand((2, 1, 80, 16), generator=torch.Generator().manual_seed(11)) * 8 - 4
    assert torch.equal(mel, _mel())
    face_check = next(i["check"] for i in MANIFEST["inputs"] if i["name"] == "face")
    face = _face()
    assert face.flatten()[:8].tolist() == face_check["first8"]
    assert abs(face.double().sum().item() - face_check["sum"]) < 1e-6 * face_check["sum"]
    noise_check = next(i["check"] for i in MANIFEST["inputs"] if i["name"].startswith("style_conv_noise"))
    for n, want in zip(_noise(), noise_check["sum"]):
        assert abs(n.double().sum().item() - want) < 1e-3


def test_state_dict_matches_manifest(model: ENet) -> None:
    got = state_dict_layout(model)
    assert got == MANIFEST["state_dict"]


def test_num_params(model: ENet) -> None:
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS == MANIFEST["params"]
    assert sum(p.numel() for p in model.low_res.parameters()) == LNET_PARAMS


def test_golden_seeded_noise(seeded: dict[str, torch.Tensor]) -> None:
    assert seeded["out"].shape == (2, 3, 384, 384) and seeded["out"].dtype == torch.float32
    _assert_big_output("out", seeded["out"])
    for name in ("low_res", "lnet_final_logits"):
        assert_close(name, seeded[name].numpy(), GOLDEN[f"output/{name}"], TOL[name])


def test_golden_hooks(seeded: dict[str, torch.Tensor]) -> None:
    """Intermediate maps, for locating a regression; scaled like the output tolerance."""
    for entry in MANIFEST["hooks"]["entries"]:
        key = f"hook/{entry['module']}/{entry['item']}"
        want = GOLDEN[key]
        assert_close(key, seeded[key].numpy(), want, 1e-4 * max(1.0, float(np.abs(want).max())))


def test_golden_zero_noise_is_the_default(model: ENet) -> None:
    """noise=None (production default) adds no noise; gt defaults to the reference half."""
    with torch.no_grad():
        out, low_res = model(_mel(), _face())
    _assert_big_output("out_zero_noise", out)
    assert_close("low_res", low_res.numpy(), GOLDEN["output/low_res"], TOL["low_res"])


def test_generator_noise_matches_explicit_noise(model: ENet) -> None:
    conv = model.style_convs[0]  # 3 -> 256, upsampling: output (1, 256, 16, 16) for an 8x8 input
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    style = torch.randn(1, 512, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        drawn = conv(x, style, torch.Generator().manual_seed(7))
        given = conv(x, style, torch.randn((1, 1, 16, 16), generator=torch.Generator().manual_seed(7)))
        silent = conv(x, style, None)
    assert torch.equal(drawn, given)
    assert not torch.equal(drawn, silent)


def test_remap_loads_official_wrapping(model: ENet, tmp_path: Path) -> None:
    """ENet.pth supplies everything but low_res (its low_res keys are ignored); LNet.pth the rest."""
    state = model.state_dict()
    inner = {k.removeprefix("low_res."): v for k, v in state.items() if k.startswith("low_res.")}
    outer = {"module." + k: v for k, v in state.items() if not k.startswith("low_res.")}
    stale = {"module.low_res." + k: torch.zeros_like(v) for k, v in list(inner.items())[:5]}
    torch.save({"state_dict": inner}, tmp_path / "LNet.pth")
    torch.save({"state_dict": {**outer, **stale}}, tmp_path / "ENet.pth")
    enet_ckpt = torch.load(tmp_path / "ENet.pth", map_location="cpu", weights_only=True)
    lnet_ckpt = torch.load(tmp_path / "LNet.pth", map_location="cpu", weights_only=True)

    fresh = ENet()
    fresh.load_state_dict(remap(enet_ckpt, lnet_ckpt), strict=True)
    fresh.eval()
    first = slice(0, 1)  # batch 1 keeps the test fast; the golden stores per-sample pools
    face = _face()[first]
    with torch.no_grad():
        out, low_res = fresh(_mel()[first], face, style=fresh.style_code(face[:, 3:6]))
    _assert_big_output("out_zero_noise", out, first)
    assert_close("low_res (remapped)", low_res.numpy(), GOLDEN["output/low_res"][first], TOL["low_res"])


def test_remap_is_pure() -> None:
    a, b, c = torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)
    enet_ckpt = {"state_dict": {"module.final_conv.bias": a, "module.low_res.x.bias": c}}
    lnet_ckpt = {"state_dict": {"module.encoder.bias": b}}
    got = remap(enet_ckpt, lnet_ckpt)
    assert got == {"low_res.encoder.bias": b, "final_conv.bias": a}
    assert got["final_conv.bias"] is a and got["low_res.encoder.bias"] is b
    assert list(enet_ckpt["state_dict"]) == ["module.final_conv.bias", "module.low_res.x.bias"]
