"""Wav2Lip generator at parity with the golden reference (tests/golden/wav2lip)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

_TESTS = str(Path(__file__).resolve().parents[1])  # holds golden_fill
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
from golden_fill import assert_close, fill, load_golden, state_dict_layout  # noqa: E402

from lipstream.models.wav2lip import NUM_PARAMS, Wav2Lip, remap  # noqa: E402

MANIFEST, GOLDEN = load_golden("wav2lip")
TOL = float(MANIFEST["tolerance"])


def _filled() -> Wav2Lip:
    return fill(Wav2Lip(), MANIFEST["fill"]["mode"], MANIFEST["fill"]["gain"]).eval()


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(GOLDEN["in/mel"]), torch.from_numpy(GOLDEN["in/face"])


def _run_with_hooks(model: Wav2Lip) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Forward the golden inputs, capturing each hooked child pooled like the golden."""
    captured: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = []
    for name, spec in MANIFEST["hooks"].items():
        size = tuple(spec["pool_hw"])

        def hook(_m, _i, out, name=name, size=size):
            captured[name] = F.adaptive_avg_pool2d(out, size)

        handles.append(modules[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            pred = model(*_inputs())
    finally:
        for h in handles:
            h.remove()
    return pred, captured


@pytest.fixture(scope="module")
def model() -> Wav2Lip:
    return _filled()


def test_inputs_follow_manifest_rule() -> None:
    face = torch.rand((2, 6, 96, 96), generator=torch.Generator().manual_seed(101))
    face[:, 0:3, 48:, :] = 0
    mel = torch.rand((2, 1, 80, 16), generator=torch.Generator().manual_seed(102)) * 8 - 4
    assert torch.equal(face, torch.from_numpy(GOLDEN["in/face"]))
    assert torch.equal(mel, torch.from_numpy(GOLDEN["in/mel"]))


def test_state_dict_matches_manifest(model: Wav2Lip) -> None:
    got = state_dict_layout(model)
    assert got == MANIFEST["state_dict"]


def test_num_params(model: Wav2Lip) -> None:
    counted = sum(p.numel() for p in model.parameters())
    assert counted == NUM_PARAMS == MANIFEST["params"]


def test_golden_parity(model: Wav2Lip) -> None:
    pred, hooks = _run_with_hooks(model)
    assert pred.dtype == torch.float32
    assert_close("pred", pred.numpy(), GOLDEN["out/pred"], TOL)
    for name, value in hooks.items():
        assert_close(f"hook/{name}", value.numpy(), GOLDEN[f"hook/{name}"], TOL)


def test_sequence_input_folds_time_into_batch(model: Wav2Lip) -> None:
    mel, face = _inputs()
    mel_seq = torch.stack([mel, mel.flip(0)], dim=1)  # (B, T, 1, 80, 16)
    face_seq = torch.stack([face, face.flip(0)], dim=2)  # (B, 6, T, 96, 96)
    with torch.no_grad():
        out = model(mel_seq, face_seq)
        first = model(mel, face)
    assert out.shape == (2, 3, 2, 96, 96)
    assert_close("seq t=0", out[:, :, 0].numpy(), first.numpy(), 1e-5)
    assert_close("seq t=1", out[:, :, 1].numpy(), first.flip(0).numpy(), 1e-5)


def test_remap_loads_official_wrapping(model: Wav2Lip, tmp_path: Path) -> None:
    path = tmp_path / "wav2lip.pth"
    wrapped = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"state_dict": wrapped, "global_step": 0, "global_epoch": 0}, path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)

    fresh = Wav2Lip()
    fresh.load_state_dict(remap(checkpoint), strict=True)
    fresh.eval()
    with torch.no_grad():
        pred = fresh(*_inputs())
    assert_close("pred (remapped)", pred.numpy(), GOLDEN["out/pred"], TOL)


def test_remap_is_pure() -> None:
    weight = torch.zeros(1)
    checkpoint = {"state_dict": {"module.a.weight": weight}, "global_step": 3}
    assert remap(checkpoint) == {"a.weight": weight}
    assert remap({"b.bias": weight}) == {"b.bias": weight}
    assert list(checkpoint["state_dict"]) == ["module.a.weight"]
    assert np.shares_memory(remap(checkpoint)["a.weight"].numpy(), weight.numpy())
