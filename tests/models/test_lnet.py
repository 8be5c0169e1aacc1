"""VideoReTalking LNet at parity with the golden reference (tests/golden/lnet)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds golden_fill
from golden_fill import assert_close, fill, load_golden, state_dict_layout  # noqa: E402

from lipstream.models.lnet import NUM_PARAMS, LNet, remap  # noqa: E402

MANIFEST, GOLDEN = load_golden("lnet")
TOL: dict[str, float] = MANIFEST["tolerance"]
# Hooks on modules whose official output is post-sigmoid; ours return logits there.
SIGMOID_HOOKS = {"decoder", "decoder.final"}


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(GOLDEN["input/mel"]), torch.from_numpy(GOLDEN["input/face"])


def _summary(x: torch.Tensor) -> torch.Tensor:
    """The golden's hook summary: 4-D maps pooled to at most 4x4."""
    return F.adaptive_avg_pool2d(x, (min(x.shape[2], 4), min(x.shape[3], 4)))


@pytest.fixture(scope="module")
def model() -> LNet:
    return fill(LNet(), MANIFEST["fill"]["mode"], MANIFEST["fill"]["gain"]).eval()


@pytest.fixture(scope="module")
def run(model: LNet) -> dict[str, torch.Tensor]:
    """One forward of the golden inputs: outputs plus every hooked module's summary."""
    modules = dict(model.named_modules())
    captured: dict[str, object] = {}
    handles = [
        modules[name].register_forward_hook(lambda _m, _i, out, name=name: captured.__setitem__(name, out))
        for name in {e["module"] for e in MANIFEST["hooks"]["entries"]}
    ]
    try:
        with torch.no_grad():
            out = model(*_inputs())
    finally:
        for h in handles:
            h.remove()
    result = {"out": out, "final_logits": captured["decoder.final.model.0"]}
    skips, bottleneck = captured["encoder"]
    for i, t in enumerate([*skips, bottleneck]):
        result[f"hook/encoder/out.{i}"] = _summary(t)
    for name, value in captured.items():
        if name != "encoder":
            value = torch.sigmoid(value) if name in SIGMOID_HOOKS else value
            result[f"hook/{name}/out"] = _summary(value)
    return result


def test_inputs_follow_manifest_rule() -> None:
    mel = torch.rand((2, 1, 80, 16), generator=torch.Generator().manual_seed(1)) * 8 - 4
    face = torch.rand((2, 6, 96, 96), generator=torch.Generator().manual_seed(2))
    face[:, 0:3, 48:, :] = 0
    assert torch.equal(mel, torch.from_numpy(GOLDEN["input/mel"]))
    assert torch.equal(face, torch.from_numpy(GOLDEN["input/face"]))


def test_state_dict_matches_manifest(model: LNet) -> None:
    got = state_dict_layout(model)
    assert got == MANIFEST["state_dict"]


def test_num_params(model: LNet) -> None:
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS == MANIFEST["params"]


@pytest.mark.parametrize("name", ["final_logits", "out"])
def test_golden_outputs(run: dict[str, torch.Tensor], name: str) -> None:
    assert run[name].dtype == torch.float32
    assert_close(name, run[name].numpy(), GOLDEN[f"output/{name}"], TOL[name])


def test_golden_hooks(run: dict[str, torch.Tensor]) -> None:
    """Intermediate maps, for locating a regression; scaled like the output tolerance."""
    for entry in MANIFEST["hooks"]["entries"]:
        key = f"hook/{entry['module']}/{entry['item']}"
        want = GOLDEN[key]
        if entry["module"] in SIGMOID_HOOKS:
            tol = TOL["out"]
        else:
            tol = 1e-4 * max(1.0, float(np.abs(want).max()))
        assert_close(key, run[key].numpy(), want, tol)


def test_logits_are_pre_sigmoid(model: LNet, run: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        logits = model.logits(*_inputs())
    assert torch.equal(logits, run["final_logits"])
    assert torch.equal(torch.sigmoid(logits), run["out"])


def test_sequence_input_folds_time_into_batch(model: LNet) -> None:
    mel, face = _inputs()
    mel, face = mel[:1], face[:1]
    mel_seq = torch.stack([mel, -mel], dim=1)  # (1, T=2, 1, 80, 16)
    face_seq = torch.stack([face, face.flip(-1)], dim=2)  # (1, 6, T=2, 96, 96)
    with torch.no_grad():
        out = model(mel_seq, face_seq)
        frames = model(torch.cat([mel, -mel]), torch.cat([face, face.flip(-1)]))
    assert out.shape == (1, 3, 2, 96, 96)
    assert_close("t=0", out[0, :, 0].numpy(), frames[0].numpy(), 1e-5)
    assert_close("t=1", out[0, :, 1].numpy(), frames[1].numpy(), 1e-5)


def test_remap_loads_official_wrapping(model: LNet, tmp_path: Path) -> None:
    path = tmp_path / "LNet.pth"
    wrapped = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"state_dict": wrapped}, path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)

    fresh = LNet()
    fresh.load_state_dict(remap(checkpoint), strict=True)
    fresh.eval()
    with torch.no_grad():
        logits = fresh.logits(*_inputs())
    assert_close("final_logits (remapped)", logits.numpy(), GOLDEN["output/final_logits"], TOL["final_logits"])


def test_remap_is_pure() -> None:
    weight = torch.zeros(1)
    checkpoint = {"state_dict": {"module.a.weight": weight}}
    assert remap(checkpoint) == {"a.weight": weight}
    assert remap({"b.bias": weight}) == {"b.bias": weight}
    assert list(checkpoint["state_dict"]) == ["module.a.weight"]
    assert remap(checkpoint)["a.weight"] is weight
