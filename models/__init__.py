"""Networks and face models.

One file per network, named after its official checkpoint keys; each file
starts with its provenance and exposes a `remap(state_dict) -> state_dict`
that turns the official checkpoint layout into the module's keys (through
the one cleaner, `_state.clean_state_dict`). Layers several networks share
live in `layers.py`; checkpoints are declared as data in `_registry.py` and
opened only by `_loading.py`.

The public API, importable without loading torch until a model is asked for:

    from lipstream.models import checkpoints, load_model
    checkpoints()["wav2lip"].files           # what to download, from where, under which licence
    net = load_model("wav2lip", weights_dirs=["~/weights"], device="cuda:0")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._registry import CHECKPOINTS, Checkpoint, WeightFile

if TYPE_CHECKING:
    from ._loading import VerifyResult, load_model, verify

__all__ = ["Checkpoint", "VerifyResult", "WeightFile", "checkpoints", "load_model", "verify"]


def checkpoints() -> dict[str, Checkpoint]:
    """Every checkpoint lipstream can use, by registry name."""
    return dict(CHECKPOINTS)


def __getattr__(name: str) -> Any:
    if name in ("load_model", "verify", "VerifyResult"):
        from . import _loading

        return getattr(_loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
