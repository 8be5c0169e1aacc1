"""The checkpoint registry and the loader: declarations, search order, strict loading, clear errors."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

_TESTS = str(Path(__file__).resolve().parents[1])  # holds golden_fill
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
from golden_fill import filled_state_dict  # noqa: E402

from lipstream.errors import WeightsError  # noqa: E402
from lipstream.models import _loading, _registry  # noqa: E402
from lipstream.models._registry import CHECKPOINTS, Checkpoint, WeightFile  # noqa: E402
from lipstream.models.syncnet_color import SyncNetColor  # noqa: E402


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No user folders: only what a test passes is searched."""
    monkeypatch.delenv("LIPSTREAM_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _loading.clear_cache()
    yield
    _loading.clear_cache()


@pytest.fixture(scope="module")
def syncnet_state() -> dict[str, torch.Tensor]:
    return filled_state_dict(SyncNetColor(), "fan_in", 1.0)


@pytest.fixture(scope="module")
def official(tmp_path_factory, syncnet_state) -> Path:
    """lipsync_expert.pth in the official layout: 'state_dict' with DataParallel 'module.' keys."""
    folder = tmp_path_factory.mktemp("official")
    wrapped = {"module." + k: v for k, v in syncnet_state.items()}
    torch.save({"state_dict": wrapped, "global_step": 7, "global_epoch": 1}, folder / "lipsync_expert.pth")
    return folder


def _save(folder: Path, obj: object, name: str = "lipsync_expert.pth") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(obj, folder / name)
    return folder


# ------------------------------------------------------------------ declarations


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_entry_is_well_formed(name):
    entry = CHECKPOINTS[name]
    assert entry.name == name and entry.files and entry.licence and entry.title
    for spec in entry.files:
        assert spec.urls or spec.pages, f"{spec.filename}: say where it is published"
        assert all(u.startswith("https://") for u in spec.urls + spec.pages), spec.urls + spec.pages
    if entry.kind == "data":
        assert entry.module is None and entry.num_params is None
    else:
        assert entry.module and entry.network and entry.num_params, "every network is implemented and counted"


@pytest.mark.parametrize("name", sorted(n for n, c in CHECKPOINTS.items() if c.kind == "network"))
def test_declared_params_equal_the_module(name):
    entry = CHECKPOINTS[name]
    module = importlib.import_module(entry.module)
    declared = module.NUM_PARAMS if entry.config is None else module.NUM_PARAMS[entry.config]
    assert entry.num_params == declared
    assert isinstance(getattr(module, entry.network), type)
    assert callable(getattr(module, entry.remap))


def test_registry_imports_no_network_and_no_torch():
    code = (
        "import sys, lipstream.models._registry as r; r.search_dirs(); "
        "print(sorted(m for m in sys.modules if m.startswith('lipstream.models.')), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['lipstream.models._registry'] False"


@pytest.mark.parametrize(
    "bad",
    [
        {"sha256": "ABC"},
        {"sha256": "0" * 63},
        {"size": 0},
        {"member": "x.pth"},
    ],
)
def test_bad_file_declarations_are_refused(bad):
    with pytest.raises(ValueError):
        WeightFile("x.pth", pages=("https://example.org",), **bad)
    WeightFile("x.pth", sha256="0" * 64, size=1, urls=("https://example.org/x.pth",))


# ------------------------------------------------------------------ search order


def test_search_order(tmp_path):
    env = {"LIPSTREAM_WEIGHTS": f"{tmp_path / 'e1'}{os.pathsep}{tmp_path / 'e2'}", "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    dirs = _registry.search_dirs([tmp_path / "cli", tmp_path / "e1"], env=env)
    assert dirs == [tmp_path / "cli", tmp_path / "e1", tmp_path / "e2", tmp_path / "xdg" / "lipstream"]
    for folder in (tmp_path / "e2", tmp_path / "cli"):
        folder.mkdir()
        (folder / "LNet.pth").write_bytes(b"x")
    assert _registry.find_file(CHECKPOINTS["lnet"].files[0], dirs) == tmp_path / "cli" / "LNet.pth"


def test_cache_dir_default(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _registry.cache_dir() == tmp_path / ".cache" / "lipstream"


# ------------------------------------------------------------------ loading


def test_official_layout_loads_strictly_and_is_cached(official, syncnet_state):
    model = _loading.load_model("syncnet_color", weights_dirs=[official])
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, syncnet_state[key]), key
    assert _loading.load_model("syncnet_color", weights_dirs=[official]) is model
    half = _loading.load_model("syncnet_color", weights_dirs=[official], dtype=torch.float64)
    assert half is not model and next(half.parameters()).dtype == torch.float64


def test_old_checkpoints_without_batchnorm_counters_load(tmp_path, syncnet_state):
    old = {k: v for k, v in syncnet_state.items() if not k.endswith("num_batches_tracked")}
    model = _loading.load_model("syncnet_color", weights_dirs=[_save(tmp_path, {"state_dict": old})])
    assert torch.equal(model.state_dict()["face_encoder.0.conv_block.0.weight"], syncnet_state["face_encoder.0.conv_block.0.weight"])


def test_legacy_and_half_precision_files_load(tmp_path, syncnet_state):
    """Files saved by torch < 1.6 (not zip: read whole) and files of float16 tensors (cast to the network's float32)."""
    wrapped = {"module." + k: v for k, v in syncnet_state.items()}
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    torch.save({"state_dict": wrapped}, legacy / "lipsync_expert.pth", _use_new_zipfile_serialization=False)
    model = _loading.load_model("syncnet_color", weights_dirs=[legacy])
    for key, value in model.state_dict().items():
        assert torch.equal(value, syncnet_state[key]), key
    halved = {k: v.half() if v.is_floating_point() else v for k, v in wrapped.items()}
    model = _loading.load_model("syncnet_color", weights_dirs=[_save(tmp_path / "half", {"state_dict": halved})])
    weight = model.state_dict()["face_encoder.0.conv_block.0.weight"]
    assert weight.dtype == torch.float32
    assert torch.equal(weight, syncnet_state["face_encoder.0.conv_block.0.weight"].half().float())


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_only_the_networks_tensors_are_read(tmp_path, syncnet_state):
    """A zip checkpoint is memory-mapped: 200 MB of optimizer state beside the weights is never read."""
    wrapped = {"module." + k: v for k, v in syncnet_state.items()}
    big = {"state_dict": wrapped, "optimizer": {"state": {0: {"exp_avg": torch.ones(50_000_000)}}}}
    folder = _save(tmp_path, big)
    code = (
        "import re, sys, torch\n"
        "from lipstream.models._loading import load_model\n"
        # VmHWM, the peak of this process image (ru_maxrss would carry the parent's over exec)
        "peak = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])\n"
        "before = peak()\n"
        "model = load_model('syncnet_color', weights_dirs=[sys.argv[1]])\n"
        "assert sum(p.sum().item() for p in model.parameters()) != 0\n"
        "print((peak() - before) // 1024)\n"
    )
    grown = int(subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True).stdout)
    # the weights read from the file and copied into memory of their own: 2 x 66 MB; the whole file would add 200 MB more
    assert grown < 180, f"loading grew the peak by {grown} MB; the weights are 66 MB, the file 266 MB"


def test_networks_with_tensors_of_their_own_are_built_normally(tmp_path, syncnet_state, monkeypatch):
    """A network whose constructor makes a tensor outside its state dict is not built on the meta device."""
    from lipstream.models import syncnet_color

    class WithConstant(SyncNetColor):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("scale", torch.full((1,), 2.0), persistent=False)

    monkeypatch.setattr(syncnet_color, "WithConstant", WithConstant, raising=False)
    entry = CHECKPOINTS["syncnet_color"]
    custom = Checkpoint("syncnet_constant", entry.title, entry.files, entry.licence, module=entry.module, network="WithConstant")
    wrapped = {"module." + k: v for k, v in syncnet_state.items()}
    model = _loading.load_model(custom, weights_dirs=[_save(tmp_path, {"state_dict": wrapped})])
    assert not model.scale.is_meta and model.scale.item() == 2.0
    assert torch.equal(model.state_dict()["face_encoder.0.conv_block.0.weight"], syncnet_state["face_encoder.0.conv_block.0.weight"])


def test_missing_file_names_file_and_folders(tmp_path):
    with pytest.raises(WeightsError) as info:
        _loading.load_model("syncnet_color", weights_dirs=[tmp_path])
    message = str(info.value)
    assert "lipsync_expert.pth" in message and str(tmp_path) in message
    # no direct download exists: the page to get it from, never a `weights fetch` that would refuse
    assert "https://github.com/Rudrabha/Wav2Lip" in message and "weights fetch" not in message
    with pytest.raises(WeightsError) as info:
        _loading.load_model("dnet", weights_dirs=[tmp_path])
    assert "DNet.pt" in str(info.value) and "`lipstream weights fetch dnet`" in str(info.value)


def test_truncated_file(tmp_path, official):
    data = (official / "lipsync_expert.pth").read_bytes()
    (tmp_path / "lipsync_expert.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt") as info:
        _loading.load_model("syncnet_color", weights_dirs=[tmp_path])
    assert str(tmp_path / "lipsync_expert.pth") in str(info.value)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda sd: {k: v for k, v in sd.items() if not k.startswith("audio_encoder.13.")}, r"missing keys \(e\.g\. audio_encoder\.13\."),
        (lambda sd: {**sd, "extra.weight": torch.zeros(1)}, r"1 unexpected keys \(e\.g\. extra\.weight"),
        (lambda sd: {**sd, "face_encoder.0.conv_block.0.bias": torch.zeros(33)}, r"other shapes .*file \(33,\), network \(32,\)"),
    ],
    ids=["missing", "unexpected", "shape"],
)
def test_mismatched_file(tmp_path, syncnet_state, change, expected):
    _save(tmp_path, {"state_dict": change(dict(syncnet_state))})
    with pytest.raises(WeightsError, match=expected) as info:
        _loading.load_model("syncnet_color", weights_dirs=[tmp_path])
    assert "does not fit SyncNetColor" in str(info.value) and "lipsync_expert.pth" in str(info.value)


