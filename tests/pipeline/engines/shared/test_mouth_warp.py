"""Mouth geometry on real FaceMesh landmarks: rest shape, target knots, and the backward warp."""

import cv2
import numpy as np
import pytest

from lipstream.models.facemesh import LIPS_INNER
from lipstream.pipeline.engines.shared.articulation import Articulation
from lipstream.pipeline.engines.shared.mouth_warp import (
    BOTTOM,
    CHIN,
    LI,
    TOP,
    UI,
    WarpConfig,
    _warp_layers,
    build_warp,
    mouth_frame,
    region_box,
    rest_shape,
    target_knots,
)

from warp_media import sample_faces

CONFIG = WarpConfig()


@pytest.fixture(scope="module", params=[0, 30], ids=["smile", "open"])
def face(request):
    found = sample_faces()[request.param]
    assert found is not None
    return found


def centre_column(shape) -> int:
    return int(np.argmin(np.abs(shape.columns - 0.5 * (shape.inner[0] + shape.inner[1]))))


def test_mouth_frame_follows_the_eyes(face):
    frame = mouth_frame(face.landmarks)
    assert abs(np.hypot(*frame.axis_u) - 1) < 1e-9 and abs(frame.axis_u @ frame.axis_v) < 1e-9
    assert frame.axis_v[1] > 0.9  # v points down the (nearly upright) face
    uv = frame.to_local(face.landmarks)
    np.testing.assert_allclose(frame.to_frame(uv), face.landmarks[:, :2], atol=1e-9)


