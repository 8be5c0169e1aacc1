"""GPEN's ParseNet (ParseNet-latest.pth) at parity with tests/golden/parsenet."""

from __future__ import annotations

import pytest
import torch
from golden_fill import (  # tests/ is on pytest's pythonpath (pyproject.toml)
    assert_hooks,
    assert_input_check,
    assert_layout,
    assert_output,
    filled_state_dict,
    load_golden,
    load_isolated,
    run_with_hooks,
)

from lipstream.models.parsenet import (
    CLASSES,
    FACE_CLASSES,
    MOUTH_CLASSES,
    NUM_PARAMS,
    ParseNet,
    class_mask,
    remap,
)

MANIFEST, GOLDEN = load_golden("parsenet")
OUTPUTS = [o["name"] for o in MANIFEST["outputs"]]  # forward returns them in this order


def _image() -> torch.Tensor:
    """The manifest's rule; the input is not stored in the npz."""
    return torch.rand((2, 3, 512, 512), generator=torch.Generator().manual_seed(51)) * 2 - 1


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ParseNet:
    """The golden-filled network, obtained the way engines get it: load_model on ParseNet-latest.pth (plain)."""
    folder = tmp_path_factory.mktemp("weights")
    state = filled_state_dict(ParseNet(), MANIFEST["fill"]["mode"], MANIFEST["fill"]["gain"])
    torch.save(state, folder / "ParseNet-latest.pth")
    return load_isolated("parsenet", folder)


@pytest.fixture(scope="module")
def run(model: ParseNet) -> tuple[dict[str, torch.Tensor], dict]:
    out, hooks = run_with_hooks(model, MANIFEST, _image())
    return dict(zip(OUTPUTS, out)), hooks


def test_inputs_follow_manifest_rule() -> None:
    assert "manual_seed(51)" in MANIFEST["inputs"][0]["how_generated"]
    assert_input_check(_image(), MANIFEST, "image")


def test_state_dict_and_parameters_match_manifest(model: ParseNet) -> None:
    assert_layout(model, MANIFEST, NUM_PARAMS)


@pytest.mark.parametrize("name", OUTPUTS)
def test_outputs_match_golden(run, name: str) -> None:
    out, _ = run
    assert_output(name, out[name], MANIFEST, GOLDEN)


def test_hooks_match_golden(run) -> None:
    _, hooks = run
    assert_hooks(hooks, MANIFEST, GOLDEN)


def test_registry_builds_eval_frozen(model: ParseNet) -> None:
    """Eval mode matters: the BatchNorm layers must use the running statistics."""
    assert isinstance(model, ParseNet) and not model.training
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("prefix", ["", "module."])
def test_remap(model: ParseNet, prefix: str) -> None:
    remapped = remap({prefix + k: v for k, v in model.state_dict().items()})
    assert list(remapped) == list(model.state_dict())
    model.load_state_dict(remapped, strict=True)  # the same values: a strict no-op


def test_class_mask_follows_the_argmax() -> None:
    """255 where the most likely class is one of `classes`; ties go to the lower class id."""
    labels = torch.tensor([[0, 1, 8, 10], [11, 12, 13, 17]])
    logits = torch.nn.functional.one_hot(labels, len(CLASSES)).permute(2, 0, 1)[None].float()
    logits[0, 3, 0, 0] = 1.0  # a tie between 0 (background) and 3 at (0, 0): background wins
    face = class_mask(logits, FACE_CLASSES)
    mouth = class_mask(logits, MOUTH_CLASSES)
    assert face.dtype == torch.uint8 and face.shape == (1, 2, 4)
    assert face[0].tolist() == [[0, 255, 0, 255], [255, 255, 0, 0]]
    assert mouth[0].tolist() == [[0, 0, 0, 255], [255, 255, 0, 0]]
    assert CLASSES[10] == "mouth" and CLASSES[8] == "left_ear"


def test_small_config_follows_dtype() -> None:
    """Nothing pins float32: a small ParseNet runs in float64 and float16 (CPU), close to each other."""
    torch.manual_seed(0)
    small = ParseNet(in_size=64, out_size=64, base_ch=16, res_depth=2, ch_range=(8, 32)).eval()
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        ref, _ = small.double()(image.double())
        half, _ = small.half()(image.half())
    assert ref.dtype == torch.float64 and half.dtype == torch.float16
    assert (half.double() - ref).abs().max() < 2e-2 * max(1.0, ref.abs().max().item())
