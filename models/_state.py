"""The one state-dict cleaner every network's `remap` goes through.

Official checkpoints wrap their weights in different containers
(``'state_dict'``, ``'net_G_ema'``, ``'params_ema'``, ...) and keys saved
from DataParallel carry leading ``module.`` prefixes. Each network's `remap`
names its wrapper and any renames; the unwrapping and the prefix stripping
live here once.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["clean_state_dict"]

_PREFIX = "module."


def clean_state_dict(checkpoint: Mapping[str, object], wrapper: str | None = None) -> dict[str, torch.Tensor]:
    """The weights of `checkpoint` under their plain keys.

    Takes ``checkpoint[wrapper]`` when `wrapper` is given and present (a bare
    state_dict passes as it is) and strips every leading ``module.``. Pure:
    the input is not modified and tensors are not copied.
    """
    state = checkpoint.get(wrapper, checkpoint) if wrapper is not None else checkpoint
    if not isinstance(state, Mapping):
        raise TypeError(f"expected a state_dict mapping, got {type(state).__name__}")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        while key.startswith(_PREFIX):
            key = key[len(_PREFIX) :]
        out[key] = value  # type: ignore[assignment]
    return out
