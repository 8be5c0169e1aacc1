"""The warp engine stage on the real sample: lip-sync measured on its output frames, before encoding.

The acceptance numbers are measured the way the end-to-end check measures
them, on pixels only: FaceMesh re-detects the lips on the frames the stage
hands on, and the mouth opening is correlated with the new audio.
"""

from dataclasses import replace

import cv2
import numpy as np
import pytest

from lipstream.pipeline.metrics.lipsync_metric import border_gradient_ratio, lip_openings, lipsync_score, silence_ratio
from lipstream.pipeline.engines.shared.rearticulate import WarpLips, fade_cut_edges

from warp_media import FPS, RATE, run_stage, sample_audio, sample_faces, sample_frame_objects, windows

SILENCE = (1.6, 2.6)  # seconds of the new audio replaced by silence


class Recording(WarpLips):
    """The stage, remembering what it did to each frame."""

    def __init__(self) -> None:
        super().__init__()
        self.rendered = {}

    def render(self, frame, pose):
        out, info = super().render(frame, pose)
        self.rendered[frame.index] = info
        return out, info


@pytest.fixture(scope="module")
def audio():
    samples = sample_audio().copy()
    samples[int(SILENCE[0] * RATE) : int(SILENCE[1] * RATE)] = 0.0
    return samples


@pytest.fixture(scope="module")
def run(audio):
    stage = Recording()
    frames = sample_frame_objects()
    out = run_stage(stage, windows(frames, audio))
    return stage, frames, out


@pytest.fixture(scope="module")
def openings(run):
    _, frames, out = run
    return lip_openings(f.rgb() for f in frames), lip_openings(f.rgb() for f in out)


def test_output_mouth_follows_the_new_audio(openings, audio):
    before, after = openings
    times = np.arange(len(after)) / FPS
    score = lipsync_score(after, times, audio, RATE)
    baseline = lipsync_score(before, times, audio, RATE)
    assert score.found == 1.0
    assert score.r >= 0.5 and 0.0 <= score.lead <= 0.2, score
    assert baseline.r < 0.3, baseline  # the original mouth does not follow the new audio


def test_mouth_rests_in_silence(openings, audio):
    _, after = openings
    times = np.arange(len(after)) / FPS
    ratio = silence_ratio(after, times, audio, RATE)
    assert ratio < 0.5, ratio


def test_every_frame_is_emitted_once_in_order_and_context_is_untouched(run, audio):
    stage, frames, out = run
    assert [f.index for f in out] == list(range(len(frames)))
    window = windows(frames, audio)[1]
    result = WarpLips()(window)
    for k, (a, b) in enumerate(zip(window.frames, result.frames)):
        if not window.own_start <= k < window.own_stop:
            assert a is b


def test_pixels_outside_the_mask_are_identical(run):
    stage, frames, out = run
    changed = 0
    for src, dst in zip(frames, out):
        info = stage.rendered.get(src.index)
        if info is None:
            np.testing.assert_array_equal(dst.rgb(), src.rgb())
            continue
        x0, y0, x1, y1 = info.box
        crop = src.face.crop
        assert crop[0] <= x0 and crop[1] <= y0 and x1 <= crop[2] and y1 <= crop[3]
        keep = np.ones(src.rgb().shape[:2], bool)
        keep[y0:y1, x0:x1] = info.warp.mask <= 0
        same = dst.rgb()[keep] == src.rgb()[keep]
        assert same.all(), f"frame {src.index}: {np.count_nonzero(~same.all(axis=-1))} pixels changed outside the mask"
        changed += int((dst.rgb() != src.rgb()).any())
    assert changed >= 0.9 * len(frames)


