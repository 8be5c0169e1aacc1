"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse

from lipstream.config import Target
from lipstream.errors import InputError


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
