"""Checkpoints into networks: the one place that opens weight files.

Every file is checked (size and sha256 when the registry declares them),
read with ``torch.load(weights_only=True)`` (tensors and plain containers
only, never arbitrary pickled code), turned into the module's keys by the
network's `remap`, and loaded strictly. Anything wrong raises one
`WeightsError` naming the file, what is wrong and the fix.

Models are built once per process and cached by (name, files, device,
dtype); the cached module is in eval mode with gradients off. Callers run it
under ``torch.inference_mode()``.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import pickle
import threading
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from lipstream.errors import InputError, WeightsError

from ._registry import Checkpoint, WeightFile, find_file, get, how_to_get, search_dirs

__all__ = [
    "VerifyResult",
    "clear_cache",
    "cpu_autocast",
    "file_sha256",
    "inference_dtype",
    "load_data",
    "load_model",
    "locate",
    "read_checkpoint",
    "state_dict_for",
    "verify",
]

log = logging.getLogger(__name__)

_CACHE: dict[tuple[Any, ...], nn.Module] = {}
_CACHE_LOCK = threading.Lock()
_HASHES: dict[tuple[str, int, int], str] = {}
_EXAMPLES = 3  # keys quoted in a mismatch message


def _entry(name: str | Checkpoint) -> Checkpoint:
    return name if isinstance(name, Checkpoint) else get(name)


def locate(entry: str | Checkpoint, weights_dirs: Iterable[str | Path] = ()) -> list[Path]:
    """Paths of every file of `entry`, or a WeightsError naming the first one missing."""
    entry = _entry(entry)
    dirs = search_dirs(weights_dirs)
    paths = []
    for spec in entry.files:
        path = find_file(spec, dirs)
        if path is None:
            where = ", ".join(str(d) for d in dirs)
            raise WeightsError(
                f"{spec.relpath} ({entry.name}) not found in {where}; {how_to_get([entry.name])} "
                "(or put the file in one of those folders; --weights DIR adds one)"
            )
        paths.append(path)
    return paths


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, remembered per (path, size, mtime) for the process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def check_file(spec: WeightFile, path: Path) -> None:
    """Compare a file with what the registry declares about it (size, sha256)."""
    size = path.stat().st_size
    if size == 0:
        raise WeightsError(f"{path} is empty; download {spec.filename} again")
    if spec.size is not None and size != spec.size:
        what = "truncated" if size < spec.size else "not the official file"
        raise WeightsError(f"{path} has {size:,} bytes instead of {spec.size:,} ({what}); download {spec.filename} again")
    if spec.sha256 is not None:
        digest = file_sha256(path)
        if digest != spec.sha256.lower():
            raise WeightsError(
                f"{path}: sha256 {digest[:16]}... differs from the official {spec.sha256[:16]}... "
                f"(corrupt or another version); download {spec.filename} again"
            )


def read_checkpoint(path: Path) -> Mapping[str, Any]:
    """``torch.load(weights_only=True)`` on CPU, with errors a person can act on."""
    try:
        loaded = _load(path)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"{path} cannot be loaded safely as a checkpoint ({reason}); it is truncated, corrupt or not the "
            f"official file: download it again"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path} cannot be read as a torch checkpoint ({reason}); it is truncated or corrupt: download it again") from None
    if not isinstance(loaded, Mapping):
        raise WeightsError(f"{path} holds a {type(loaded).__name__}, not a checkpoint dict; is it the right file?")
    return loaded


def _load(path: Path) -> Any:
    """Memory-mapped when the file is a zip checkpoint: only the tensors a network keeps are
    ever read (an official Wav2Lip file is 70% optimizer state). Older files load whole."""
    if zipfile.is_zipfile(path):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return torch.load(path, map_location="cpu", weights_only=True)


def _module(entry: Checkpoint) -> Any:
    if entry.kind != "network" or entry.module is None or entry.network is None:
        raise ValueError(f"{entry.name} has no network implementation in lipstream")
    return importlib.import_module(entry.module)


def state_dict_for(entry: str | Checkpoint, paths: Sequence[Path]) -> dict[str, torch.Tensor]:
    """Read the files of `entry` (already located) and remap them to the network's keys."""
    entry = _entry(entry)
    for spec, path in zip(entry.files, paths, strict=True):
        check_file(spec, path)
    checkpoints = [read_checkpoint(p) for p in paths]
    remap = getattr(_module(entry), entry.remap)
    try:
        state = remap(*checkpoints)
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        names = " + ".join(str(p) for p in paths)
        raise WeightsError(f"{names} does not have the layout of {entry.name} ({exc}); expected {entry.wrapper}") from None
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{' + '.join(map(str, paths))}: entries that are not tensors ({', '.join(bad[:_EXAMPLES])}); is it the right file for {entry.name}?")
    return state


