"""Stand-ins for the retalking engine's data and networks: a made-up BFM, golden-filled networks.

The BFM files are written in the official layout (``BFM/similarity_Lm3D_all.mat``
with ``lm`` (68, 3); ``expression.mat`` with ``expression_center`` and
``expression_mouth`` row vectors) with values made up but shaped like the
real ones: a y-up face of unit-ish size whose five alignment points sit
where a face's eyes, nose tip and mouth corners do. The networks get the
deterministic fill of their golden references (tests/golden/*/manifest.json).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from golden_fill import fill, load_golden
from lipstream.models.dnet import DNet
from lipstream.models.enet import ENet
from lipstream.models.face3d_recon import Face3dRecon

# 1-based 68-point indices of the five alignment points, and made-up 3-D positions (y up)
_FIVE = {
    (37,): (-0.42, 0.31, 0.55),
    (40,): (-0.20, 0.30, 0.60),
    (43,): (0.20, 0.30, 0.60),
    (46,): (0.42, 0.31, 0.55),
    (31,): (0.0, -0.02, 0.95),
    (49,): (-0.24, -0.34, 0.68),
    (55,): (0.24, -0.34, 0.68),
}


def bfm_landmarks() -> np.ndarray:
    """A (68, 3) stand-in for similarity_Lm3D_all.mat ``lm``."""
    rng = np.random.default_rng(68)
    lm = rng.uniform(-0.6, 0.6, (68, 3)) * np.array([1.0, 1.0, 0.3]) + np.array([0.0, 0.0, 0.5])
    for (index,), point in _FIVE.items():
        lm[index - 1] = point
    return lm


def expression_templates() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(64)
    return {"expression_center": 0.1 * rng.standard_normal((1, 64)), "expression_mouth": 0.1 * rng.standard_normal((1, 64))}


def write_bfm(folder: Path, *, landmarks: bool = True, expression: bool = True) -> Path:
    """Write the engine's data files into `folder` (the official checkpoints/ layout)."""
    from scipy.io import savemat

    if landmarks:
        (folder / "BFM").mkdir(parents=True, exist_ok=True)
        savemat(folder / "BFM" / "similarity_Lm3D_all.mat", {"lm": bfm_landmarks()})
    if expression:
        folder.mkdir(parents=True, exist_ok=True)
        savemat(folder / "expression.mat", expression_templates())
    return folder


def filled(name: str, network: nn.Module) -> nn.Module:
    manifest, _ = load_golden(name)
    return fill(network, manifest["fill"]["mode"], manifest["fill"]["gain"]).eval().requires_grad_(False)


def filled_networks() -> tuple[nn.Module, nn.Module, nn.Module]:
    """(face3d, dnet, enet) with the golden fills: random weights, the real cost."""
    return filled("face3d_recon", Face3dRecon()), filled("dnet", DNet()), filled("enet", ENet())
