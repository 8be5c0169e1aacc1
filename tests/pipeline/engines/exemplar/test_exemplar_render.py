"""Drawing an exemplar: what shows between the lips is replaced, the lips stay the frame's own."""

from __future__ import annotations

import numpy as np

from engine_windows import owned, tracked_windows
from lipstream.config import WindowConfig
from lipstream.pipeline.engines.exemplar.bank import cut_exemplar
from lipstream.pipeline.engines.exemplar.render import _match_colour, exemplar_maps, lips_box
from lipstream.pipeline.engines.shared.articulation import Articulation
from lipstream.pipeline.engines.shared.mouth_warp import LI, LO, UI, UO
from lipstream.pipeline.engines.shared.rearticulate import WarpLips


def test_the_paste_covers_the_opening_and_leaves_the_lips():
    """At the mouth's middle, re-articulated wide open: the paste mask is full halfway between the inner
    lips and empty halfway through either lip (an exemplar's lips over the frame's put a second lip edge
    in the picture, which a landmark tracker reads less faithfully)."""
    (frame,) = owned(tracked_windows(1, WindowConfig(size=8, overlap=4)))[:1]
    stage = WarpLips()
    draft = stage.draft(frame, Articulation(0.9, 0.0))
    assert draft is not None
    _, record = stage.finish(draft, paint=False)
    exemplar = cut_exemplar(frame.rgb(), (0, 0), frame.face.landmarks, frame.index)
    assert exemplar is not None and record.target is not None
    x0, y0, x1, y1 = box = lips_box(record)
    _, _, mask, ring = exemplar_maps(record, exemplar, box)
    shape = record.shape
    mid = int(np.argmin(np.abs(shape.columns - 0.5 * (shape.outer[0] + shape.outer[1]))))
    rows = record.target[mid]

    def at(v: float) -> float:
        x, y = shape.frame.to_frame(np.array([shape.columns[mid], v]))
        return float(mask[int(round(y)) - y0, int(round(x)) - x0])

    assert at(0.5 * (rows[UI] + rows[LI])) > 0.95, "the opening shows the exemplar"
    assert at(0.5 * (rows[UO] + rows[UI])) < 0.05 and at(0.5 * (rows[LI] + rows[LO])) < 0.05, "the lips stay the frame's"
    assert ring.sum() > 100 and not (ring & (mask > 0.05)).any(), "colour is matched on what is not pasted"


def test_the_exemplar_takes_the_frames_colour_in_the_ring_only():
    """Mean and spread over the ring become the frame's (within the gain's 0.8-1.25 clamp); pixels keep their order."""
    rng = np.random.default_rng(3)
    render = np.clip(rng.normal((90, 60, 50), (20, 15, 10), (40, 60, 3)), 0, 255).astype(np.uint8)
    base = np.clip(rng.normal((150, 110, 95), (22, 17, 11), (40, 60, 3)), 0, 255).astype(np.uint8)
    ring = np.zeros((40, 60), bool)
    ring[5:35, 10:50] = True
    out = _match_colour(render, base, ring).astype(np.float64)
    want, got = base[ring].astype(np.float64), out[ring]
    assert np.abs(got.mean(axis=0) - want.mean(axis=0)).max() < 0.6, (got.mean(axis=0), want.mean(axis=0))
    assert np.abs(got.std(axis=0) / want.std(axis=0) - 1).max() < 0.02, (got.std(axis=0), want.std(axis=0))
    assert np.corrcoef(out[..., 0].ravel(), render[..., 0].ravel())[0, 1] > 0.999
    flat = np.full_like(render, 40)
    clamped = _match_colour(flat, base, ring).astype(np.float64)
    assert np.ptp(clamped[ring], axis=0).max() <= 1, "a flat exemplar stays flat: the gain is bounded, not divided by zero"
    assert _match_colour(render, base, np.zeros_like(ring)) is render, "too small a ring leaves the colours alone"