def _fit(module: nn.Module, state: dict[str, torch.Tensor], entry: Checkpoint, paths: Sequence[Path]) -> None:
    """Strict load with a message that says which keys or shapes differ."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    # Checkpoints from PyTorch < 0.4.1 have no BatchNorm counters; PyTorch itself tolerates that.
    counters = [k for k in missing if k.endswith("num_batches_tracked")]
    if counters:
        state = {**state, **{k: torch.zeros((), dtype=torch.long) for k in counters}}
        missing = [k for k in missing if k not in counters]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:_EXAMPLES])})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:_EXAMPLES])})")
        if shapes:
            k = shapes[0]
            problems.append(f"{len(shapes)} keys with other shapes (e.g. {k}: file {tuple(state[k].shape)}, network {tuple(own[k].shape)})")
        raise WeightsError(
            f"{' + '.join(map(str, paths))} does not fit {entry.network} ({entry.name}): {'; '.join(problems)}; "
            f"is it the right file? For the official one, {how_to_get([entry.name])}"
        )
    if _on_meta(module):
        # The tensors become the module's own: give them its dtypes, as a copy into it would.
        state = {k: v.to(own[k].dtype) if v.dtype != own[k].dtype else v for k, v in state.items()}
        module.load_state_dict(state, strict=True, assign=True)
    else:
        module.load_state_dict(state, strict=True)


def _on_meta(module: nn.Module) -> bool:
    return any(t.is_meta for t in (*module.parameters(), *module.buffers()))


def _build(entry: Checkpoint, paths: Sequence[Path]) -> nn.Module:
    """The network holding the checkpoint's own tensors.

    It is built on the meta device, so no random initial weights are made
    only to be overwritten; the loaded tensors become its parameters. A
    network that makes tensors of its own (constant buffers outside the
    state dict) is built normally instead and the weights copied in.
    """
    network = getattr(_module(entry), entry.network)  # type: ignore[arg-type]
    state = state_dict_for(entry, paths)
    with torch.device("meta"):
        module = network() if entry.config is None else network(entry.config)
    own = set(module.state_dict())
    if any(t.is_meta for name, t in _tensors(module) if name not in own):
        module = network() if entry.config is None else network(entry.config)
    _fit(module, state, entry, paths)
    return module.eval().requires_grad_(False)


def _own_memory(module: nn.Module) -> None:
    """Copy tensors still backed by a memory-mapped file into memory of their own.

    The file's pages would otherwise stay resident beside any converted
    copy (a channels-last conversion keeps the mapping open through the
    biases), and a mapped file that is truncated under a running job kills
    it; once nothing refers to the mapping, it closes.
    """
    with torch.no_grad():
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.device.type == "cpu":
                tensor.data = tensor.data.clone()


_AUTOCAST_LOWERED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


def _store_for_autocast(module: nn.Module, dtype: torch.dtype) -> None:
    """Keep the weights of the layers autocast runs in `dtype` in that dtype already.

    Autocast casts a float32 weight to `dtype` at each call (and caches the
    copy while its context is open); storing it cast gives the very same
    arithmetic (the Wav2Lip stage's output is bit-identical, tested) from
    half the memory, with no cached copies. Normalisation layers, which
    autocast keeps in float32, are left as they are.
    """
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, _AUTOCAST_LOWERED):
                for tensor in (layer.weight, layer.bias):
                    if tensor is not None and tensor.is_floating_point():
                        tensor.data = tensor.data.to(dtype)


def _tensors(module: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    """Every tensor a module holds: parameters, buffers and plain tensor attributes."""
    yield from module.named_parameters()
    yield from module.named_buffers()
    for prefix, child in module.named_modules():
        for key, value in vars(child).items():
            if isinstance(value, torch.Tensor):
                yield f"{prefix}.{key}" if prefix else key, value


def load_model(
    name: str | Checkpoint,
    *,
    weights_dirs: Iterable[str | Path] = (),
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    autocast: torch.dtype | None = None,
) -> nn.Module:
    """The network `name` with its official weights, built once per process.

    `weights_dirs` are the user's ``--weights`` folders (searched before
    $LIPSTREAM_WEIGHTS and the cache folder). The same (files, device, dtype,
    autocast) returns the same module object, shared: never train or modify it.
    `autocast`: the module will only ever run under `torch.autocast` in that
    dtype (`cpu_autocast`), so its convolution and linear weights are stored
    in it (see `_store_for_autocast`).
    """
    entry = _entry(name)
    paths = locate(entry, weights_dirs)
    try:
        target = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"unknown device {device!r} ({exc}); use e.g. cpu, cuda, cuda:1, mps") from None
    stamps = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    key = (entry, stamps, str(target), dtype, autocast)
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            log.info("loading %s from %s", entry.name, ", ".join(map(str, paths)))
            model = _build(entry, paths)
            try:
                model = model.to(device=target, dtype=dtype)
            except (RuntimeError, AssertionError) as exc:  # e.g. "Torch not compiled with CUDA enabled"
                raise InputError(f"cannot use device {target} ({exc}); choose another --device, e.g. cpu") from None
            if any(zipfile.is_zipfile(p) for p in paths):  # read memory-mapped (`_load`)
                _own_memory(model)
            if autocast is not None:
                _store_for_autocast(model, autocast)
            _CACHE[key] = model
    return model


def inference_dtype(name: str | Checkpoint, device: str | torch.device, precision: str = "auto") -> torch.dtype:
    """float16 on CUDA for the networks measured to keep their output in half precision
    (`Checkpoint.half`), float32 everywhere else (CPU float16 is emulated and slow) and
    whenever `precision` is "float32"."""
    half = precision == "auto" and _entry(name).half and torch.device(device).type == "cuda"
    return torch.float16 if half else torch.float32


def cpu_autocast(name: str | Checkpoint, device: str | torch.device, precision: str = "auto") -> torch.dtype | None:
    """bfloat16 for a float32 network on a CPU that computes it natively, when the network is
    measured to allow it (`Checkpoint.bf16`) and `precision` is "auto"; else None (no autocast).

    Emulated bfloat16 is slower than float32, so CPUs without it keep float32.
    """
    if precision != "auto" or not _entry(name).bf16 or torch.device(device).type != "cpu":
        return None
    return torch.bfloat16 if _native_bf16() else None


def _native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def clear_cache() -> None:
    """Forget every cached model (tests, or to free memory)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def load_data(name: str | Checkpoint, *, weights_dirs: Iterable[str | Path] = ()) -> dict[str, Any]:
    """The variables of a data entry's .mat file (scipy.io.loadmat), e.g. ``load_data("expression")``."""
    entry = _entry(name)
    if entry.kind != "data":
        raise ValueError(f"{entry.name} is a network; use load_model")
    (path,) = locate(entry, weights_dirs)
    check_file(entry.files[0], path)
    return _read_mat(path)