def test_no_visible_box(run):
    """Gradient along the mask border stays at the level of the face's own texture."""
    stage, frames, out = run
    ratios = []
    for src, dst in list(zip(frames, out))[::10]:
        info = stage.rendered[src.index]
        rgb = dst.rgb()
        mask = np.zeros(rgb.shape[:2], np.float32)
        x0, y0, x1, y1 = info.box
        mask[y0:y1, x0:x1] = info.warp.mask
        face = np.zeros(rgb.shape[:2], np.uint8)
        hull = cv2.convexHull(np.rint(src.face.landmarks[:, :2]).astype(np.int32))
        cv2.fillConvexPoly(face, hull, 1)
        interior = cv2.erode(face, np.ones((9, 9), np.uint8)) > 0
        ratios.append(border_gradient_ratio(rgb, mask, interior))
    assert max(ratios) <= 1.2, ratios


def test_silent_audio_neutralises_the_original_motion(openings):
    before, _ = openings
    stage = WarpLips()
    frames = sample_frame_objects()
    out = run_stage(stage, windows(frames, np.zeros(len(sample_audio()), np.float32)))
    closed = lip_openings(f.rgb() for f in out)
    assert np.nanmedian(closed) < 0.08 and np.nanmax(closed) < 0.15, (np.nanmedian(closed), np.nanmax(closed))
    assert np.nanstd(closed) < 0.5 * np.nanstd(before)


def test_frames_without_a_usable_face_pass_untouched(audio):
    faces = list(sample_faces())
    faces[3] = None
    faces[4] = replace(faces[4], weight=0.0)
    faces[5] = replace(faces[5], small=True)
    faces[6] = replace(faces[6], weight=0.4)
    frames = sample_frame_objects(faces)
    window = windows(frames, audio)[0]
    result = WarpLips()(window)
    for k in (3, 4, 5):
        assert result.frames[k] is window.frames[k]
    full = WarpLips()(windows(sample_frame_objects(), audio)[0])
    faded = np.abs(result.frames[6].rgb().astype(int) - frames[6].rgb().astype(int)).sum()
    strong = np.abs(full.frames[6].rgb().astype(int) - frames[6].rgb().astype(int)).sum()
    assert 0 < faded < 0.7 * strong


def test_a_tight_crop_fades_the_mask_instead_of_cutting_it(audio):
    faces = list(sample_faces())
    face = faces[10]
    x0, y0, x1, y1 = face.crop
    chin = int(face.landmarks[152, 1])
    faces[10] = replace(face, crop=(x0, y0, x1, chin + 3))  # cut just below the chin
    window = windows(sample_frame_objects(faces), audio)[0]
    stage = Recording()
    result = stage(window)
    out, src = result.frames[10].rgb(), window.frames[10].rgb()
    assert (out[chin + 3 :] == src[chin + 3 :]).all()
    assert stage.rendered[10].box[3] == chin + 3
    mask = fade_cut_edges(np.ones((20, 30), np.float32), [False, False, False, True], 4.0)
    assert mask[-1].max() == 0 and mask[0].min() == 1


def test_pose_drives_the_single_frame_geometry():
    """A closed original mouth opened wide, an open one closed: re-detection agrees."""
    from lipstream.pipeline.engines.shared.articulation import Articulation

    from lipstream.models.face_types import Landmarks
    from lipstream.models.facemesh import FaceMesh
    from lipstream.pipeline.metrics.lipsync_metric import mouth_ratio

    mesh = FaceMesh()

    def ratio(frame):  # landmarks from the region the tracker would use
        return mouth_ratio(mesh.landmarks(frame.rgb(), Landmarks(frame.face.landmarks, 1.0)).xy)

    frames = sample_frame_objects()
    before = [ratio(frames[17]), ratio(frames[32])]
    opened, _ = WarpLips().render(frames[17], Articulation(1.0, 0.0))
    closed, _ = WarpLips().render(frames[32], Articulation(0.0, 0.0))
    after = [ratio(opened), ratio(closed)]
    assert before[0] < 0.1 and after[0] > 0.3, (before, after)
    assert before[1] > 0.3 and after[1] < 0.08, (before, after)
