"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lipstream.config import DETECTORS, FaceConfig, Target
from lipstream.errors import InputError

if TYPE_CHECKING:
    from lipstream.pipeline.jobs.ray_farm import RayOptions

RAY_EXTRA = "pip install 'lipstream[ray]'"


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def bit_rate(text: str) -> int:
    """`800k`, `2.5M` or plain bits per second."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if scale != 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected bits per second like 800k or 2.5M, got {text!r}") from None
    if not value >= 10_000 or value != value:
        raise argparse.ArgumentTypeError(f"must be at least 10k bits/s, got {text!r}")
    return int(value)


def seconds(text: str) -> float:
    value = float(text)
    if not value >= 0.1 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be at least 0.1 s, got {text}")
    return value


TARGET_HELP = (
    "X,Y[@SECONDS]: the speaker is the face nearest this point (frame pixels) on the first frame with faces "
    "(at or after SECONDS; earlier frames stay untouched); default: the largest face"
)


def target(text: str) -> Target:
    """`X,Y` or `X,Y@SECONDS`."""
    point, _, when = text.partition("@")
    try:
        x, y = (float(v) for v in point.split(","))
        return Target(x, y, float(when) if when else 0.0)
    except (ValueError, InputError):
        raise argparse.ArgumentTypeError(f"expected X,Y or X,Y@SECONDS (frame pixels, seconds >= 0), got {text!r}") from None


def add_ray_options(parser: argparse.ArgumentParser, what: str) -> None:
    """`--ray [ADDRESS] --workers N --retries N`, shared by sync and batch."""
    parser.add_argument(
        "--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
        help=f"run {what} on Ray: a local Ray on this machine, or the cluster at ADDRESS (HOST:PORT, ray://HOST:PORT, auto); needs {RAY_EXTRA}",
    )
    parser.add_argument("--workers", type=positive, default=None, help="Ray actors (default: one per CPU of the cluster, or per GPU with --device cuda)")
    parser.add_argument("--retries", type=non_negative, default=2, help="times a job or a dead worker's task is tried again (default: %(default)s)")


def ray_options(args: argparse.Namespace) -> RayOptions:
    from lipstream.pipeline.jobs.ray_farm import RayOptions

    return RayOptions(address=args.ray, workers=args.workers, retries=args.retries)


def add_face_options(parser: argparse.ArgumentParser) -> None:
    """--target, --detector, --landmarks: who is tracked and with which models (sync, faces, score)."""
    parser.add_argument("--target", type=target, help=TARGET_HELP)
    parser.add_argument(
        "--detector",
        choices=DETECTORS,
        default=FaceConfig.detector,
        help="face detector: blazeface (embedded, default), blazeface-short (close-ups), or with checkpoints "
        "from --weights: retinaface, retinaface-mnet, s3fd; it runs only while the target is not tracked",
    )
    parser.add_argument(
        "--landmarks",
        choices=("facemesh", "fan"),
        default=FaceConfig.landmarks,
        help="facemesh (embedded, default) or fan: FAN's 68 points (2DFAN4-11f355bf06.pth.tar) place the mesh",
    )


def face_config(args: argparse.Namespace) -> FaceConfig:
    return FaceConfig(target=args.target, detector=args.detector, landmarks=args.landmarks)
