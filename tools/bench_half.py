"""Half precision against the goldens: which networks may run in float16 on a GPU.

For each network named (default: all of them: the enhance stage's three, Wav2Lip and the
retalking engine's L-Net, E-Net and D-Net), the golden-filled
model runs the golden's first input once in float32 and once in float16 on
`--device` (CPU float16 works, slowly: it rounds every operation's result to
half as CUDA does, accumulating convolutions in float32). Printed per network:
max |fp16 - fp32|, the golden tolerance, and the difference in 8-bit output
levels (images in [-1, 1]: one level is 2/255) or, for ParseNet, the share of
pixels whose class changes. `models._registry` enables float16 on CUDA only for
networks whose measured difference stays under one output level (the image
after rounding to uint8 changes by at most one level) and no class flips;
run this on a GPU to re-measure there.

    python tools/bench_half.py [--device cuda:0] [--bf16] [gpen512 gfpgan_v1_clean parsenet wav2lip lnet enet dnet]

`--bf16` measures bfloat16 autocast instead (float32 weights, what
`Checkpoint.bf16` enables on CPUs with native bfloat16).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]

from golden_fill import fill, load_golden  # noqa: E402  (tests/ holds the goldens and their fill rule)


def _image(seed: int) -> torch.Tensor:
    return torch.rand((2, 3, 512, 512), generator=torch.Generator().manual_seed(seed))[:1] * 2 - 1


Inputs = tuple[torch.Tensor, ...]
Factory = Callable[[], tuple[torch.nn.Module, Inputs, Callable, float]]  # network, inputs, output picker, lowest output value


def _gpen() -> tuple[torch.nn.Module, Inputs, Callable, float]:
    from lipstream.models.gpen import FullGenerator

    return FullGenerator(), (_image(41),), lambda out: out, -1.0


def _gfpgan() -> tuple[torch.nn.Module, Inputs, Callable, float]:
    from lipstream.models.gfpgan import GFPGANv1Clean

    return GFPGANv1Clean(), (_image(61),), lambda out: out, -1.0


def _parsenet() -> tuple[torch.nn.Module, Inputs, Callable, float]:
    from lipstream.models.parsenet import ParseNet

    return ParseNet(), (_image(51),), lambda out: out[0], -1.0


def _wav2lip() -> tuple[torch.nn.Module, Inputs, Callable, float]:
    from lipstream.models.wav2lip import Wav2Lip

    _, golden = load_golden("wav2lip")  # its documented input: a masked face pair and a mel window
    return Wav2Lip(), (torch.from_numpy(golden["in/mel"]), torch.from_numpy(golden["in/face"])), lambda out: out, 0.0


def _lnet() -> tuple[torch.nn.Module, Inputs, Callable, float]:
    from lipstream.models.lnet import LNet

    _, golden = load_golden("lnet")
    return LNet(), (torch.from_numpy(golden["input/mel"]), torch.from_numpy(golden["input/face"])), lambda out: out, 0.0


def _enet() -> tuple[torch.nn.Module, Inputs, Callable, float]:
    from lipstream.models.enet import ENet

    _, golden = load_golden("enet")
    face = torch.rand((2, 6, 384, 384), generator=torch.Generator().manual_seed(12))
    face[:, 0:3, 192:, :] = 0
    # zero noise, as the generate stage runs it; the output is clamped to [0, 1] there
    return ENet(), (torch.from_numpy(golden["input/mel"]), face, face[:, 3:6]), lambda out: out[0], 0.0


def _dnet() -> tuple[torch.nn.Module, Inputs, Callable, float]:
    from lipstream.models.dnet import DNet

    _, golden = load_golden("dnet")
    image = torch.rand((2, 3, 256, 256), generator=torch.Generator().manual_seed(21)) * 2 - 1
    return DNet(), (image, torch.from_numpy(golden["input/coeff"])), lambda out: out["fake_image"], -1.0


NETWORKS: dict[str, Factory] = {
    "gpen512": _gpen,
    "gfpgan_v1_clean": _gfpgan,
    "parsenet": _parsenet,
    "wav2lip": _wav2lip,
    "lnet": _lnet,
    "enet": _enet,
    "dnet": _dnet,
}


def _label(bf16: bool) -> str:
    return "bfloat16 autocast" if bf16 else "float16"


def measure(name: str, device: str, bf16: bool = False) -> dict[str, object]:
    """float32 against float16 weights, or (`bf16`) against float32 weights under bfloat16 autocast."""
    manifest, _ = load_golden(name)
    model, inputs, pick, low = NETWORKS[name]()
    fill(model, manifest["fill"]["mode"], manifest["fill"]["gain"]).eval().to(device)
    reduced = torch.bfloat16 if bf16 else torch.float16
    results: dict[str, torch.Tensor] = {}
    seconds: dict[str, float] = {}
    for dtype in (torch.float32, reduced):
        weights = torch.float32 if bf16 else dtype
        model.to(weights)
        autocast = torch.autocast(torch.device(device).type, dtype=reduced, enabled=bf16 and dtype == reduced)
        with torch.inference_mode(), autocast:
            start = time.perf_counter()
            out = pick(model(*(x.to(device, weights) for x in inputs)))
            seconds[str(dtype)] = time.perf_counter() - start
        results[str(dtype)] = out.float().cpu()
    full, half = results["torch.float32"], results[str(reduced)]
    tol = manifest["tolerance"]
    tolerance = tol if isinstance(tol, float) else next(iter(tol.values()))
    row: dict[str, object] = {
        "network": name,
        "device": device,
        "reduced": _label(bf16),
        "max_abs_diff": float((half - full).abs().max()),
        "golden_tolerance": tolerance,
        "finite": bool(torch.isfinite(half).all()),
        "fp32_s": round(seconds["torch.float32"], 2),
        "reduced_s": round(seconds[str(reduced)], 2),
    }
    if name == "parsenet":
        row["class_flips"] = float((half.argmax(1) != full.argmax(1)).float().mean())
    else:
        scale = 255.0 / (1.0 - low)
        levels = lambda x: torch.round((x.clamp(low, 1) - low) * scale)  # noqa: E731
        row["max_diff_in_levels"] = round(float((half - full).abs().max() * scale), 3)
        row["max_level_diff"] = float((levels(half) - levels(full)).abs().max())
        row["share_levels_changed"] = float((levels(half) != levels(full)).float().mean())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("networks", nargs="*", help=f"any of {', '.join(NETWORKS)} (default: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (float32 weights) instead of float16 weights")
    args = parser.parse_args()
    unknown = sorted(set(args.networks) - set(NETWORKS))
    if unknown:
        parser.error(f"unknown network(s) {', '.join(unknown)}; choose from {', '.join(NETWORKS)}")
    torch.manual_seed(0)
    for name in args.networks or NETWORKS:
        try:
            row = measure(name, args.device, args.bf16)
        except RuntimeError as exc:  # e.g. L-Net's FFT has no float16 kernel on the CPU
            row = {"network": name, "device": args.device, "reduced": _label(args.bf16), "error": str(exc)}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
