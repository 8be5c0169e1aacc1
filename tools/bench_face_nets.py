"""Forward timings of the torch face networks (not part of the timed test suite).

    python tools/bench_face_nets.py [--threads 2] [--runs 5] [--device cpu] [--only s3fd,fan2d]

Times the bare forward (no pre/post-processing) of RetinaFace R50 and
MobileNet-0.25 and S3FD at their golden input size and at 640x360, batch 1
and 4, and FAN at 256x256, batch 1 and 4. Weights are random (timing does
not depend on them). Prints one JSON line per case: median and best ms over
`--runs` runs after one warm-up, float32.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

from lipstream.models.fan import FAN
from lipstream.models.retinaface import RetinaFace
from lipstream.models.s3fd import S3FD

CASES = {
    "retinaface_r50": (lambda: RetinaFace("resnet50"), [(150, 210), (360, 640)]),
    "retinaface_mnet": (lambda: RetinaFace("mobilenet0.25"), [(150, 210), (360, 640)]),
    "s3fd": (S3FD, [(160, 224), (360, 640)]),
    "fan2d": (FAN, [(256, 256)]),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default="", help="comma-separated subset of " + ", ".join(CASES))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = [n for n in CASES if not args.only or n in args.only.split(",")]
    for name in names:
        build, sizes = CASES[name]
        network = build().eval().to(device)
        for height, width in sizes:
            for batch in (1, 4):
                x = torch.randn(batch, 3, height, width, device=device)
                times = []
                with torch.inference_mode():
                    for _ in range(args.runs + 1):
                        if device.type == "cuda":
                            torch.cuda.synchronize()
                        start = time.perf_counter()
                        network(x)
                        if device.type == "cuda":
                            torch.cuda.synchronize()
                        times.append(1000 * (time.perf_counter() - start))
                row = {
                    "net": name, "size": f"{width}x{height}", "batch": batch, "device": str(device),
                    "threads": args.threads, "median_ms": round(statistics.median(times[1:]), 1),
                    "best_ms": round(min(times[1:]), 1), "load": round(os.getloadavg()[0], 2),
                }  # fmt: skip
                print(json.dumps(row), flush=True)
        del network
    return 0


if __name__ == "__main__":
    sys.exit(main())
