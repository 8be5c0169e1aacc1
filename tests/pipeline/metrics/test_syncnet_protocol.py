"""The published evaluation's face tracks and crops (pure), and `score --protocol syncnet` end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from golden_fill import filled_state_dict
from media import SAMPLE_AUDIO, SAMPLE_VIDEO, write_wav
from lipstream.models.blazeface import BlazeFace
from lipstream.models.syncnet_color import SyncNetColor
from lipstream.pipeline.metrics.sync_score import score_sync
from lipstream.pipeline.metrics.syncnet_protocol import ProtocolConfig, Track, crop_face, link_tracks, track_crops
from lipstream.stream.audio import AudioInput


def moving_face(frames: int, start: float = 100.0, size: float = 150.0) -> list[np.ndarray]:
    return [np.array([[start + 0.5 * k, 80.0, start + 0.5 * k + size, 80.0 + size]]) for k in range(frames)]


def test_tracks_link_overlapping_boxes_and_fill_short_gaps():
    dets = moving_face(80)
    for k in range(30, 40):  # missed detections: the track goes on, boxes interpolated
        dets[k] = np.zeros((0, 4))
    dets[5] = np.vstack([dets[5], [[400.0, 300.0, 520.0, 420.0]]])  # a stray face for one frame
    (track,) = link_tracks(dets)
    assert list(track.frames) == list(range(80))
    np.testing.assert_allclose(track.boxes[35], [117.5, 80.0, 267.5, 230.0])


def test_long_gaps_split_tracks_and_short_or_small_tracks_are_dropped():
    dets = moving_face(60) + [np.zeros((0, 4))] * 26 + moving_face(60, start=130.0)
    tracks = link_tracks(dets)
    assert [(t.frames[0], t.frames[-1]) for t in tracks] == [(0, 59), (86, 145)]
    assert link_tracks(moving_face(49)) == [] and len(link_tracks(moving_face(50))) == 1
    assert link_tracks(moving_face(80, size=90.0)) == [], "faces of 100 px or less are not scored"


def test_crops_are_smoothed_over_13_frames():
    boxes = np.array([[100.0, 100.0, 200.0, 200.0]] * 40)
    boxes[20] += 60.0  # one jumpy detection
    rows = track_crops(Track(np.arange(40), boxes))
    np.testing.assert_allclose(rows[10:30], [[150.0, 150.0, 50.0]] * 20)


def test_the_crop_spans_the_face_from_above_the_centre_to_below_the_chin():
    image = np.zeros((400, 400, 3), np.uint8)
    image[200, :] = 255  # a line through the box centre
    config = ProtocolConfig()
    crop = crop_face(image, 200.0, 200.0, 50.0, config)
    assert crop.shape == (224, 224, 3)
    row = int(np.argmax(crop[:, 112, 0]))
    assert abs(row - 224 / 2.8) <= 1, row  # one half-size above the centre, 1.8 below: the centre at 1/2.8
    corner = crop_face(image, 10.0, 10.0, 50.0, config)
    assert (corner[:20, :20] == config.pad_value).all(), "outside the picture is grey 110"


class BoxesOfBlazeFace:
    """A detector whose boxes are BlazeFace's, scaled like S3FD boxes (S3FD is tested at parity elsewhere)."""

    def __init__(self) -> None:
        self.blaze = BlazeFace("full")

    def detect(self, frames):
        out = []
        for frame in frames:
            found = self.blaze.detect_frame(frame)
            out.append([type(d)(d.x0, d.y0, d.x1, d.y1, 0.99) for d in found])
        return out


@pytest.mark.slow
def test_score_with_the_protocol_follows_a_shift_of_the_audio(tmp_path):
    weights = tmp_path / "w"
    weights.mkdir()
    state = filled_state_dict(SyncNetColor(), "fan_in", 1.0)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, weights / "lipsync_expert.pth")
    speech = AudioInput(SAMPLE_AUDIO)
    try:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in speech.chunks(16000)])
    finally:
        speech.close()
    k = 4
    late = write_wav(tmp_path / "late.wav", np.concatenate([np.zeros(k * 640, np.float32), samples]))
    kwargs = dict(weights_dirs=[weights], protocol="syncnet", detector=BoxesOfBlazeFace(), max_offset=10)
    plain = score_sync(SAMPLE_VIDEO, SAMPLE_AUDIO, **kwargs).to_dict()
    shifted = score_sync(SAMPLE_VIDEO, late, **kwargs).to_dict()
    assert plain["protocol"] == "syncnet" and plain["tracks"] == 1 and plain["face_windows"] == plain["windows"] == 96
    assert np.isfinite([plain["lse_c"], plain["lse_d"], shifted["lse_c"], shifted["lse_d"]]).all()
    # audio k frames late: the distance at offset d now is the old one at d - k, wherever both were measured
    old, new = plain["distances"], shifted["distances"]
    inner = range(k + 2, len(old) - 2)
    np.testing.assert_allclose([new[i] for i in inner], [old[i - k] for i in inner], atol=0.02)
    assert shifted["offset"] == plain["offset"] + k or not (-10 + k <= plain["offset"] <= 10 - k)