def test_rest_shape_orders_the_knots_and_spans_the_mouth(face):
    shape = rest_shape(face.landmarks, CONFIG)
    assert np.all(np.diff(shape.knots, axis=1) >= 0)
    assert shape.columns[0] < shape.outer[0] < shape.inner[0] < shape.inner[1] < shape.outer[1] < shape.columns[-1]
    assert shape.side[0] == 0 and shape.side[-1] == 0 and shape.side[len(shape.side) // 2] == 1
    mid = centre_column(shape)
    assert shape.knots[mid, TOP] < shape.knots[mid, UI] and shape.knots[mid, CHIN] < shape.knots[mid, BOTTOM]


def test_target_closes_then_opens_to_the_pose(face):
    shape = rest_shape(face.landmarks, CONFIG)
    d = shape.frame.scale
    mid = centre_column(shape)
    closed = target_knots(shape, Articulation(0.0, 0.0), 1.0, CONFIG)
    wide = target_knots(shape, Articulation(1.0, 0.0), 1.0, CONFIG)
    assert closed[mid, LI] - closed[mid, UI] == pytest.approx(CONFIG.closed_gap * d, abs=0.05 * d * CONFIG.closed_gap + 1e-6)
    assert wide[mid, LI] - wide[mid, UI] == pytest.approx(CONFIG.max_opening * d, rel=0.02)
    # the chin drops with the jaw; the top and bottom rows never move
    assert wide[mid, CHIN] - closed[mid, CHIN] > 0.7 * CONFIG.max_opening * d
    np.testing.assert_array_equal(wide[:, [TOP, BOTTOM]], shape.knots[:, [TOP, BOTTOM]])
    assert np.all(np.diff(wide, axis=1) >= 0)
    # weight 0: nothing moves
    np.testing.assert_allclose(target_knots(shape, Articulation(1.0, 1.0), 0.0, CONFIG), shape.knots)


def pixel_grid(box):
    x0, y0, x1, y1 = box
    ys, xs = np.mgrid[y0:y1, x0:x1]
    return xs.astype(np.float32), ys.astype(np.float32)


def test_identity_target_gives_an_identity_map(face):
    shape = rest_shape(face.landmarks, CONFIG)
    box = region_box(shape)
    warp = build_warp(shape, shape.knots.copy(), Articulation(0.0, 0.0), box, CONFIG)
    xs, ys = pixel_grid(box)
    assert np.abs(warp.map_x - xs).max() < 1e-2 and np.abs(warp.map_y - ys).max() < 1e-2
    # the "new" opening is then the original one: inside the inner-lip contour
    inner = np.zeros(xs.shape, np.uint8)
    cv2.fillPoly(inner, [np.rint(face.landmarks[list(LIPS_INNER), :2] - box[:2]).astype(np.int32)], 1)
    inner = cv2.dilate(inner, np.ones((5, 5), np.uint8))
    assert (warp.cavity[inner == 0] == 0).all()


@pytest.mark.parametrize("opening", [0.0, 0.6, 1.0])
def test_target_knots_map_onto_the_source_knots_of_their_column(face, opening):
    """The warp's core: a pixel on target knot k at column position c reads source knot k at c.

    Half-way between two columns both knot rows are interpolated linearly.
    """
    shape = rest_shape(face.landmarks, CONFIG)
    target = target_knots(shape, Articulation(opening, 0.0), 1.0, CONFIG)
    columns = np.arange(len(shape.columns), dtype=float)
    for c in np.arange(8.0, len(shape.columns) - 8, 2.5):  # where the feather is flat; whole and half columns
        u = np.interp(c, columns, shape.columns)
        for k in range(1, 6):
            x, y = shape.frame.to_frame(np.array([u, np.interp(c, columns, target[:, k])]))
            layers = _warp_layers(np.array([x]), np.array([y]), shape, target, 0.0)
            expected = shape.frame.to_frame(np.array([u, np.interp(c, columns, shape.knots[:, k])]))
            assert np.hypot(layers[0][0, 0] - expected[0], layers[1][0, 0] - expected[1]) < 0.01, (c, k)


@pytest.mark.parametrize("pose", [Articulation(1.0, 1.0), Articulation(1.0, -1.0), Articulation(0.0, 0.0)])
def test_warp_never_folds_and_is_identity_at_the_region_edge(face, pose):
    shape = rest_shape(face.landmarks, CONFIG)
    box = region_box(shape)
    warp = build_warp(shape, target_knots(shape, pose, 1.0, CONFIG), pose, box, CONFIG)
    mx, my = warp.map_x.astype(np.float64), warp.map_y.astype(np.float64)
    det = np.diff(mx, axis=1)[:-1] * np.diff(my, axis=0)[:, :-1] - np.diff(my, axis=1)[:-1] * np.diff(mx, axis=0)[:, :-1]
    assert det.min() > -1e-3, f"fold at {np.unravel_index(det.argmin(), det.shape)}"
    xs, ys = pixel_grid(box)
    edge = np.zeros(xs.shape, bool)
    edge[[0, -1], :] = True
    edge[:, [0, -1]] = True
    moved = np.hypot(warp.map_x - xs, warp.map_y - ys)
    assert moved[edge].max() < 0.05 and warp.mask[edge].max() == 0
    assert moved[warp.mask == 0].max() < 0.05  # outside the mask the warp moves nothing


def test_cavity_fills_the_new_opening_only(face):
    shape = rest_shape(face.landmarks, CONFIG)
    box = region_box(shape)
    d = shape.frame.scale
    wide = build_warp(shape, target_knots(shape, Articulation(1.0, 0.0), 1.0, CONFIG), Articulation(1.0, 0.0), box, CONFIG)
    closed = build_warp(shape, target_knots(shape, Articulation(0.0, 0.0), 1.0, CONFIG), Articulation(0.0, 0.0), box, CONFIG)
    inner_width = shape.inner[1] - shape.inner[0]
    area = wide.cavity.sum()
    # a lens about max_opening high and the inner mouth wide
    assert 0.4 * CONFIG.max_opening * d * inner_width < area < 1.0 * CONFIG.max_opening * d * inner_width
    assert closed.cavity.sum() < 0.05 * area
    inside = wide.cavity > 0.5
    assert wide.depth[inside].min() >= 0 and wide.depth[inside].max() <= 1
    assert np.abs(wide.across[inside]).max() <= 1


def test_paint_darkens_only_a_grown_opening(face):
    from lipstream.pipeline.engines.shared.mouth_paint import KEEP_RAMP, KEEP_STRETCH, paint_cavity

    shape = rest_shape(face.landmarks, CONFIG)
    box = region_box(shape)
    x0, y0, x1, y1 = box
    flat = np.full((y1 - y0, x1 - x0, 3), 180, np.uint8)
    lip, teeth = np.array([190, 110, 110], np.float32), np.array([230, 220, 200], np.float32)
    half = 0.5 * (shape.inner[1] - shape.inner[0])

    def painted(pose, target=None):
        target = target_knots(shape, pose, 1.0, CONFIG) if target is None else target
        warp = build_warp(shape, target, pose, box, CONFIG)
        region = flat.copy()
        paint_cavity(region, warp, lip, teeth, shape.frame.scale, half)
        return region, warp

    region, warp = painted(Articulation(0.0, 0.0))
    assert np.abs(region.astype(int) - 180).max() <= 2  # closed: (almost) nothing to paint
    region, warp = painted(Articulation(1.0, 0.0))
    dark = region.mean(axis=-1) < 100
    grown = (warp.cavity > 0.5) & (warp.stretch >= KEEP_STRETCH + KEEP_RAMP)
    assert dark.sum() >= 0.3 * grown.sum()
    near = cv2.dilate((warp.cavity > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert near[dark].all()  # paint stays on the opening (plus the softening blur)
    # the original opening itself (no growth) keeps the speaker's own inside
    region, _ = painted(Articulation(0.0, 0.0), target=shape.knots.copy())
    assert np.abs(region.astype(int) - 180).max() <= 2


@pytest.mark.parametrize("degrees", [35, 90, 180])
def test_rolled_faces_warp_the_same_way(face, degrees):
    """The construction follows the eye line, so a rolled face gets the same (rolled) warp."""
    from lipstream.pipeline.engines.shared.mouth_warp import frame_scale_ok

    centre = face.landmarks[:, :2].mean(axis=0)
    a = np.radians(degrees)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    rolled = face.landmarks.copy()
    rolled[:, :2] = (face.landmarks[:, :2] - centre) @ rot.T + centre
    pose = Articulation(0.8, 0.5)
    straight, turned = rest_shape(face.landmarks, CONFIG), rest_shape(rolled, CONFIG)
    assert frame_scale_ok(turned)
    np.testing.assert_allclose(turned.knots, straight.knots, atol=1e-6)
    warp = build_warp(turned, target_knots(turned, pose, 1.0, CONFIG), pose, region_box(turned), CONFIG)
    assert np.isfinite(warp.map_x).all() and warp.cavity.sum() > 0


def test_degenerate_landmarks_are_refused():
    from lipstream.pipeline.engines.shared.mouth_warp import frame_scale_ok

    assert not frame_scale_ok(rest_shape(np.zeros((468, 3)), CONFIG))
