"""Face options: official detectors in the face stage (batched, then near the target), FAN placing the mesh."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from face_scenes import DATA, canvas, decoded, face_patch, paste, run_stage
from lipstream.config import FaceConfig, WindowConfig
from lipstream.models.blazeface import BlazeFace
from lipstream.models.face_types import Detection
from lipstream.pipeline.faces.models import MESH_68, FaceModels, ScaledDetector, fit_mesh, mesh_68, requirements
from lipstream.pipeline.faces.stage import DETECT_BATCH, FaceStage
from lipstream.stream.frames import Frame, Window


@pytest.fixture(scope="module")
def mesh() -> np.ndarray:
    """The sample's first-frame FaceMesh points (468, 3), from the face stage."""
    frames = list(run_stage(decoded(DATA / "sample.mp4")))
    return np.asarray(frames[0].face.landmarks)


def test_requirements_follow_the_options():
    assert requirements(FaceConfig()) == ()
    assert requirements(FaceConfig(detector="blazeface-short")) == ()
    assert requirements(FaceConfig(detector="s3fd", landmarks="fan")) == (("s3fd",), ("fan2d",))
    assert requirements(FaceConfig(detector="retinaface-mnet")) == (("retinaface_mnet",),)


def test_the_68_point_view_of_the_mesh_is_a_face(mesh):
    view = mesh_68(mesh)
    assert view.shape == (68, 2) and np.allclose(view[8], mesh[152, :2])
    jaw = view[:17]
    assert np.all(np.diff(jaw[:9, 1]) > 0) and np.all(np.diff(jaw[8:, 1]) < 0), "the jaw runs down to the chin and back up"
    right_eye, left_eye = view[36:42].mean(axis=0), view[42:48].mean(axis=0)
    nose_tip, mouth = view[30], view[48:60].mean(axis=0)
    assert right_eye[0] < nose_tip[0] < left_eye[0] and max(right_eye[1], left_eye[1]) < nose_tip[1] < mouth[1] < view[8, 1]
    assert view[48, 0] < view[60, 0] < view[64, 0] < view[54, 0], "inner lip corners sit inside the outer ones"
    assert view[17:22, 1].max() < right_eye[1] and view[22:27, 1].max() < left_eye[1], "brows above the eyes"
    assert len(set(MESH_68.values())) == len(MESH_68) == 51


def test_fit_mesh_moves_the_mesh_onto_fan_and_keeps_its_shape(mesh):
    fan = mesh_68(mesh)
    fan[48:68] += (2.0, 3.0)  # FAN puts the mouth 2 px right, 3 px lower
    fitted = fit_mesh(mesh, fan)
    assert fitted is not None and fitted.shape == mesh.shape
    moved = fitted[:, :2] - mesh[:, :2]
    lips = [MESH_68[k] for k in range(48, 68)]
    assert np.allclose(moved[lips].mean(axis=0), (2.0, 3.0), atol=0.35)
    eyes = [MESH_68[k] for k in range(36, 48)]
    assert np.abs(moved[eyes]).max() < 0.2, "features FAN agrees on stay where they were"
    assert np.array_equal(fitted[:, 2], mesh[:, 2])
    assert np.array_equal(fit_mesh(mesh, mesh_68(mesh)), mesh.astype(np.float64))
    elsewhere = mesh_68(mesh) + 0.5 * np.ptp(mesh[:, 0])  # FAN found some other face
    assert fit_mesh(mesh, elsewhere) is None


class StubDetector:
    """A `FaceDetector` that returns a fixed box (in full-frame pixels) and records what it was shown."""

    def __init__(self, box: tuple[float, float, float, float], keypoints: np.ndarray) -> None:
        self.box, self.keypoints = box, keypoints
        self.calls: list[list[tuple[int, int]]] = []  # the (height, width) of each picture, per call

    def detect(self, frames):
        self.calls.append([f.shape[:2] for f in frames])
        out = []
        for f in frames:
            x0, y0, x1, y1 = self.box
            h, w = f.shape[:2]
            if w >= x1 and h >= y1:  # a full frame: the face is where it is
                out.append([Detection(x0, y0, x1, y1, 0.99, self.keypoints)])
            else:  # a region: the stub knows nothing there
                out.append([])
        return out


def test_an_official_detector_batches_full_frames_until_the_target_is_found_then_rests():
    woman = face_patch("woman")
    blaze = BlazeFace("full")

    def image(i: int) -> np.ndarray:
        img = canvas()
        if 10 <= i < 30 or i >= 40:
            paste(img, woman, (320, 180), 170)
        return img

    (truth,) = blaze.detect_frame(image(10))
    stub = StubDetector(tuple(truth.box), truth.keypoints)
    stage = FaceStage(FaceConfig(), WindowConfig(size=16, overlap=8), FaceModels(detector=stub, device="cpu"))
    assert stage.device == "cpu", "torch detectors run on their device's executor"
    frames = [Frame(i, i, Fraction(1, 25), i, image=image(i)) for i in range(50)]
    from lipstream.stream.windows import plan_windows

    out = []
    for n, (items, lo, hi) in enumerate(plan_windows(frames, 16, 8)):
        out += stage(Window(n, tuple(items), lo, hi)).owned
    present = [f.face is not None for f in out]
    assert present == [False] * 10 + [True] * 20 + [False] * 10 + [True] * 10
    full = [c for c in stub.calls if all(shape == (360, 640) for shape in c)]
    regions = [c for c in stub.calls if any(shape != (360, 640) for shape in c)]
    assert max(len(c) for c in full) > 1, "before the target is found, frames are detected in batches"
    first_region = stub.calls.index(regions[0])
    # until the loss at frame 30: the ten empty frames and one batch past the face, then tracking alone
    assert sum(len(c) for c in stub.calls[:first_region]) <= 10 + DETECT_BATCH, stub.calls
    # frames 30..40, from the loss to the return, each look near the target first (the stub finds nothing there)
    assert len(regions) == 11 and all(len(c) == 1 and c[0][0] < 360 for c in regions), stub.calls
    assert stub.calls[-1] == regions[-1], "once found again, tracking needs no detector"


def test_scaled_detector_maps_boxes_back():
    stub = StubDetector((10.0, 20.0, 50.0, 80.0), np.array([[20.0, 30.0], [40.0, 30.0]]))
    scaled = ScaledDetector(stub, 320)
    (found,) = scaled.detect([np.zeros((360, 640, 3), np.uint8)])
    assert stub.calls == [[(180, 320)]]
    (d,) = found
    assert (d.x0, d.y0, d.x1, d.y1) == (20.0, 40.0, 100.0, 160.0) and np.array_equal(d.keypoints, [[40, 60], [80, 60]])
    assert ScaledDetector(stub, 1000).detect([np.zeros((360, 640, 3), np.uint8)])[0][0].x0 == 10.0
