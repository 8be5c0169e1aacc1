"""SyncNet_color at parity with the golden reference (tests/golden/syncnet_color)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

_TESTS = str(Path(__file__).resolve().parents[1])  # holds golden_fill
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
from golden_fill import assert_close, fill, load_golden, state_dict_layout  # noqa: E402

from lipstream.models.syncnet_color import NUM_PARAMS, SyncNetColor, remap, sync_cosine  # noqa: E402

MANIFEST, GOLDEN = load_golden("syncnet_color")
TOL = float(MANIFEST["tolerance"])


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(GOLDEN["in/mel"]), torch.from_numpy(GOLDEN["in/face"])


def _check_outputs(model: SyncNetColor, label: str = "") -> None:
    with torch.no_grad():
        audio, face = model(*_inputs())
        cosine = sync_cosine(audio, face)
    assert_close(f"audio_embedding{label}", audio.numpy(), GOLDEN["out/audio_embedding"], TOL)
    assert_close(f"face_embedding{label}", face.numpy(), GOLDEN["out/face_embedding"], TOL)
    assert_close(f"cosine{label}", cosine.numpy(), GOLDEN["out/cosine"], TOL)


@pytest.fixture(scope="module")
def model() -> SyncNetColor:
    return fill(SyncNetColor(), MANIFEST["fill"]["mode"], MANIFEST["fill"]["gain"]).eval()


def test_inputs_follow_manifest_rule() -> None:
    face = torch.rand((2, 15, 48, 96), generator=torch.Generator().manual_seed(201))
    mel = torch.rand((2, 1, 80, 16), generator=torch.Generator().manual_seed(202)) * 8 - 4
    assert torch.equal(face, torch.from_numpy(GOLDEN["in/face"]))
    assert torch.equal(mel, torch.from_numpy(GOLDEN["in/mel"]))


def test_state_dict_matches_manifest(model: SyncNetColor) -> None:
    got = state_dict_layout(model)
    assert got == MANIFEST["state_dict"]


def test_num_params(model: SyncNetColor) -> None:
    counted = sum(p.numel() for p in model.parameters())
    assert counted == NUM_PARAMS == MANIFEST["params"]


def test_golden_parity(model: SyncNetColor) -> None:
    _check_outputs(model)


def test_encoder_hooks(model: SyncNetColor) -> None:
    """Pre-normalisation encoder outputs, to localise a failure to one branch."""
    mel, face = _inputs()
    with torch.no_grad():
        got = {"audio_encoder": model.audio_encoder(mel), "face_encoder": model.face_encoder(face)}
    for name, value in got.items():
        assert list(value.shape) == MANIFEST["hooks"][name]["shape"]
        assert_close(f"hook/{name}", value.numpy(), GOLDEN[f"hook/{name}"], TOL)


def test_embeddings_are_unit_and_non_negative(model: SyncNetColor) -> None:
    with torch.no_grad():
        for emb in model(*_inputs()):
            assert emb.shape == (2, 512)
            assert bool((emb >= 0).all())
            assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-6)


def test_remap_loads_official_wrapping(model: SyncNetColor, tmp_path: Path) -> None:
    path = tmp_path / "lipsync_expert.pth"
    wrapped = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"state_dict": wrapped, "global_step": 0, "global_epoch": 0}, path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)

    fresh = SyncNetColor()
    fresh.load_state_dict(remap(checkpoint), strict=True)
    _check_outputs(fresh.eval(), " (remapped)")
