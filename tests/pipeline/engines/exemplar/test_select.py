"""Exemplar selection: near the asked-for shape, steady over time, nothing where nothing is near."""

from __future__ import annotations

import numpy as np

from lipstream.pipeline.engines.exemplar.bank import COLUMNS, HEIGHT, WIDTH, Exemplar
from lipstream.pipeline.engines.exemplar.select import SelectConfig, choose


def ladder(count: int = 41, step: float = 0.005) -> list[Exemplar]:
    """Exemplars opening 0.02, 0.025, ... with distinct looks."""
    rng = np.random.default_rng(5)
    out = []
    for k in range(count):
        thumb = rng.uniform(0, 1, (13, 20, 3)).astype(np.float32)
        d = np.array([0.02 + step * k, 0.55, 0.08, 0.1])
        out.append(Exemplar(np.zeros((HEIGHT, WIDTH, 3), np.uint8), np.zeros((COLUMNS, 4)), 0.0, 0.275, d, 0.8, k * 20, thumb))
    return out


def target(opening: float) -> np.ndarray:
    return np.array([opening, 0.55, 0.08, 0.1])


def switches(chosen) -> int:
    return sum(a is not b for a, b in zip(chosen, chosen[1:]))


def test_selection_follows_the_shape_without_jumping_at_every_jitter():
    rng = np.random.default_rng(1)
    t = np.arange(100)
    openings = 0.1 + 0.06 * np.sin(t / 12.0) + rng.normal(0, 0.004, len(t))  # a slow syllable, jittery landmarks
    bank = ladder()
    chosen = choose([target(o) for o in openings], bank)
    assert all(e is not None and abs(e.opening - o) <= 0.035 for e, o in zip(chosen, openings))
    greedy = [min(bank, key=lambda e: abs(e.opening - o)) for o in openings]
    assert switches(chosen) < switches(greedy) / 2, (switches(chosen), switches(greedy))
    error = np.mean([abs(e.opening - o) for e, o in zip(chosen, openings)])
    assert error < 0.01, error


def test_nothing_near_or_a_closed_mouth_means_no_exemplar():
    bank = ladder(5)  # openings 0.02 .. 0.04
    chosen = choose([target(0.03), target(0.3), target(0.035), target(0.005), None], bank)
    assert chosen[0] is not None and chosen[1] is None and chosen[2] is not None
    assert chosen[3] is None, "a closed mouth keeps the speaker's own lips"
    assert chosen[4] is None
    assert choose([target(0.03)], []) == [None]


def test_the_previous_window_choice_carries_over():
    bank = ladder()
    between = 0.5 * (bank[10].opening + bank[11].opening)  # equally near two exemplars
    assert choose([target(between)], bank, previous=bank[11])[0] is bank[11]
    assert choose([target(between)], bank, previous=bank[10])[0] is bank[10]


def test_costs_are_what_make_it_steady():
    rng = np.random.default_rng(2)
    openings = 0.1 + rng.normal(0, 0.004, 60)
    free = SelectConfig(switch=0.0, look=0.0, blur=0.0)
    assert switches(choose([target(o) for o in openings], ladder(), config=free)) > 3 * switches(choose([target(o) for o in openings], ladder()))


def test_the_speakers_usual_look_wins_among_equal_shapes_but_never_removes_cover():
    """Two exemplars of one shape, a clenched smile (all teeth) and an open jaw (dark): the usual one is
    chosen; an unusual exemplar alone still covers the frame."""
    smile, jaw = ladder(2, step=0.0)
    smile = Exemplar(smile.patch, smile.knots, 0.0, 0.275, smile.descriptor, 0.9, 0, smile.thumb, teeth=0.8, luma=170.0)
    jaw = Exemplar(jaw.patch, jaw.knots, 0.0, 0.275, jaw.descriptor, 0.7, 40, jaw.thumb, teeth=0.05, luma=60.0)
    usual = lambda opening: (0.08, 70.0)  # noqa: E731
    targets = [target(0.02)] * 5
    assert choose(targets, [smile, jaw]) == [smile] * 5  # by shape and quality alone
    assert choose(targets, [smile, jaw], typical=usual) == [jaw] * 5
    assert choose(targets, [smile], typical=usual) == [smile] * 5
    assert choose(targets, [smile, jaw], typical=lambda opening: None) == [smile] * 5  # nothing known yet


def test_a_wide_opening_drops_the_jaw_so_a_clenched_smile_loses():
    """A clenched smile (lips apart over teeth held together) fitting the lips exactly, an open jaw (dark
    between parted teeth) a little off: at a wide target the jaw wins; at a slight opening, where teeth
    may well show, the better fit still does; and a smile alone still covers a wide target."""
    smile, jaw = ladder(2, step=0.0)

    def shaped(e: Exemplar, opening: float, teeth: float, luma: float) -> Exemplar:
        d = np.array([opening, 0.55, 0.08, 0.1])
        return Exemplar(e.patch, e.knots, 0.0, 0.275, d, 0.9, e.frame, e.thumb, teeth=teeth, luma=luma)

    config = SelectConfig()
    wide, slight = config.clenched_full + 0.04, config.clenched_from - 0.03
    assert choose([target(wide)] * 4, [shaped(smile, wide, 0.6, 170.0), shaped(jaw, wide + 0.02, 0.05, 60.0)])[0].teeth == 0.05
    assert choose([target(slight)] * 4, [shaped(smile, slight, 0.6, 170.0), shaped(jaw, slight + 0.02, 0.05, 60.0)])[0].teeth == 0.6
    alone = shaped(smile, wide, 0.6, 170.0)
    assert choose([target(wide)] * 4, [alone]) == [alone] * 4, "a cost ranks, it never removes cover"
    plain = SelectConfig(clenched=0.0)
    assert choose([target(wide)] * 4, [shaped(smile, wide, 0.6, 170.0), shaped(jaw, wide + 0.02, 0.05, 60.0)], config=plain)[0].teeth == 0.6


def test_an_exemplar_is_not_stretched_far_past_its_own_opening():
    bank = ladder(2, step=0.05)  # openings 0.02 and 0.07
    least = SelectConfig().least_share
    (chosen,) = choose([target(0.07 / least - 0.005)], bank)
    assert chosen is bank[1]
    assert choose([target(0.07 / least + 0.01)], bank) == [None], "too far to stretch: the re-articulated mouth stays"
