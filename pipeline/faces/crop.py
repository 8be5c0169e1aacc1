"""The working crop around the target, smoothed across windows (pure).

Each window proposes a square crop: the union of the target's boxes in the
window, grown by a margin. The crop follows that proposal only when it has
moved by more than a dead band, and then only part of the way per window,
so a still face gets a perfectly still crop and a moving one a smooth path.
Within a window the crop glides linearly from the previous window's to the
new one; every frame's crop is then grown to contain that frame's face, and
finally clamped to the frame (a close-up may get the whole frame height or
width, so the crop is not always square).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lipstream.config import CropConfig

Box = tuple[int, int, int, int]


class CropSmoother:
    """Turns per-frame face boxes into per-frame crops, window by window."""

    def __init__(self, frame_size: tuple[int, int], config: CropConfig = CropConfig()) -> None:
        self.width, self.height = frame_size
        self.config = config
        self._state: np.ndarray | None = None  # (cx, cy, side)

    def update(
        self,
        owned: Sequence[np.ndarray | None],
        context: Sequence[np.ndarray | None] = (),
        anchors: Sequence[tuple[float, float, float] | None] = (),
    ) -> list[Box | None]:
        """Crops for the `owned` frames (None where there is no face).

        `context` boxes (frames after the owned ones) widen the proposal so the
        crop starts moving before the face gets there. `anchors[k]` = (x, y, w)
        pulls owned frame k's centre a share w of the way to (x, y) (segment
        borders, see `borders.py`); the smoother's own path is not changed.
        """
        boxes = [b for b in (*owned, *context) if b is not None]
        if not boxes:
            return [None] * len(owned)
        proposal = self._propose(np.array(boxes))
        if self._state is None:
            previous = target = proposal
        else:
            previous = self._state
            target = previous if self._within_deadband(proposal) else previous + self.config.follow * (proposal - previous)
        crops: list[Box | None] = []
        for k, box in enumerate(owned):
            t = (k + 1) / len(owned)
            state = previous + (target - previous) * t
            anchor = anchors[k] if k < len(anchors) else None
            if anchor is not None:
                x, y, weight = anchor
                state = state.copy()
                state[:2] += weight * (np.array([x, y]) - state[:2])
            crops.append(None if box is None else self._contain_and_clamp(state, box))
        self._state = target
        return crops

    def _propose(self, boxes: np.ndarray) -> np.ndarray:
        x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
        x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
        face = float(np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
        side = max(x1 - x0, y1 - y0) + 2 * self.config.margin * face
        return np.array([(x0 + x1) / 2, (y0 + y1) / 2, side])

    def _within_deadband(self, proposal: np.ndarray) -> bool:
        assert self._state is not None
        side = self._state[2]
        moved = np.hypot(*(proposal[:2] - self._state[:2]))
        return moved <= self.config.deadband * side and abs(proposal[2] - side) <= 2 * self.config.deadband * side

    def _contain_and_clamp(self, state: np.ndarray, box: np.ndarray) -> Box:
        cx, cy, side = (float(v) for v in state)
        face = max(box[2] - box[0], box[3] - box[1])
        pad = self.config.pad * face
        need = np.array([box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad])
        side = max(side, need[2] - need[0], need[3] - need[1])
        half = side / 2
        # Shift the crop the least that brings the padded face inside it.
        cx += max(need[2] - (cx + half), 0) - max((cx - half) - need[0], 0)
        cy += max(need[3] - (cy + half), 0) - max((cy - half) - need[1], 0)
        x0, x1 = _clamp_span(cx, half, self.width)
        y0, y1 = _clamp_span(cy, half, self.height)
        return x0, y0, x1, y1

    def state(self) -> np.ndarray | None:
        return None if self._state is None else self._state.copy()


def _clamp_span(centre: float, half: float, limit: int) -> tuple[int, int]:
    """[lo, hi) of length 2*half around centre, shifted inside [0, limit), or the whole range."""
    length = int(round(2 * half))
    if length >= limit:
        return 0, limit
    lo = int(round(centre - half))
    lo = min(max(lo, 0), limit - length)
    return lo, lo + length