def _read_mat(path: Path) -> dict[str, Any]:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise InputError(f"reading {path} needs scipy; install it with `pip install scipy`") from None
    try:
        return {k: v for k, v in loadmat(str(path)).items() if not k.startswith("__")}
    except Exception as exc:  # scipy raises several unrelated types for a bad file
        raise WeightsError(f"{path} cannot be read as a MATLAB .mat file ({exc}); download it again") from None


# ------------------------------------------------------------------ verify

Status = Literal["ok", "missing", "failed"]


@dataclass(frozen=True)
class VerifyResult:
    """What `verify` found for one registry entry."""

    name: str
    status: Status
    detail: str
    paths: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "paths": list(self.paths)}


def verify(name: str | Checkpoint, *, weights_dirs: Iterable[str | Path] = ()) -> VerifyResult:
    """Load the files of `name` as the engines would and report, never raising for bad files.

    Networks are built on the CPU (uncached) and loaded strictly, then their
    parameters counted against the declared number. Data files are opened
    with scipy when it is installed.
    """
    entry = _entry(name)
    dirs = search_dirs(weights_dirs)
    found = [find_file(spec, dirs) for spec in entry.files]
    present = tuple(str(p) for p in found if p is not None)
    if None in found:
        absent = ", ".join(spec.relpath for spec, p in zip(entry.files, found) if p is None)
        return VerifyResult(entry.name, "missing", f"not found: {absent}", present)
    paths = [p for p in found if p is not None]
    try:
        if entry.kind == "data":
            check_file(entry.files[0], paths[0])
            try:
                variables = _read_mat(paths[0])
            except InputError as exc:
                if isinstance(exc, WeightsError):
                    raise
                return VerifyResult(entry.name, "ok", f"present; not opened ({exc})", present)
            return VerifyResult(entry.name, "ok", f"variables: {', '.join(sorted(variables))}", present)
        module = _build(entry, paths)
        counted = sum(p.numel() for p in module.parameters())
        del module
        if entry.num_params is not None and counted != entry.num_params:
            return VerifyResult(entry.name, "failed", f"{counted:,} parameters, declared {entry.num_params:,}", present)
        return VerifyResult(entry.name, "ok", f"loads strictly into {entry.network}, {counted:,} parameters", present)
    except WeightsError as exc:
        return VerifyResult(entry.name, "failed", str(exc), present)
