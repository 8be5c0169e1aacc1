"""The exemplar stage over real windows: the bank grows while streaming, and a mouth never seen open falls back."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from clips import encode_rgb
from engine_windows import tracked_windows
from lipstream.config import SyncConfig, WindowConfig
from lipstream.pipeline.engines.exemplar.stage import ExemplarMouths
from lipstream.pipeline.metrics.lipsync_metric import mouth_ratio
from media import SAMPLE_VIDEO
from lipstream.stream.frames import Window

WINDOW = WindowConfig(size=16, overlap=8)


@pytest.fixture(scope="module")
def windows() -> list[Window]:
    return tracked_windows(100, WINDOW)


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """64 s: the sample played 16 times at half size, a keyframe every 1.48 s (what the pre-pass reads)."""
    import av

    path = tmp_path_factory.mktemp("long") / "long.mp4"
    with av.open(str(SAMPLE_VIDEO)) as source:
        pictures = [f.to_ndarray(format="rgb24")[::2, ::2] for f in source.decode(video=0)]
    frames = (pictures[i % len(pictures)] for i in range(16 * len(pictures)))
    return encode_rgb(path, frames, 25, {"g": "37", "keyint_min": "37", "sc_threshold": "0"})


def draws_per_window(stage: ExemplarMouths, windows: list[Window]) -> list[int]:
    drawn = []
    for window in windows:
        before = stage.drawn
        stage(window)
        drawn.append(stage.drawn - before)
    return drawn


def test_a_pipe_learns_while_streaming_and_a_long_file_is_looked_over_first(windows, long_file):
    pipe = ExemplarMouths(SyncConfig(window=WINDOW))  # no prepare(): the bank starts with the first window's frames
    streamed = draws_per_window(pipe, windows)
    report = pipe.report()
    assert 0 < report["exemplar_coverage"] <= 1 and report["exemplars"] == len(pipe.bank) > 10
    file = ExemplarMouths(SyncConfig(window=WINDOW))
    file.prepare(SAMPLE_VIDEO)
    assert len(file.bank) == 0, "a short file is not looked over: its own look-ahead is enough"
    file.prepare(long_file)
    assert len(file.bank) > 10
    looked_over = draws_per_window(file, windows)
    assert looked_over[0] > streamed[0], (looked_over, streamed)  # the pre-pass covers shapes the start never showed
    later = slice(len(windows) // 2, None)
    assert sum(streamed[later]) >= 0.8 * sum(looked_over[later]), (streamed, looked_over)  # the pipe caught up


def test_a_speaker_who_never_opens_the_mouth_gets_the_warp_mouth(windows):
    # one closed-mouth picture for every frame: the bank only ever sees a closed mouth
    frames = [f for w in windows for f in w.owned]
    closed = min(frames, key=lambda f: mouth_ratio(f.face.landmarks[:, :2]))
    still = [replace(w, frames=tuple(replace(f, decoded=closed.decoded, face=closed.face) for f in w.frames)) for w in windows]
    stage = ExemplarMouths(SyncConfig(window=WINDOW))
    out = [stage(w) for w in still]
    assert all(e.opening < 0.04 for e in stage.bank.exemplars()), "the bank only ever saw a (nearly) closed mouth"
    # only the slightly open shapes are covered; the others show the warp engine's painted mouth, and the report says so
    assert stage.report()["exemplar_coverage"] < 0.3 and stage.edited > 10
    edited = sum(f.edited for w in out for f in w.owned)
    assert edited > 0.5 * sum(len(w.owned) for w in out), "the mouth still moves (the warp engine's)"


def test_no_seam_where_the_exemplar_is_pasted(windows):
    """Along the paste mask's edge the picture is no sharper than the re-articulated picture it was pasted on."""
    import cv2

    from lipstream.pipeline.engines.exemplar.render import draw_exemplar, exemplar_maps, lips_box
    from lipstream.pipeline.engines.exemplar.select import choose
    from lipstream.pipeline.engines.exemplar.stage import target_descriptor
    from lipstream.pipeline.metrics.lipsync_metric import gradient_magnitude

    stage = ExemplarMouths(SyncConfig(window=WINDOW))
    for window in windows:
        stage._learn(window)
    ratios = []
    for window in windows[:6]:
        for original, pose in zip(window.owned, stage.warp.poses(window)):
            draft = stage.warp.draft(original, pose)
            target = None if draft is None else target_descriptor(draft.rendered)
            if target is None or target[0] < 0.02:
                continue
            (exemplar,) = choose([target], stage.bank.exemplars())
            if exemplar is None:
                continue
            frame, record = stage.warp.finish(draft, paint=False)  # as the stage does under an exemplar
            out = draw_exemplar(frame, record, exemplar)
            x0, y0, x1, y1 = lips_box(record)
            _, _, mask, _ = exemplar_maps(record, exemplar, (x0, y0, x1, y1))
            edge = cv2.morphologyEx((mask > 0.05).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
            ox, oy = record.origin
            box = (x0 + ox, y0 + oy, x1 + ox, y1 + oy)
            after, before = gradient_magnitude(out.rgb_region(box))[edge], gradient_magnitude(frame.rgb_region(box))[edge]
            ratios.append(float(after.mean() / max(before.mean(), 1e-6)))
    assert len(ratios) >= 10
    print(f"seam ratio median {np.median(ratios):.3f} over {len(ratios)} frames")
    assert np.median(ratios) <= 1.2, np.median(ratios)
