"""The VideoReTalking engine (`--engine retalking`): stabilise, generate, compose, window by window.

    face ──> stabilise (face3d + D-Net, device) ──> [refine (GPEN, best)] ──> generate (E-Net, device) ──> compose (thread)

What differs from the original pipeline (OpenTalker/video-retalking
``inference.py``): landmarks come once from the face stage and every step
reuses them (no dlib, FAN, S3FD or RetinaFace passes); the networks run on
the owned frames of a window and nothing is kept beyond a window (D-Net's
26-frame context comes from the window overlap, `MIN_OVERLAP`); the
stabilised face is the reference as it is below `best`; E-Net's style
vector is computed once per window and its upsampler only for the rows the
mouth mask reaches; the mouth mask comes from the landmarks and one
Laplacian blend at the face box's resolution replaces two at 512 (`best`
adds GFPGAN with one ParseNet pass per frame, where the original runs it
twice).

Quality (CPU seconds per frame on demo2, 1 thread, tools/bench_retalking.py;
the original's models cost ~24 s on the same machine)
    ``balanced`` (default): D-Net on every frame, E-Net at 384. ~2.5 s.
    ``fast``: D-Net on one frame in 4 (the frames around it take that
    stabilised face, moved onto their own by a similarity of the eye and
    nose landmarks), L-Net alone at 96 (no E-Net upsampler): ~0.7 s, a
    softer mouth on large faces.
    ``best``: VideoReTalking's recipe on top of ``balanced``: the D-Net
    references restored by GPEN-BFR-512 inside the landmarks' face outline
    (`refine.py`), and the drawn mouth restored by GFPGAN (the shared
    enhance stage, `--enhance auto`). Several times the cost of ``balanced``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lipstream.config import SyncConfig
from lipstream.errors import WeightsError

from ...stage import Stage
from ..base import Found
from .config import EXPRESSIONS, RetalkingConfig

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

__all__ = ["load_face3d_data", "model_stages", "retalking_stages"]


def load_face3d_data(weights_dirs: tuple[Path, ...] = (), expression: str = "neutral") -> tuple[np.ndarray, np.ndarray]:
    """(template5 (5, 3), expression (64,)) from BFM/similarity_Lm3D_all.mat and expression.mat."""
    from lipstream.models._face3d_coeffs import five_points
    from lipstream.models._loading import load_data

    lm = np.asarray(load_data("bfm_lm3d", weights_dirs=weights_dirs).get("lm", np.zeros(0)), dtype=np.float64)
    if lm.shape != (68, 3):
        raise WeightsError(
            f"BFM/similarity_Lm3D_all.mat must hold 'lm' of shape (68, 3), got {lm.shape}; download BFM.zip again"
        )
    key = EXPRESSIONS[expression]
    values = load_data("expression", weights_dirs=weights_dirs).get(key)
    template = np.zeros(0) if values is None else np.asarray(values, dtype=np.float32).reshape(-1)
    if template.size < 64:
        raise WeightsError(f"expression.mat must hold {key!r} with at least 64 coefficients; download expression.mat again")
    return five_points(lm), template[:64]


def retalking_stages(config: SyncConfig, found: Found, engine: RetalkingConfig | None = None) -> list[Stage]:
    """The engine's stages with the official weights `found`, built once per job."""
    from lipstream.models._loading import load_model

    from ...faces.stage import face_stage

    if engine is None:
        engine = RetalkingConfig(quality=config.quality)
    template5, expression = load_face3d_data(found.weights, engine.expression)
    face3d, dnet, enet = (load_model(n, weights_dirs=found.weights, device=config.device) for n in ("face3d_recon", "dnet", "enet"))
    refine = None
    if engine.quality == "best":
        refine = load_model("gpen512", weights_dirs=found.weights, device=config.device)
    models = model_stages(face3d, dnet, enet, template5, expression, engine, config.device, refine)  # type: ignore[arg-type]
    return [face_stage(config), *models]


def model_stages(
    face3d: nn.Module,
    dnet: nn.Module,
    enet: nn.Module,
    template5: np.ndarray,
    expression: np.ndarray,
    engine: RetalkingConfig = RetalkingConfig(),
    device: str = "cpu",
    refine: nn.Module | None = None,
) -> list[Stage]:
    """Stabilise, (refine,) generate and compose around built networks and the BFM data (tests pass filled ones).

    `refine` is GPEN-BFR-512 for `best` quality: the references are restored before E-Net.
    """
    from .compose import ComposeStage
    from .generate import GenerateStage
    from .refine import RefineReferences
    from .stabilise import StabiliseStage

    image_batch = engine.image_batch_for(device)
    refined: list[Stage] = [] if refine is None else [RefineReferences(refine, device=device)]
    return [
        StabiliseStage(
            face3d,
            dnet,
            template5,
            expression,
            device=device,
            every=engine.stabilise_every,
            batch_size=engine.batch_size,
            dnet_batch=image_batch,
        ),
        *refined,
        GenerateStage(
            enet,
            device=device,
            full=engine.full_size,
            style=engine.style,
            batch_size=image_batch if engine.full_size else engine.batch_size,
            pads=engine.pads,
            feather=engine.feather,
        ),
        ComposeStage(),
    ]
