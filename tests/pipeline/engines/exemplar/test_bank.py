"""The exemplar bank: bounded, covering the shapes seen, the best of each kept."""

from __future__ import annotations

import numpy as np
import pytest

from engine_windows import owned, tracked_windows
from lipstream.config import WindowConfig
from lipstream.models.face_types import Landmarks
from lipstream.pipeline.engines.exemplar.bank import COLUMNS, HEIGHT, WIDTH, BankConfig, Exemplar, MouthBank, cut_exemplar
from lipstream.pipeline.engines.exemplar.select import SelectConfig, choose
from lipstream.pipeline.engines.exemplar.bank import learn_frame
from lipstream.pipeline.engines.exemplar.stage import target_descriptor
from lipstream.pipeline.engines.shared.articulation import Articulation
from lipstream.pipeline.engines.shared.rearticulate import WarpLips


def fake(opening: float, width: float, quality: float, frame: int) -> Exemplar:
    patch = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    return Exemplar(patch, np.zeros((COLUMNS, 4)), 0.0, width / 2, np.array([opening, width, 0.08, 0.1]), quality, frame, np.zeros((13, 20, 3), np.float32))


def test_the_bank_is_bounded_and_keeps_the_best_of_each_slot():
    rng = np.random.default_rng(0)
    bank = MouthBank()
    offered = [fake(rng.uniform(0, 0.35), rng.uniform(0.38, 0.7), rng.uniform(0.01, 1.0), int(f)) for f in rng.permutation(20000)[:3000]]
    for e in offered:
        bank.add(e)
    assert 0 < len(bank) <= bank.max_size <= 256
    by_slot: dict = {}
    for e in offered:
        by_slot.setdefault(bank.slot(e.descriptor), []).append(e)
    kept = {id(e) for e in bank.exemplars()}
    for slot, candidates in by_slot.items():
        assert sum(id(e) in kept for e in candidates) <= bank.config.per_slot
        assert id(max(candidates, key=lambda e: e.quality)) in kept, f"slot {slot} lost its best exemplar"
    real_size = len(bank) * (HEIGHT * WIDTH * 3 + COLUMNS * 4 * 8 + 13 * 20 * 3 * 4)
    assert real_size <= 64 * 2**20


def test_one_exemplar_per_stretch_of_frames_in_a_slot():
    bank = MouthBank(BankConfig(min_gap=12))
    assert bank.add(fake(0.1, 0.5, 0.5, 100))
    assert not bank.add(fake(0.1, 0.5, 0.4, 105)), "a worse neighbour is refused"
    assert bank.add(fake(0.1, 0.5, 0.6, 108)), "a better neighbour replaces it"
    assert [e.frame for e in bank.exemplars()] == [108]
    assert bank.add(fake(0.1, 0.5, 0.3, 200)) and len(bank) == 2
    assert not bank.add(fake(0.1, 0.5, 0.0, 400)), "an unusable exemplar is never kept"


@pytest.fixture(scope="module")
def shapes():
    """Sample frames re-articulated to known openings (0 .. 1), with what the re-articulation recorded."""
    frames = owned(tracked_windows(24, WindowConfig(size=24, overlap=8)))[:5]
    stage = WarpLips()
    out = []
    for frame, opening in zip(frames, (0.0, 0.25, 0.5, 0.75, 1.0)):
        drawn, record = stage.render(frame, Articulation(opening, 0.0))
        out.append((frame, drawn, record))
    return out


def test_exemplars_of_known_shapes_are_ordered_and_cover_them(shapes):
    from lipstream.models.facemesh import FaceMesh

    mesh = FaceMesh()
    bank = MouthBank()
    openings = []
    for k, (frame, drawn, record) in enumerate(shapes):
        rgb = drawn.rgb()
        found = mesh.landmarks(rgb, Landmarks(frame.face.landmarks, 1.0))  # re-detected on the drawn frame
        exemplar = cut_exemplar(rgb, (0, 0), found.points, 100 * k)
        assert exemplar is not None and exemplar.patch.shape == (HEIGHT, WIDTH, 3) and 0 < exemplar.quality <= 1
        openings.append(exemplar.opening)
        bank.add(exemplar)
    assert openings == sorted(openings) and openings[-1] - openings[0] > 0.1, openings
    widest = max(bank.exemplars(), key=lambda e: e.opening)
    assert widest.teeth < 0.05 and widest.luma < 100, "the warp engine paints a dark cavity without teeth"
    assert all(np.isfinite(e.luma) == np.isfinite(e.teeth) for e in bank.exemplars())
    assert len(bank) == 5, "five different openings, five slots"
    targets = [target_descriptor(record) for _, _, record in shapes]
    # by shape alone: these are the warp engine's painted mouths, whose painted teeth the look rules would weigh
    chosen = choose(targets, bank.exemplars(), config=SelectConfig(clenched=0.0))
    assert [None if e is None else round(e.opening, 3) for e in chosen][1:] == [round(o, 3) for o in openings[1:]]


def test_learning_from_a_frame_cuts_only_its_mouth(shapes):
    frame = shapes[0][0]
    bank = MouthBank()
    assert learn_frame(bank, frame, frame.face.landmarks, frame.index)
    (exemplar,) = bank.exemplars()
    assert exemplar.frame == frame.index and 0.3 < exemplar.descriptor[1] < 0.8


def test_the_bank_learns_the_usual_look_from_every_mouth_offered():
    bank = MouthBank(BankConfig(least_seen=4))
    assert bank.typical(0.1) is None
    looks = [(0.1, 100.0), (0.2, 120.0), (0.9, 200.0), (0.2, 100.0), (0.15, 90.0)]  # one clenched smile
    for k, (teeth, luma) in enumerate(looks):
        e = fake(0.1, 0.55, 0.0 if k % 2 else 0.9, 30 * k)  # low-quality mouths are not kept, but still seen
        bank.add(Exemplar(e.patch, e.knots, e.centre, e.half_width, e.descriptor, e.quality, e.frame, e.thumb, teeth, luma))
    teeth, luma = bank.typical(0.1)
    assert teeth == pytest.approx(0.2) and luma == pytest.approx(100.0)  # medians: the smile does not pull
    assert bank.typical(0.1 + 1.5 * bank.config.opening_step) is not None  # neighbouring openings share
    assert bank.typical(0.2) is None
    assert len(bank) == 2  # a slot keeps two
