"""The VideoReTalking engine (`--engine retalking`): stabilise, generate, compose, window by window.

    face ──> stabilise (face3d + D-Net, device) ──> generate (E-Net, device) ──> compose (thread)

What differs from the original pipeline (OpenTalker/video-retalking
``inference.py``): landmarks come once from the face stage and every step
reuses them (no dlib, FAN, S3FD or RetinaFace passes); the networks run on
the owned frames of a window and nothing is kept beyond a window (D-Net's
26-frame context comes from the window overlap, `MIN_OVERLAP`); the
stabilised face is the reference as it is (no GPEN: it did not help once
the work is cropped); E-Net's style vector is computed once per window and
its upsampler only for the rows the mouth mask reaches; no GFPGAN pass; the
mouth mask comes from the landmarks (no ParseNet) and one Laplacian blend
at the face box's resolution replaces two at 512.

Quality (CPU seconds per frame on demo2, 1 thread, tools/bench_retalking.py;
the original's models cost ~24 s on the same machine)
    ``balanced`` (default): D-Net on every frame, E-Net at 384. ~2.5 s.
    ``fast``: D-Net on one frame in 4 (the frames around it take that
    stabilised face, moved onto their own by a similarity of the eye and
    nose landmarks), L-Net alone at 96 (no E-Net upsampler): ~0.7 s, a
    softer mouth on large faces.
    ``best``: the same as ``balanced`` until lipstream has face enhancers
    (GPEN/GFPGAN), which it will then add.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from lipstream.config import SyncConfig
from lipstream.errors import WeightsError

from .stage import Stage

if TYPE_CHECKING:  # importing this module stays cheap: engines.py may read MIN_OVERLAP from it
    from torch import nn

log = logging.getLogger(__name__)

__all__ = [
    "MIN_OVERLAP",
    "Quality",
    "RetalkingConfig",
    "load_face3d_data",
    "model_stages",
    "require_files",
    "retalking_stages",
]

MIN_OVERLAP = 26
"""Window overlap the engine needs: D-Net reads frames idx-13 .. idx+12, and the
planner puts overlap // 2 frames before a window's owned frames and the rest after."""

Quality = Literal["fast", "balanced", "best"]
_EXPRESSIONS = {"neutral": "expression_center", "smile": "expression_mouth"}


@dataclass(frozen=True)
class RetalkingConfig:
    """Options of the retalking engine."""

    quality: Quality = "balanced"
    expression: Literal["neutral", "smile"] = "neutral"  # the template D-Net gives every reference
    batch_size: int = 4  # frames per face3d / L-Net call (small inputs: batching pays everywhere)
    image_batch: int | None = None  # frames per D-Net / E-Net call; None: see `image_batch_for`
    style: Literal["window", "frame"] = "window"  # how often E-Net's style vector is computed
    pads: tuple[float, float, float, float] = (0.0, 0.1, 0.0, 0.0)  # E-Net box: top, bottom, left, right (face fractions)
    feather: float = 0.04  # mouth mask softness, in box heights

    def __post_init__(self) -> None:
        if self.quality not in ("fast", "balanced", "best"):
            raise ValueError(f"quality must be fast, balanced or best, got {self.quality!r}")
        if self.expression not in _EXPRESSIONS:
            raise ValueError(f"expression must be one of {', '.join(_EXPRESSIONS)}, got {self.expression!r}")
        if self.batch_size < 1 or (self.image_batch is not None and self.image_batch < 1):
            raise ValueError(f"batch sizes must be >= 1, got {self.batch_size}, {self.image_batch}")

    @property
    def full_size(self) -> bool:
        """E-Net at 384 (True) or L-Net alone at 96."""
        return self.quality != "fast"

    def image_batch_for(self, device: str) -> int:
        """D-Net and E-Net frames per call: 1 on the CPU, where batching them is slower per frame
        (measured: D-Net 0.71 s at batch 1, 1.02 s a frame at batch 8; E-Net no gain at 2 or 4)
        and every E-Net frame holds ~0.4 GB of activations; `batch_size` on accelerators."""
        if self.image_batch is not None:
            return self.image_batch
        return 1 if device.split(":")[0] == "cpu" else self.batch_size

    @property
    def stabilise_every(self) -> int:
        """D-Net runs on one owned frame in this many."""
        return 4 if self.quality == "fast" else 1


