"""A face prepared for live mode: one square crop, the target mapped into it, cached."""

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from lipstream.errors import InputError
from lipstream.pipeline.live import face as live_face
from lipstream.pipeline.live.face import FaceOptions, prepare_face
from media import SAMPLE_VIDEO

OPTIONS = FaceOptions(size=256, loop_seconds=2.0)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    cache = tmp_path_factory.mktemp("live-cache")
    return prepare_face(SAMPLE_VIDEO, OPTIONS, cache=cache), cache


def test_the_loop_is_cut_at_the_output_rate_with_the_target_in_every_frame(prepared):
    face, _ = prepared
    assert face.frames.shape == (50, 256 * 3 // 2, 256)
    assert face.coverage == 1.0
    for target in face.faces:
        xy = target.landmarks[:, :2]
        assert xy.min() >= 0 and xy.max() <= 256
        x0, y0, x1, y1 = target.crop
        assert 0 <= x0 < x1 <= 256 and 0 <= y0 < y1 <= 256
    mouth = face.faces[0].landmarks[13, :2]  # upper inner lip: the face sits in the crop, mouth below the middle
    assert 64 < mouth[0] < 192 and 128 < mouth[1] < 230


def test_the_loop_ping_pongs_so_it_never_jumps(prepared):
    face, _ = prepared
    indices = [face.loop_index(t) for t in range(300)]
    assert max(abs(a - b) for a, b in zip(indices, indices[1:])) == 1
    assert min(indices) == 0 and max(indices) == len(face.frames) - 1


def test_a_second_preparation_comes_from_the_cache(prepared, monkeypatch):
    face, cache = prepared
    monkeypatch.setattr(live_face, "_prepare", lambda *a: pytest.fail("prepared again instead of read from the cache"))
    again = prepare_face(SAMPLE_VIDEO, OPTIONS, cache=cache)
    assert np.array_equal(again.frames, face.frames)
    assert all(np.array_equal(a.landmarks, b.landmarks) and a.crop == b.crop for a, b in zip(again.faces, face.faces))
    other = FaceOptions(size=128, loop_seconds=2.0)  # other options: another entry
    monkeypatch.undo()
    assert prepare_face(SAMPLE_VIDEO, other, cache=cache).frames.shape[1:] == (192, 128)


def test_a_damaged_cache_entry_is_prepared_again(prepared, tmp_path):
    face, cache = prepared
    copy = tmp_path / "cache"
    copy.mkdir()
    for entry in cache.glob("*.npz"):
        (copy / entry.name).write_bytes(b"not a cache entry")
    again = prepare_face(SAMPLE_VIDEO, OPTIONS, cache=copy)
    assert np.array_equal(again.frames, face.frames)


def test_a_still_image_is_a_one_frame_loop(tmp_path, prepared):
    face, _ = prepared
    still = tmp_path / "face.png"
    with av.open(str(SAMPLE_VIDEO)) as container:
        cv2.imwrite(str(still), next(container.decode(video=0)).to_ndarray(format="bgr24"))
    image = prepare_face(still, OPTIONS, cache=tmp_path / "cache")
    assert len(image.frames) == 1 and image.coverage == 1.0
    assert {image.loop_index(t) for t in range(10)} == {0}


def test_inputs_without_a_face_say_so_in_one_line(tmp_path):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    with pytest.raises(InputError, match="no face found") as info:
        prepare_face(blank, OPTIONS, cache=tmp_path / "cache")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="face file not found"):
        prepare_face(tmp_path / "missing.mp4", OPTIONS, cache=tmp_path / "cache")
    with pytest.raises(InputError, match="even"):
        FaceOptions(size=255)
