"""The deterministic weight fill of the golden references, restated for our tests.

Every state_dict entry receives values determined only by its key, shape and
the fill mode (seeded by the crc32 of the key), so any implementation with
the official keys and shapes gets the same numbers as the reference did.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

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
def hook_summary(value: torch.Tensor) -> np.ndarray:
    """The manifests' hook rule: 4-D maps pooled to at most 4x4, anything else its first 256 values per sample."""
    value = value.detach().float().cpu()
    if value.dim() == 4:
        return F.adaptive_avg_pool2d(value, (min(value.shape[2], 4), min(value.shape[3], 4))).numpy()
    return value.reshape(value.shape[0], -1)[:, :256].numpy()


@contextmanager
def captured_hooks(model: torch.nn.Module, manifest: dict[str, Any]) -> Iterator[dict[str, np.ndarray]]:
    """Summaries of the manifest's hooked submodules while the block runs, keyed like the npz.

    A tuple output gives items ``out.<i>``; a tensor gives ``out``, and also
    ``out.0`` because some upstream modules returned ``(tensor, None)`` where
    ours return the tensor.
    """
    captured: dict[str, np.ndarray] = {}
    modules = dict(model.named_modules())

    def hook(name: str) -> Any:
        def record(_module: torch.nn.Module, _inputs: Any, out: Any) -> None:
            items = dict(enumerate(out)) if isinstance(out, (tuple, list)) else {"": out, 0: out}
            for i, value in items.items():
                if isinstance(value, torch.Tensor):
                    captured[f"hook/{name}/out{'' if i == '' else f'.{i}'}"] = hook_summary(value)

        return record

    handles = [modules[n].register_forward_hook(hook(n)) for n in {e["module"] for e in manifest["hooks"]["entries"]}]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def run_with_hooks(
    model: torch.nn.Module, manifest: dict[str, Any], *inputs: torch.Tensor
) -> tuple[Any, dict[str, np.ndarray]]:
    """One no-grad forward of `inputs`, returning the output and the hooked summaries."""
    with captured_hooks(model, manifest) as hooks, torch.no_grad():
        out = model(*inputs)
    return out, hooks


def assert_layout(model: torch.nn.Module, manifest: dict[str, Any], num_params: int) -> None:
    """The manifest's state_dict (keys, order, shapes, dtypes) and parameter count, and the declared count."""
    assert state_dict_layout(model) == manifest["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == num_params == manifest["params"]


def assert_hooks(captured: dict[str, np.ndarray], manifest: dict[str, Any], npz: Any, rel: float = 1e-4) -> None:
    """Every hooked summary within `rel` x max(1, max|golden|): they localise a regression."""
    for entry in manifest["hooks"]["entries"]:
        key = f"hook/{entry['module']}/{entry['item']}"
        want = npz[key]
        assert_close(key, captured[key], want, rel * max(1.0, float(np.abs(want).max())))


def assert_output(name: str, value: torch.Tensor, manifest: dict[str, Any], npz: Any) -> None:
    """Compare an output with the form the npz stores, within the manifest tolerance.

    Large outputs are stored pooled plus sampled; `value` may hold only the
    first samples of the golden batch (a cheaper run): the pooled rows and
    the samples that fall inside it are compared.
    """
    tol = manifest["tolerance"][name]
    spec = next(o for o in manifest["outputs"] if o["name"] == name)
    got = value.detach().float().cpu()
    shape_ok = got.dim() == len(spec["shape"]) and list(got.shape[1:]) == spec["shape"][1:]
    assert shape_ok, f"{name}: shape {tuple(got.shape)}, golden {spec['shape']}"
    if f"output/{name}" in npz.files:
        assert_close(name, got.numpy(), npz[f"output/{name}"][: len(got)], tol)
        return
    pool = npz[f"output/{name}/pool"]
    assert_close(f"{name}/pool", F.adaptive_avg_pool2d(got, pool.shape[-2:]).numpy(), pool[: len(got)], tol)
    idx = npz[f"output/{name}/sample_idx"]
    inside = idx < got.numel()
    assert inside.any()
    assert_close(f"{name}/sample", got.flatten().numpy()[idx[inside]], npz[f"output/{name}/sample"][inside], tol)


def assert_input_check(value: torch.Tensor, manifest: dict[str, Any], name: str) -> None:
    """An input regenerated from its manifest rule has the recorded first values (exactly) and sum."""
    check = next(i["check"] for i in manifest["inputs"] if i["name"] == name)
    assert value.flatten()[:8].tolist() == check["first8"], name
    assert abs(value.double().sum().item() - check["sum"]) <= 1e-6 * max(1.0, abs(check["sum"])), name


def load_isolated(name: str, folder: Path) -> torch.nn.Module:
    """`load_model(name)` searching only `folder` (no $LIPSTREAM_WEIGHTS, no user cache), left uncached."""
    from lipstream.models import _loading

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("LIPSTREAM_WEIGHTS", raising=False)
        mp.setenv("XDG_CACHE_HOME", str(folder / "cache"))
        _loading.clear_cache()
        try:
            return _loading.load_model(name, weights_dirs=[folder])
        finally:
            _loading.clear_cache()
