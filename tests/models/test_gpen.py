"""GPEN-BFR-512 (FullGenerator) at parity with tests/golden/gpen512."""

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
    load_golden,
    load_isolated,
    run_with_hooks,
)

from lipstream.models.gpen import NUM_PARAMS, FullGenerator, remap, upfirdn2d

MANIFEST, GOLDEN = load_golden("gpen512")


def _image() -> torch.Tensor:
    """The manifest's rule; the input is not stored in the npz."""
    return torch.rand((2, 3, 512, 512), generator=torch.Generator().manual_seed(41)) * 2 - 1


def _canonical_kernel(key: str) -> torch.Tensor:
    """outer([1,3,3,1])/64, x4 where it follows an upsampling (every generator kernel)."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    return torch.outer(taps, taps) / 64 * (4 if key.startswith("generator.") else 1)


@pytest.fixture(scope="module")
def model() -> FullGenerator:
    return fill(FullGenerator(), MANIFEST["fill"]["mode"], MANIFEST["fill"]["gain"]).eval()


@pytest.fixture(scope="module")
def run(model: FullGenerator) -> tuple[torch.Tensor, dict]:
    """One batch-2 forward with every kernel buffer filled randomly (golden output `out`)."""
    return run_with_hooks(model, MANIFEST, _image())


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory, model: FullGenerator) -> Path:
    """GPEN-BFR-512.pth as published: the filled weights with the constructor's blur kernels."""
    state = dict(model.state_dict())
    for key in MANIFEST["canonical_kernel_keys"]:
        state[key] = _canonical_kernel(key)
    folder = tmp_path_factory.mktemp("official")
    torch.save(state, folder / "GPEN-BFR-512.pth")
    return folder


def test_inputs_follow_manifest_rule() -> None:
    assert "manual_seed(41)" in MANIFEST["inputs"][0]["how_generated"]
    assert_input_check(_image(), MANIFEST, "image")


def test_state_dict_and_parameters_match_manifest(model: FullGenerator) -> None:
    assert_layout(model, MANIFEST, NUM_PARAMS)


def test_constructor_kernels_are_canonical() -> None:
    """What the official file holds; the golden's `out_canonical_kernels` restores these."""
    kernels = {k: v for k, v in FullGenerator().state_dict().items() if k.endswith(".kernel")}
    assert sorted(kernels) == sorted(MANIFEST["canonical_kernel_keys"])
    for key, value in kernels.items():
        assert torch.equal(value, _canonical_kernel(key)), key


def test_out_matches_golden(run) -> None:
    """Random, asymmetric kernel buffers: only a flipped-kernel (true) convolution matches."""
    out, _ = run
    assert out.shape == (2, 3, 512, 512) and out.dtype == torch.float32
    assert_output("out", out, MANIFEST, GOLDEN)


def test_hooks_match_golden(run) -> None:
    _, hooks = run
    assert_hooks(hooks, MANIFEST, GOLDEN)


def test_registry_loads_official_file_at_parity(official: Path) -> None:
    """load_model('gpen512') on the published layout reproduces `out_canonical_kernels` (first image)."""
    loaded = load_isolated("gpen512", official)
    assert isinstance(loaded, FullGenerator) and not loaded.training
    with torch.no_grad():
        out = loaded(_image()[:1])
    assert_output("out_canonical_kernels", out, MANIFEST, GOLDEN)


@pytest.mark.parametrize("wrap", ["plain", "module", "g_ema"])
def test_remap(model: FullGenerator, wrap: str) -> None:
    """The official plain file, DataParallel prefixes and a training checkpoint's 'g_ema' load strictly."""
    state = model.state_dict()
    if wrap != "plain":
        state = {f"module.{k}": v for k, v in state.items()}
    checkpoint = {"g_ema": state, "g": {}, "args": {}} if wrap == "g_ema" else state
    remapped = remap(checkpoint)
    assert list(remapped) == list(model.state_dict())
    model.load_state_dict(remapped, strict=True)  # the same values: a strict no-op


def test_upfirdn2d_is_a_true_convolution() -> None:
    """An impulse reproduces the kernel unflipped; zero insertion and decimation keep phase 0."""
    kernel = torch.arange(1.0, 17.0).view(4, 4)
    impulse = torch.zeros(1, 2, 7, 7)
    impulse[:, :, 3, 3] = 1
    out = upfirdn2d(impulse, kernel, pad=(2, 1))
    assert out.shape == (1, 2, 7, 7)
    assert torch.equal(out[0, 1, 2:6, 2:6], kernel)
    x = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    one = torch.ones(1, 1)
    up = upfirdn2d(x, one, up=2)
    assert torch.equal(up[..., ::2, ::2], x) and up.sum() == x.sum()
    assert torch.equal(upfirdn2d(x, one, down=2), x[..., ::2, ::2])


def test_small_config_follows_dtype() -> None:
    """Nothing pins float32: a small GPEN runs in float64 and float16 (CPU), close to each other."""
    torch.manual_seed(0)
    small = FullGenerator(size=16, style_dim=64, n_mlp=2, narrow=0.125).eval()
    image = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        ref = small.double()(image.double())
        half = small.half()(image.half())
    assert ref.dtype == torch.float64 and half.dtype == torch.float16
    assert torch.isfinite(half).all()
    assert (half.double() - ref).abs().max() < 2e-2 * max(1.0, ref.abs().max().item())


def test_wrong_size_is_refused(model: FullGenerator) -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, 512, 512\)"):
        model(torch.zeros(1, 3, 256, 256))
