"""Engine choice: `auto` takes the best engine whose checkpoints are present, else the exemplar engine."""

from dataclasses import replace

import pytest

from lipstream.config import SyncConfig, WindowConfig
from lipstream.errors import InputError, WeightsError
from lipstream.models._registry import CHECKPOINTS, get
from lipstream.pipeline.engines import ENGINES, available, build_stages, choose
from lipstream.pipeline.engines.base import resolve


@pytest.fixture(autouse=True)
def no_other_weights(monkeypatch, tmp_path):
    monkeypatch.delenv("LIPSTREAM_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_auto_without_checkpoints_is_the_exemplar_engine(tmp_path):
    assert choose(SyncConfig(engine="auto", weights=(tmp_path,))).name == "exemplar"


def test_auto_prefers_the_best_engine_found(tmp_path):
    (tmp_path / "wav2lip.pth").write_bytes(b"present")
    assert choose(SyncConfig(engine="auto", weights=(tmp_path,))).name == "wav2lip"
    assert [e.name for e in available([tmp_path])] == ["wav2lip", "exemplar", "warp"]
    for name in ("lnet", "enet", "dnet", "face3d_recon", "bfm_lm3d", "expression"):
        for spec in get(name).files:
            (tmp_path / spec.relpath).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / spec.relpath).write_bytes(b"x")
    assert [e.name for e in available([tmp_path])] == ["retalking", "wav2lip", "exemplar", "warp"]
    (tmp_path / "BFM" / "similarity_Lm3D_all.mat").unlink()
    assert [e.name for e in available([tmp_path])] == ["wav2lip", "exemplar", "warp"]
    assert choose(SyncConfig(engine="auto", weights=(tmp_path,))).name == "wav2lip"


def test_every_engine_needs_known_entries_and_declares_its_facts_once():
    for engine in ENGINES.values():
        assert all(name in CHECKPOINTS for requirement in engine.checkpoints for name in requirement), engine.name
    assert ENGINES["wav2lip"].checkpoints == (("wav2lip_gan", "wav2lip"),)
    assert {n for (n,) in ENGINES["retalking"].checkpoints} == {"lnet", "enet", "dnet", "face3d_recon", "bfm_lm3d", "expression"}
    assert ENGINES["retalking"].context == 26 and ENGINES["wav2lip"].context == 4
    assert ENGINES["passthrough"].rank is None and ENGINES["faces"].rank is None


def test_resolve_takes_the_first_alternative_found(tmp_path):
    (tmp_path / "wav2lip.pth").write_bytes(b"x")
    found = resolve(ENGINES["wav2lip"], [tmp_path])
    assert dict(found.files) == {"wav2lip": (tmp_path / "wav2lip.pth",)}
    (tmp_path / "wav2lip_gan.pth").write_bytes(b"x")
    found = resolve(ENGINES["wav2lip"], [tmp_path])
    assert dict(found.files) == {"wav2lip_gan": (tmp_path / "wav2lip_gan.pth",)}
    assert found.name_for(ENGINES["wav2lip"].checkpoints[0]) == "wav2lip_gan"


def test_missing_checkpoints_are_one_line_naming_files_and_where_to_get_them(tmp_path):
    with pytest.raises(WeightsError) as raised:
        resolve(ENGINES["wav2lip"], [tmp_path])
    message = str(raised.value)
    assert "\n" not in message and "wav2lip_gan.pth or wav2lip.pth" in message
    assert "https://github.com/Rudrabha/Wav2Lip" in message and "weights fetch" not in message
    with pytest.raises(WeightsError) as raised:
        resolve(ENGINES["retalking"], [tmp_path])
    message = str(raised.value)
    assert message.count("LNet.pth") == 1 and "expression.mat" in message and "BFM/similarity_Lm3D_all.mat" in message
    assert "`lipstream weights fetch lnet enet dnet face3d_recon bfm_lm3d expression`" in message
    assert "https://" not in message.split("not found in")[0]


def test_unknown_engine_is_an_input_error():
    with pytest.raises(InputError, match="unknown engine 'nope'"):
        choose(SyncConfig(engine="nope"))


def test_windows_grow_to_the_context_an_engine_reads(monkeypatch):
    monkeypatch.setitem(ENGINES, "wide", replace(ENGINES["passthrough"], name="wide", context=26))
    plan = build_stages(SyncConfig(engine="wide", window=WindowConfig(size=16, overlap=4)))
    config = plan.config
    assert config.window.overlap == 26 and config.window.size > 26 and config.engine == "wide" and plan.stages
