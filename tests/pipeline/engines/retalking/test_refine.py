"""`best` quality's reference refinement: GPEN pasted inside the landmarks' face outline, no ParseNet pass."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from lipstream.config import WindowConfig
from lipstream.pipeline.engines.retalking.config import MIN_OVERLAP
from lipstream.pipeline.engines.retalking.geometry import apply
from lipstream.pipeline.engines.retalking.records import Reference, retalking_window
from lipstream.pipeline.engines.retalking.refine import RefineReferences
from lipstream.pipeline.engines.shared.face_region import FACE_OVAL
from engine_windows import tracked_windows


class White(nn.Module):
    """A stand-in restorer whose every output pixel is white: where it lands is what is pasted."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x) + self.scale


@pytest.fixture(scope="module")
def window():
    """One tracked window whose owned frames carry a mid-grey reference (the face cut to 256 px)."""
    win = retalking_window(tracked_windows(MIN_OVERLAP + 4, WindowConfig(size=MIN_OVERLAP + 4, overlap=MIN_OVERLAP))[0])
    references = {}
    for frame in win.frames[win.own_start : win.own_stop]:
        if frame.face is None or frame.face.landmarks is None:
            continue
        x0, y0, x1, y1 = frame.face.crop
        scale = 256 / max(x1 - x0, y1 - y0)
        matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]])
        references[frame.index] = Reference(np.full((256, 256, 3), 100, np.uint8), matrix)
    assert references
    return replace(win, references=references)


def test_restoration_lands_inside_the_face_outline_only(window):
    refined = RefineReferences(White().eval())(window)
    for frame in window.frames:
        ref = window.references.get(frame.index)
        if ref is None:
            continue
        out = refined.references[frame.index].image.astype(int)
        outline = apply(ref.matrix, frame.face.landmarks[list(FACE_OVAL), :2])
        x0, y0 = np.floor(outline.min(axis=0)).astype(int)
        x1, y1 = np.ceil(outline.max(axis=0)).astype(int)
        centre = apply(ref.matrix, frame.face.landmarks[[1], :2])[0].astype(int)  # the nose tip
        assert out[centre[1], centre[0]].min() >= 250  # inside: GPEN's (white) face
        margin = int(np.ceil(3 * 0.03 * 256))  # three sigmas of the default feather
        outside = np.ones(out.shape[:2], bool)
        outside[max(0, y0 - margin) : y1 + margin, max(0, x0 - margin) : x1 + margin] = False
        assert outside.any() and (out[outside] == 100).all()  # outside the outline: the reference as it was
        assert ref.image.max() == 100  # the input reference is not modified in place


def test_refine_needs_no_parser():
    with pytest.raises(ValueError, match="eval mode"):
        RefineReferences(White().train())
