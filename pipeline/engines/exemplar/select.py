"""Which exemplar each frame shows: close to the asked-for shape, and steady from frame to frame (pure).

Per frame the `candidates` exemplars nearest the target descriptor are
kept, those within `cover` of it; a Viterbi pass over each run of frames
that have candidates picks the sequence minimising shape distance plus the
cost of changing exemplar (a fixed part and a part for how different the
two look), so consecutive frames do not jump between unrelated mouths.
Where the bank knows what this speaker's mouth typically shows between the
lips at the target's opening, exemplars that look otherwise cost more.
Speech that opens the mouth wide drops the jaw, so the teeth part; an
exemplar whose lips are apart over teeth held together (a smile) costs more
there the more teeth it shows, however well its lips fit (on demo1, a child
who smiles a lot, such mouths were most of the bank's mid openings). A
frame without any candidate near enough shows no exemplar (the caller falls
back to the re-articulated mouth).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .bank import Exemplar

__all__ = ["SelectConfig", "choose", "shape_distance"]


@dataclass(frozen=True)
class SelectConfig:
    candidates: int = 6
    cover: float = 0.045  # an exemplar further than this from the target shape (eye distances) does not cover it ...
    relative: float = 0.5  # ... plus this share of the target's opening (wide mouths tolerate more) ...
    least_share: float = 0.7  # ... but the exemplar's own opening must be at least this share of the target's
    # (a mouth stretched much further than it opened shows its teeth stretched with it)
    # opening, width, upper and lower lip: the width matters least, the drawing scales the mouth to the frame's
    weights: tuple[float, float, float, float] = (1.0, 0.15, 0.3, 0.3)
    switch: float = 0.008  # cost of changing exemplar between two frames
    look: float = 0.03  # ... plus this much per unit of mean difference of their thumbnails
    blur: float = 0.01  # cost of a low-quality exemplar (times 1 - quality)
    least_opening: float = 0.02  # targets more closed than this keep the re-articulated lips (no exemplar needed)
    teeth: float = 0.1  # cost per unit of teeth share away from what this speaker's mouth typically shows there
    luma: float = 0.1  # cost per unit (of 255 levels) of inner luminance away from it
    clenched: float = 0.5  # cost per unit of teeth share between the lips at a wide target opening ...
    clenched_from: float = 0.08  # ... rising from nothing at this target opening (eye distances) ...
    clenched_full: float = 0.16  # ... to all of it at this one, where speech has dropped the jaw


def shape_distance(target: np.ndarray, exemplars: Sequence[Exemplar], config: SelectConfig = SelectConfig()) -> np.ndarray:
    """Weighted sum of the absolute descriptor differences (eye distances) to each exemplar."""
    table = np.stack([e.descriptor for e in exemplars])
    return np.abs(table - target[None, :]) @ np.asarray(config.weights)


def _unusual(looks: np.ndarray, usual: tuple[float, float], config: SelectConfig) -> np.ndarray:
    """How far each exemplar's inside of the mouth ((N, 2) teeth share, luminance) is from the usual
    look (0 where it can't tell)."""
    teeth, luma = usual
    cost = config.teeth * np.abs(looks[:, 0] - teeth) + config.luma * np.abs(looks[:, 1] - luma) / 255.0
    return np.nan_to_num(cost, nan=0.0)


def _clenched(teeth: np.ndarray, opening: float, config: SelectConfig) -> np.ndarray:
    """What each exemplar's teeth share between the lips costs at a target `opening` (nothing below
    `clenched_from` or where the share is unknown): a wide speech opening has dropped the jaw, so a
    mouth full of teeth there reads as lips apart over teeth held together."""
    span = max(config.clenched_full - config.clenched_from, 1e-6)
    ramp = float(np.clip((opening - config.clenched_from) / span, 0.0, 1.0))
    return config.clenched * ramp * np.nan_to_num(teeth, nan=0.0)


def _change(a: Exemplar, b: Exemplar, config: SelectConfig) -> float:
    if a is b:
        return 0.0
    return config.switch + config.look * float(np.abs(a.thumb - b.thumb).mean())


def choose(
    targets: Sequence[np.ndarray | None],
    exemplars: Sequence[Exemplar],
    previous: Exemplar | None = None,
    config: SelectConfig = SelectConfig(),
    typical: Callable[[float], tuple[float, float] | None] | None = None,
) -> list[Exemplar | None]:
    """An exemplar (or None) per target; `previous` is what the frame before the first one showed;
    `typical(opening)` is the speaker's usual (teeth share, inner luminance) there, when known."""
    out: list[Exemplar | None] = [None] * len(targets)
    options: list[list[tuple[Exemplar, float]]] = []
    blur = config.blur * (1.0 - np.array([e.quality for e in exemplars]))
    openings = np.array([e.opening for e in exemplars])
    looks = np.array([(e.teeth, e.luma) for e in exemplars]).reshape(-1, 2)
    for target in targets:
        if target is None or not exemplars or target[0] < config.least_opening:
            options.append([])
            continue
        distance = shape_distance(target, exemplars, config) + blur
        reach = config.cover + config.relative * float(target[0])
        wide = config.least_share * float(target[0])
        fits = (distance <= reach) & (openings >= wide)
        usual = None if typical is None else typical(float(target[0]))
        cost = distance if usual is None else distance + _unusual(looks, usual, config)  # ranks, never excludes
        cost = cost + _clenched(looks[:, 0], float(target[0]), config)
        nearest = np.argsort(np.where(fits, cost, np.inf), kind="stable")[: config.candidates]
        options.append([(exemplars[i], float(cost[i])) for i in nearest if fits[i]])
    start = 0
    while start < len(targets):
        if not options[start]:
            previous = None
            start += 1
            continue
        stop = start
        while stop < len(targets) and options[stop]:
            stop += 1
        for k, choice in enumerate(_viterbi(options[start:stop], previous, config)):
            out[start + k] = choice
        previous = out[stop - 1]
        start = stop
    return out


def _viterbi(options: list[list[tuple[Exemplar, float]]], previous: Exemplar | None, config: SelectConfig) -> list[Exemplar]:
    cost = [d + (_change(previous, e, config) if previous is not None else 0.0) for e, d in options[0]]
    back: list[list[int]] = []
    for step in options[1:]:
        new_cost, pointers = [], []
        for e, d in step:
            totals = [c + _change(p, e, config) for c, (p, _) in zip(cost, options[len(back)])]
            best = int(np.argmin(totals))
            new_cost.append(totals[best] + d)
            pointers.append(best)
        cost, back = new_cost, back + [pointers]
    k = int(np.argmin(cost))
    path = [k]
    for pointers in reversed(back):
        k = pointers[k]
        path.append(k)
    path.reverse()
    return [options[i][j][0] for i, j in enumerate(path)]
