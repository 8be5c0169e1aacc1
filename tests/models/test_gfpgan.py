"""GFPGANv1Clean (GFPGANv1.3 / v1.4) at parity with tests/golden/gfpgan_v1_clean."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from golden_fill import (  # tests/ is on pytest's pythonpath (pyproject.toml)
    assert_hooks,
    assert_input_check,
    assert_layout,
    assert_output,
    fill,
    filled_state_dict,
    load_golden,
    load_isolated,
    run_with_hooks,
)

from lipstream.models.gfpgan import NUM_PARAMS, GFPGANv1Clean, remap

MANIFEST, GOLDEN = load_golden("gfpgan_v1_clean")
NOISE_SIZES = [4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256, 512, 512]


def _image() -> torch.Tensor:
    """The manifest's rule; the input is not stored in the npz."""
    return torch.rand((2, 3, 512, 512), generator=torch.Generator().manual_seed(61)) * 2 - 1


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GFPGANv1.3.pth as published ({'params_ema': state}) holding the golden fill; v1.4 shares the layout."""
    folder = tmp_path_factory.mktemp("weights")
    state = filled_state_dict(GFPGANv1Clean(), MANIFEST["fill"]["mode"], MANIFEST["fill"]["gain"])
    torch.save({"params_ema": state}, folder / "GFPGANv1.3.pth")
    (folder / "GFPGANv1.4.pth").symlink_to(folder / "GFPGANv1.3.pth")
    return folder


@pytest.fixture(scope="module")
def model(official: Path) -> GFPGANv1Clean:
    """The golden-filled network, obtained the way engines get it: load_model on the official layout."""
    return load_isolated("gfpgan_v1_clean", official)


@pytest.fixture(scope="module")
def run(model: GFPGANv1Clean) -> tuple[torch.Tensor, dict]:
    """The golden's call: randomize_noise=False, i.e. the stored (filled) noise maps = our default."""
    return run_with_hooks(model, MANIFEST, _image())


@pytest.fixture(scope="module")
def small() -> GFPGANv1Clean:
    """A 32 px, narrow configuration: the same code paths at a fraction of the cost."""
    torch.manual_seed(0)
    return fill(GFPGANv1Clean(out_size=32, num_style_feat=64, narrow=0.125)).eval()  # noise strengths != 0


def test_inputs_follow_manifest_rule() -> None:
    assert "manual_seed(61)" in MANIFEST["inputs"][0]["how_generated"]
    assert_input_check(_image(), MANIFEST, "image")


def test_state_dict_and_parameters_match_manifest(model: GFPGANv1Clean) -> None:
    assert_layout(model, MANIFEST, NUM_PARAMS)
    sizes = [model.state_dict()[f"stylegan_decoder.noises.noise{i}"].shape[-1] for i in range(15)]
    assert sizes == NOISE_SIZES


def test_out_matches_golden(run) -> None:
    out, _ = run
    assert out.shape == (2, 3, 512, 512) and out.dtype == torch.float32
    assert_output("out", out, MANIFEST, GOLDEN)


def test_hooks_match_golden(run) -> None:
    _, hooks = run
    assert_hooks(hooks, MANIFEST, GOLDEN)


def test_registry_builds_both_versions(model: GFPGANv1Clean, official: Path) -> None:
    """gfpgan_v1_clean (v1.3, the golden run above) and gfpgan_v1_4 build the same class, eval, frozen."""
    assert isinstance(model, GFPGANv1Clean) and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    v14 = load_isolated("gfpgan_v1_4", official)
    assert isinstance(v14, GFPGANv1Clean) and v14 is not model
    assert all(torch.equal(v, v14.state_dict()[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("wrapper", ["params_ema", "params"])
def test_remap_unwraps_and_strips(model: GFPGANv1Clean, wrapper: str) -> None:
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    remapped = remap({wrapper: state, "iter": 0})
    assert list(remapped) == list(model.state_dict())
    model.load_state_dict(remapped, strict=True)  # the same values: a strict no-op


def test_noise_options(small: GFPGANv1Clean) -> None:
    """None = the stored maps; a generator draws N(0, 1) maps in layer order; explicit maps are used as given."""
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    stored = [getattr(small.stylegan_decoder.noises, f"noise{i}") for i in range(7)]
    sizes = [m.shape[-1] for m in stored]
    assert sizes == NOISE_SIZES[:7] and small.stylegan_decoder.num_layers == 7
    with torch.no_grad():
        default = small(image)
        assert torch.equal(small(image, noise=stored), default)
        drawn = torch.Generator().manual_seed(7)
        explicit = [torch.randn((2, 1, s, s), generator=drawn) for s in sizes]
        seeded = small(image, noise=torch.Generator().manual_seed(7))
        assert torch.equal(seeded, small(image, noise=explicit))
        assert not torch.equal(seeded, small(image, noise=torch.Generator().manual_seed(8)))
        assert not torch.equal(small(image, noise=[torch.zeros(1, 1, s, s) for s in sizes]), default)
    with pytest.raises(ValueError, match="7 maps"):
        small(image, noise=stored[:6])


def test_small_config_follows_dtype(small: GFPGANv1Clean) -> None:
    """Nothing pins float32 (noise buffers included): float64 and float16 (CPU) agree."""
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    half_model = GFPGANv1Clean(out_size=32, num_style_feat=64, narrow=0.125).eval()
    half_model.load_state_dict(small.state_dict())
    with torch.no_grad():
        ref = small.double()(image.double())
        half = half_model.half()(image.half())
    small.float()
    assert ref.dtype == torch.float64 and half.dtype == torch.float16
    assert torch.isfinite(half).all()
    assert (half.double() - ref).abs().max() < 2e-2 * max(1.0, ref.abs().max().item())


def test_wrong_size_is_refused(small: GFPGANv1Clean) -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        small(torch.zeros(1, 3, 64, 64))
