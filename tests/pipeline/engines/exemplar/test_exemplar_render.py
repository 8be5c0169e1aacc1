"""Drawing an exemplar: what shows between the lips is replaced, the lips stay the frame's own."""

from __future__ import annotations

import numpy as np

from engine_windows import owned, tracked_windows
from lipstream.config import WindowConfig
from lipstream.pipeline.engines.exemplar.bank import cut_exemplar
from lipstream.pipeline.engines.exemplar.render import exemplar_maps, lips_box
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