def test_not_a_checkpoint_dict(tmp_path):
    _save(tmp_path, torch.zeros(3))
    with pytest.raises(WeightsError, match="not a checkpoint dict"):
        _loading.load_model("syncnet_color", weights_dirs=[tmp_path])


class _Payload:
    """Anything that is not tensors and plain containers: weights_only refuses it."""


def test_unsafe_pickle_is_refused(tmp_path):
    _save(tmp_path, {"state_dict": _Payload()})
    with pytest.raises(WeightsError, match="cannot be loaded safely"):
        _loading.load_model("syncnet_color", weights_dirs=[tmp_path])


def _custom(official: Path, **file_fields: object) -> Checkpoint:
    entry = CHECKPOINTS["syncnet_color"]
    spec = WeightFile("lipsync_expert.pth", **file_fields)  # type: ignore[arg-type]
    return Checkpoint("syncnet_pinned", entry.title, (spec,), entry.licence, module=entry.module, network=entry.network, num_params=entry.num_params)


def test_declared_hash_and_size_are_checked(official):
    path = official / "lipsync_expert.pth"
    good = _loading.file_sha256(path)
    assert _loading.load_model(_custom(official, sha256=good, size=path.stat().st_size), weights_dirs=[official])
    with pytest.raises(WeightsError, match="sha256 .* differs"):
        _loading.load_model(_custom(official, sha256="0" * 64), weights_dirs=[official])
    with pytest.raises(WeightsError, match=r"truncated"):
        _loading.load_model(_custom(official, size=path.stat().st_size + 1), weights_dirs=[official])


