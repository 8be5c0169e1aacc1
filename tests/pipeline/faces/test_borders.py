"""Crop pins at segment borders: independently processed segments meet without a crop jump."""

import asyncio
from fractions import Fraction

import numpy as np
import pytest

from lipstream.config import SegmentConfig, SyncConfig
from lipstream.pipeline.engines import build_stages
from lipstream.pipeline.faces.borders import BorderPins
from lipstream.pipeline.jobs.segmented import run_segments
from lipstream.stream.audio import AudioInput
from lipstream.stream.source import VideoSource
from face_scenes import canvas, face_patch, paste
from lipstream.config import FaceConfig, Target
from media import tone_samples, write_wav
from clips import encode_rgb
from segment_media import FPS, SECONDS, SEGMENT, twelve_seconds


def test_the_crop_starts_on_the_pin_and_glides_to_the_next():
    pins = BorderPins(Fraction(4), Fraction(1, 4), {1: (100.0, 50.0), 2: (200.0, 80.0)}, glide=3)
    assert pins.anchor(Fraction(4)) == (100.0, 50.0, 1.0)  # a segment's first frame sits on its pin
    assert pins.anchor(Fraction(2)) is None  # mid-segment: the smoother's own crop
    x, y, weight = pins.anchor(Fraction(15, 4))  # the last frame before border 1: almost there
    assert (x, y) == (100.0, 50.0) and weight == pytest.approx(3 / 4)
    assert pins.anchor(Fraction(1, 4) + 4)[2] == pytest.approx(3 / 4)
    assert pins.anchor(Fraction(0)) is None  # no border at the start


class CropTrack:
    """An `Output` that keeps each written frame's crop centre instead of encoding it."""

    notes = ()

    def __init__(self):
        self.centres = []

    def skip(self, index):
        return False

    def skipped(self, index):
        return None

    def begin(self, segment):
        pass

    def write(self, frames, faces, edited):
        for frame in frames:
            x0, y0, x1, y1 = frame.face.crop if frame.face is not None else (np.nan,) * 4
            self.centres.append(((x0 + x1) / 2, (y0 + y1) / 2))
        return b""

    def end_segment(self, segment, end, report):
        pass

    def finish(self, video_end, audio_end, stop):
        return b""

    def abort(self):
        pass


def crop_centres(video, audio, seconds, face=FaceConfig()):
    plan = build_stages(SyncConfig(engine="faces", segment=SegmentConfig(seconds=seconds), face=face))
    speech, source, track = AudioInput(audio), VideoSource(video), CropTrack()
    try:
        asyncio.run(run_segments(plan, source, speech, track, total_frames=None, audio_end=lambda end: end, video_file=video))
    finally:
        source.close()
        speech.close()
    return np.array(track.centres)


def crop_steps(video, audio, seconds):
    return np.hypot(*np.diff(crop_centres(video, audio, seconds), axis=0).T)


@pytest.mark.slow
def test_no_crop_jump_at_segment_borders(tmp_path):
    video, audio = twelve_seconds(tmp_path)
    steps = crop_steps(video, audio, SEGMENT)
    borders = [SEGMENT * FPS * k - 1 for k in (1, 2)]  # the steps from a segment's last frame to the next one's first
    inside = np.delete(steps, borders)
    assert len(steps) == 47
    # no larger than the steps within segments (one pixel of rounding allowed): without the pins
    # a still face gets a still crop in each segment and a jump of several pixels between them
    assert steps[borders].max() <= inside.max() + 1.0
    assert steps.max() <= 4.0


def speaker_walks_away(path):
    """The chosen speaker walks from the top left to the top right in the first 4 s; another
    face sits still at the bottom left, nearer the speaker's starting point than the speaker is later."""
    def pictures():  # type: ignore[no-untyped-def]
        for i in range(SECONDS * FPS):
            picture = canvas((640, 480))
            paste(picture, face_patch("astronaut"), (170, 370), 200)
            x = 110 + 420 * min(i / (SEGMENT * FPS), 1.0)
            paste(picture, face_patch("woman"), (x, 120), 170)
            yield picture

    encode_rgb(path, pictures(), FPS, {"crf": "16", "g": str(2 * FPS)})
    return path


@pytest.mark.slow
def test_a_segment_keeps_the_target_the_previous_one_followed(tmp_path):
    video = speaker_walks_away(tmp_path / "walk.mp4")
    audio = write_wav(tmp_path / "tone.wav", tone_samples(SECONDS))
    centres = crop_centres(video, audio, SEGMENT, FaceConfig(target=Target(110, 120)))
    # the last segment starts fresh 16 frames (4 s) before it, when the speaker is already at the right:
    # by the first-frame rule it would take the face nearest (110, 120), the other person
    assert np.all(np.hypot(centres[-SEGMENT * FPS :, 0] - 530, centres[-SEGMENT * FPS :, 1] - 120) < 60)


@pytest.mark.parametrize("seekable", [True, False], ids=["seeks", "decodes-forward"])
def test_borders_from_the_output_end_on_are_not_measured(tmp_path, monkeypatch, seekable):
    """An output that stops before the video (audio shorter than it) needs no pins after its end,
    and the pre-pass stops decoding there; the pins it does measure are the same."""
    from lipstream.pipeline.faces import borders
    from lipstream.pipeline.faces.stage import face_stage

    video, _ = twelve_seconds(tmp_path)
    if not seekable:
        monkeypatch.setattr(VideoSource, "frame_index", lambda self: None)
    decoded = []
    forward = borders.output_frames

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        for frame in forward(*args, **kwargs):
            decoded.append(frame.index)
            yield frame

    monkeypatch.setattr(borders, "output_frames", counted)
    stage = face_stage(SyncConfig(segment=SegmentConfig(seconds=SEGMENT)))
    stage.prepare(video)
    whole, whole_decoded = stage._pins, len(decoded)
    assert sorted(whole.pins) == [1, 2]
    decoded.clear()
    stage.prepare(video, Fraction(2 * SEGMENT))  # ends on border 2: no segment starts there
    short = stage._pins
    assert sorted(short.pins) == [1] and short.pins[1] == whole.pins[1]
    assert max(decoded) < 2 * SEGMENT * FPS and len(decoded) < whole_decoded
