"""Engine choice: `auto` takes the best engine whose checkpoints are present, else warp."""

from dataclasses import replace

import pytest

from lipstream.config import SyncConfig, WindowConfig
from lipstream.errors import InputError
from lipstream.pipeline.engines import ENGINES, build_stages, choose


@pytest.fixture(autouse=True)
def no_other_weights(monkeypatch, tmp_path):
    monkeypatch.delenv("LIPSTREAM_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_auto_without_checkpoints_is_warp(tmp_path):
    assert choose(SyncConfig(engine="auto", weights=(tmp_path,))).name == "warp"


def test_auto_prefers_the_best_engine_found(tmp_path):
    (tmp_path / "wav2lip.pth").write_bytes(b"present")
    assert choose(SyncConfig(engine="auto", weights=(tmp_path,))).name == "wav2lip"


def test_unknown_engine_is_an_input_error():
    with pytest.raises(InputError, match="unknown engine 'nope'"):
        choose(SyncConfig(engine="nope"))


def test_windows_grow_to_the_context_an_engine_reads(monkeypatch):
    monkeypatch.setitem(ENGINES, "wide", replace(ENGINES["passthrough"], name="wide", min_overlap=26))
    config, stages = build_stages(SyncConfig(engine="wide", window=WindowConfig(size=16, overlap=4)))
    assert config.window.overlap == 26 and config.window.size > 26 and config.engine == "wide" and stages