# ------------------------------------------------------------------ verify and data


def test_verify_reports_each_case(tmp_path, official):
    assert _loading.verify("syncnet_color", weights_dirs=[official]).status == "ok"
    assert "16,435,072 parameters" in _loading.verify("syncnet_color", weights_dirs=[official]).detail
    assert _loading.verify("wav2lip", weights_dirs=[tmp_path]).status == "missing"
    (tmp_path / "lipsync_expert.pth").write_bytes(b"not a checkpoint")
    failed = _loading.verify("syncnet_color", weights_dirs=[tmp_path])
    assert failed.status == "failed" and "lipsync_expert.pth" in failed.detail
    (tmp_path / "ENet.pth").write_bytes(b"x")
    partial = _loading.verify("enet", weights_dirs=[tmp_path])
    assert partial.status == "missing" and partial.detail == "not found: LNet.pth"


def test_data_files_load_with_scipy(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    scipy_io.savemat(tmp_path / "expression.mat", {"expression_center": np.zeros((1, 64)), "expression_mouth": np.ones((1, 64))})
    data = _loading.load_data("expression", weights_dirs=[tmp_path])
    assert set(data) == {"expression_center", "expression_mouth"} and data["expression_mouth"].shape == (1, 64)
    assert _loading.verify("expression", weights_dirs=[tmp_path]).detail == "variables: expression_center, expression_mouth"
    (tmp_path / "BFM").mkdir()
    (tmp_path / "BFM" / "similarity_Lm3D_all.mat").write_bytes(b"garbage")
    bad = _loading.verify("bfm_lm3d", weights_dirs=[tmp_path])
    assert bad.status == "failed" and "similarity_Lm3D_all.mat" in bad.detail