def _dirs(config: SyncConfig) -> tuple[Path, ...]:
    return () if config.weights is None else (Path(config.weights),)


def require_files(weights_dirs: tuple[Path, ...] = (), names: tuple[str, ...] | None = None) -> None:
    """One WeightsError naming every file of `names` (default: all the engine needs) that is found nowhere."""
    from lipstream.models._registry import REQUIREMENTS, missing_files, search_dirs

    names = REQUIREMENTS["retalking"] if names is None else names
    dirs = search_dirs(weights_dirs)
    missing: dict[str, list[str]] = {}  # file -> entries that need it (LNet.pth serves lnet and enet)
    for name in names:
        for spec in missing_files(name, dirs):
            missing.setdefault(spec.relpath, []).append(name)
    if missing:
        entries = " ".join(dict.fromkeys(n for needed in missing.values() for n in needed))
        raise WeightsError(
            f"the retalking engine needs {', '.join(missing)}, not found in {', '.join(map(str, dirs))}; "
            f"run `lipstream weights fetch {entries}` or put the files in one of those folders (--weights DIR adds one)"
        )


def load_face3d_data(weights_dirs: tuple[Path, ...] = (), expression: str = "neutral") -> tuple[np.ndarray, np.ndarray]:
    """(template5 (5, 3), expression (64,)) from BFM/similarity_Lm3D_all.mat and expression.mat."""
    from lipstream.models._face3d_coeffs import five_points
    from lipstream.models._loading import load_data

    require_files(weights_dirs, ("bfm_lm3d", "expression"))
    lm = np.asarray(load_data("bfm_lm3d", weights_dirs=weights_dirs).get("lm", np.zeros(0)), dtype=np.float64)
    if lm.shape != (68, 3):
        raise WeightsError(
            f"BFM/similarity_Lm3D_all.mat must hold 'lm' of shape (68, 3), got {lm.shape}; download BFM.zip again"
        )
    key = _EXPRESSIONS[expression]
    values = load_data("expression", weights_dirs=weights_dirs).get(key)
    template = np.zeros(0) if values is None else np.asarray(values, dtype=np.float32).reshape(-1)
    if template.size < 64:
        raise WeightsError(f"expression.mat must hold {key!r} with at least 64 coefficients; download expression.mat again")
    return five_points(lm), template[:64]


def retalking_stages(config: SyncConfig, engine: RetalkingConfig | None = None) -> list[Stage]:
    """The engine's stages with the official weights from the registry, built once per job."""
    from lipstream.models._loading import load_model

    from .face_stage import FaceStage

    if engine is None:
        engine = RetalkingConfig(quality=config.quality)
    dirs = _dirs(config)
    require_files(dirs)
    template5, expression = load_face3d_data(dirs, engine.expression)
    face3d, dnet, enet = (load_model(n, weights_dirs=dirs, device=config.device) for n in ("face3d_recon", "dnet", "enet"))
    if engine.quality == "best":
        log.info("quality best is balanced until face enhancers are available")
    models = model_stages(face3d, dnet, enet, template5, expression, engine, config.device)
    return [FaceStage(config.face, config.window), *models]


def model_stages(
    face3d: nn.Module,
    dnet: nn.Module,
    enet: nn.Module,
    template5: np.ndarray,
    expression: np.ndarray,
    engine: RetalkingConfig = RetalkingConfig(),
    device: str = "cpu",
) -> list[Stage]:
    """Stabilise, generate and compose around built networks and the BFM data (tests pass filled ones)."""
    from .retalking_compose import ComposeStage
    from .retalking_generate import GenerateStage
    from .retalking_stabilise import StabiliseStage
    from .wav2lip_engine import Wav2LipConfig

    image_batch = engine.image_batch_for(device)
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
        GenerateStage(
            enet,
            device=device,
            full=engine.full_size,
            style=engine.style,
            batch_size=image_batch if engine.full_size else engine.batch_size,
            box=Wav2LipConfig(pads=engine.pads),
            feather=engine.feather,
        ),
        ComposeStage(),
    ]
