"""The deterministic weight fill of the golden references, restated for our tests.

Every state_dict entry receives values determined only by its key, shape and
the fill mode (seeded by the crc32 of the key), so any implementation with
the official keys and shapes gets the same numbers as the reference did.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

GOLDEN = Path(__file__).parent / "golden"

_INTEGER = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64}


def fill_tensor(key: str, shape: tuple[int, ...], dtype: torch.dtype, mode: str, gain: float) -> torch.Tensor:
    if dtype in _INTEGER:
        return torch.zeros(shape, dtype=dtype)
    gen = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    if key.endswith("running_var"):
        value = 0.5 + torch.rand(shape, generator=gen)
    elif len(shape) >= 2:
        if mode == "fan_in":
            scale = gain / math.sqrt(max(1, math.prod(shape[1:])))
        elif mode == "unit":
            scale = gain
        else:
            raise ValueError(f"unknown fill mode {mode!r}")
        value = torch.randn(shape, generator=gen) * scale
    elif key.endswith("weight"):
        value = 1.0 + 0.1 * torch.randn(shape, generator=gen)
    else:
        value = 0.1 * torch.randn(shape, generator=gen)
    return value.to(dtype)


def filled_state_dict(module: torch.nn.Module, mode: str = "fan_in", gain: float = 1.0) -> dict[str, torch.Tensor]:
    return {k: fill_tensor(k, tuple(v.shape), v.dtype, mode, gain) for k, v in module.state_dict().items()}


def fill(module: torch.nn.Module, mode: str = "fan_in", gain: float = 1.0) -> torch.nn.Module:
    """Fill `module` in place (strictly: every key must exist) and return it."""
    module.load_state_dict(filled_state_dict(module, mode, gain), strict=True)
    return module


def state_dict_layout(module: torch.nn.Module) -> list[list[Any]]:
    """[key, shape, dtype] per entry, in order: the form of a golden manifest's "state_dict"."""
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in module.state_dict().items()]


def load_golden(name: str) -> tuple[dict[str, Any], Any]:
    """Return (manifest, npz) of one golden folder copied under tests/golden."""
    folder = GOLDEN / name
    manifest = json.loads((folder / "manifest.json").read_text())
    return manifest, np.load(folder / "golden.npz")


def assert_close(name: str, got: np.ndarray, want: np.ndarray, tol: float) -> None:
    """Fail with where the arrays differ most, not just that they do."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    diff = np.abs(got - want)
    worst = int(np.argmax(diff)) if diff.size else 0
    assert diff.size == 0 or diff.max() <= tol, (
        f"{name}: max |diff| {diff.max():.3g} > {tol:.3g} at {np.unravel_index(worst, diff.shape)} "
        f"(got {got.flat[worst]:.6g}, want {want.flat[worst]:.6g})"
    )


def forward_with_hooks(model: torch.nn.Module, hooks: dict[str, Any], *inputs: torch.Tensor) -> tuple[Any, dict[str, np.ndarray]]:
    """Run `model` on `inputs` (no grad) and capture the manifest's `hooks` ({module: {"pool_hw": [h, w]}}).

    Returns (output, captured): ``captured[name]`` is the module's output (the
    last element of a list/tuple output) pooled to ``pool_hw``, the form of
    ``golden.npz`` ``hook/<name>``.
    """
    captured: dict[str, np.ndarray] = {}
    modules = dict(model.named_modules())
    handles = []
    for name, spec in hooks.items():

        def hook(_m, _i, out, name=name, size=tuple(spec["pool_hw"])):
            if isinstance(out, (list, tuple)):
                out = out[-1]
            captured[name] = torch.nn.functional.adaptive_avg_pool2d(out, size).numpy()

        handles.append(modules[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            output = model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return output, captured


def assert_same_weights(got: torch.nn.Module, want: torch.nn.Module) -> None:
    """The two modules hold the same keys and bit-identical tensors."""
    mine, theirs = got.state_dict(), want.state_dict()
    assert list(mine) == list(theirs)
    for key, value in theirs.items():
        assert torch.equal(mine[key], value), key


def assert_golden_output(name: str, got: torch.Tensor, golden: Any, tol: float) -> None:
    """Compare one output with ``out/<name>``, or with ``outpool/<name>`` + ``outsample/<name>`` when stored that way."""
    if f"out/{name}" in golden.files:
        assert_close(name, got.numpy(), golden[f"out/{name}"], tol)
        return
    pooled = golden[f"outpool/{name}"]
    assert_close(f"{name} (pooled)", torch.nn.functional.adaptive_avg_pool2d(got, pooled.shape[-2:]).numpy(), pooled, tol)
    sample = got.flatten().numpy()[golden[f"outsample_idx/{name}"]]
    assert_close(f"{name} (sampled)", sample, golden[f"outsample/{name}"], tol)
