"""Checkpoint files in the official layouts, with the golden references' deterministic fills.

What a user downloads is random-looking weights in a known container; these
files have the same containers, keys and shapes (so they exercise the
registry, the search order and strict loading exactly as the real files
would) and the same arithmetic cost, with numbers that are reproducible.
"""

from __future__ import annotations

from pathlib import Path

import torch

from golden_fill import filled_state_dict, load_golden
from retalking_fixtures import write_bfm


def _filled(name: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    manifest, _ = load_golden(name)
    return filled_state_dict(module, manifest["fill"]["mode"], manifest["fill"]["gain"])


def write_wav2lip(folder: Path, filename: str = "wav2lip.pth") -> Path:
    """wav2lip.pth / wav2lip_gan.pth as the training script saves them: 'state_dict' with 'module.' keys."""
    from lipstream.models.wav2lip import Wav2Lip

    folder.mkdir(parents=True, exist_ok=True)
    state = {f"module.{k}": v for k, v in _filled("wav2lip", Wav2Lip()).items()}
    torch.save({"state_dict": state, "optimizer": {}, "global_step": 0, "global_epoch": 0}, folder / filename)
    return folder / filename


def write_enhancers(folder: Path) -> Path:
    """GPEN-BFR-512.pth and ParseNet-latest.pth (plain state_dicts), GFPGANv1.4.pth ('params_ema')."""
    from lipstream.models.gfpgan import GFPGANv1Clean
    from lipstream.models.gpen import FullGenerator
    from lipstream.models.parsenet import ParseNet

    folder.mkdir(parents=True, exist_ok=True)
    torch.save(_filled("gpen512", FullGenerator()), folder / "GPEN-BFR-512.pth")
    torch.save(_filled("parsenet", ParseNet()), folder / "ParseNet-latest.pth")
    torch.save({"params_ema": _filled("gfpgan_v1_clean", GFPGANv1Clean())}, folder / "GFPGANv1.4.pth")
    return folder


def write_retalking(folder: Path) -> Path:
    """LNet.pth, ENet.pth, DNet.pt, face3d_pretrain_epoch_20.pth, BFM/ and expression.mat."""
    from lipstream.models.dnet import DNet
    from lipstream.models.enet import ENet
    from lipstream.models.face3d_recon import Face3dRecon

    folder.mkdir(parents=True, exist_ok=True)
    enet = _filled("enet", ENet())
    lnet = {k.removeprefix("low_res."): v for k, v in enet.items() if k.startswith("low_res.")}
    torch.save({"state_dict": lnet}, folder / "LNet.pth")
    torch.save({"state_dict": {k: v for k, v in enet.items() if not k.startswith("low_res.")}}, folder / "ENet.pth")
    del enet, lnet
    torch.save({"net_G_ema": _filled("dnet", DNet()), "net_G": {}}, folder / "DNet.pt")
    torch.save({"net_recon": _filled("face3d_recon", Face3dRecon()), "epoch": 20}, folder / "face3d_pretrain_epoch_20.pth")
    write_bfm(folder)
    return folder
