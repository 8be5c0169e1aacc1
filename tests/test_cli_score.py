"""`lipstream score`: the offset search on constructed embeddings, the streaming pieces, and the command end to end.

With filled (random) weights the offset is meaningless, so the search is
checked on embeddings built so the answer is known, and the end-to-end runs
check shapes, determinism and exit codes only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from golden_fill import filled_state_dict
from media import SAMPLE_AUDIO, SAMPLE_VIDEO, index_image, tone_samples, write_indexed_clip, write_wav

from lipstream.models.syncnet_color import SyncNetColor
from lipstream.models.wav2lip_mel import melspectrogram
from lipstream.pipeline.metrics.lse import OffsetSearch, search_offsets
from lipstream.pipeline.metrics.sync_score import score_sync
from lipstream.pipeline.metrics.syncnet_inputs import audio_windows, grid_frames, lower_face
from lipstream.stream.audio import AudioInput
from lipstream.stream.source import VideoSource


def _unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    x = np.abs(rng.standard_normal((n, dim)))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ------------------------------------------------------------------ offset search (pure)


@pytest.mark.parametrize("delay", [-7, 0, 5, 15])
def test_the_offset_is_the_audio_delay(delay):
    """Audio delayed by k frames: audio window j carries what the lips show at frame j - k."""
    rng = np.random.default_rng(1)
    content = _unit(rng, 200)  # what is said at each moment
    video = content[20:120] + 0.01 * rng.standard_normal((100, 16))
    audio = content[20 - delay : 120 - delay + 15]
    scores = search_offsets(video, audio, max_offset=15)
    assert scores.best_offset == delay
    assert scores.min_distance < 0.1 < scores.confidence
    assert scores.offsets == tuple(range(-15, 16))


def test_statistics_follow_the_definition():
    video = np.zeros((4, 1))
    audio = np.array([[0.0], [1.0], [2.0], [3.0]])
    scores = search_offsets(video, audio, max_offset=2)
    # offset d pairs video i with audio i + d; |0 - audio| is the audio value
    want = [np.mean([0, 1]), np.mean([0, 1, 2]), np.mean([0, 1, 2, 3]), np.mean([1, 2, 3]), np.mean([2, 3])]
    assert scores.mean_distance == pytest.approx(want)
    assert scores.pairs == (2, 3, 4, 3, 2)
    assert scores.best_offset == -2 and scores.min_distance == pytest.approx(0.5)
    assert scores.confidence == pytest.approx(np.median(want) - 0.5)


@pytest.mark.parametrize("order", ["video_first", "audio_first", "interleaved", "batches"])
def test_streaming_search_equals_the_batch_one(order):
    rng = np.random.default_rng(2)
    video, audio = _unit(rng, 60), _unit(rng, 75)
    video[[3, 4, 30]] = np.nan  # windows without a face
    want = search_offsets(video, audio, max_offset=6)
    search = OffsetSearch(max_offset=6)
    v = [(i, None if np.isnan(e).any() else e) for i, e in enumerate(video)]
    a = list(enumerate(audio))
    if order == "video_first":
        steps = [("v", x) for x in v] + [("a", x) for x in a]
    elif order == "audio_first":
        steps = [("a", x) for x in a] + [("v", x) for x in v]
    elif order == "interleaved":
        steps = [s for pair in zip([("v", x) for x in v], [("a", x) for x in a]) for s in pair] + [("a", x) for x in a[60:]]
    else:
        steps = []
        for k in range(0, 80, 8):
            steps += [("v", x) for x in v[k : k + 8]] + [("a", x) for x in a[k : k + 8]]
    for kind, (i, e) in steps:
        (search.add_video if kind == "v" else search.add_audio)(i, e)
        assert len(search._video) + len(search._audio) <= 2 * 75  # bounded by the lead of one stream
    got = search.result()
    assert got.pairs == want.pairs
    assert got.mean_distance == pytest.approx(want.mean_distance, abs=1e-12)


def test_streaming_buffers_stay_small_in_lock_step():
    rng = np.random.default_rng(3)
    search = OffsetSearch(max_offset=15)
    for i, (v, a) in enumerate(zip(_unit(rng, 500), _unit(rng, 500))):
        search.add_video(i, v)
        search.add_audio(i, a)
        assert len(search._video) <= 31 and len(search._audio) <= 31
    assert search.result().pairs[15] == 500


# ------------------------------------------------------------------ streaming pieces


def test_audio_windows_are_wav2lip_chunks():
    audio = AudioInput(SAMPLE_AUDIO)
    try:
        windows = list(audio_windows(audio, block=37))
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in audio.chunks(16000)])
    finally:
        audio.close()
    mel = melspectrogram(samples)
    starts = [int(j * 80 / 25) for j in range(400) if int(j * 80 / 25) + 16 <= mel.shape[1]]
    assert [j for j, _ in windows] == list(range(len(starts)))
    for (j, window), start in zip(windows, starts):
        assert window.shape == (80, 16)
        # Wav2Lip reflects the signal at both ends; we hear silence past them (3 columns each).
        lo, hi = max(0, 3 - start), min(16, mel.shape[1] - 3 - start)
        assert np.abs(window[:, lo:hi] - mel[:, start + lo : start + hi]).max() <= 1e-5, j


@pytest.mark.parametrize("rate, expected", [(25, list(range(20))), (50, list(range(0, 40, 2))), (10, [0, 0, 1, 1, 2, 2, 2, 3])])
def test_video_is_sampled_at_25_fps(tmp_path, rate, expected):
    count = {25: 20, 50: 40, 10: 4}[rate]
    clip = write_indexed_clip(tmp_path / "clip.mp4", count, rate=rate)
    with VideoSource(clip) as source:
        got = [(k, frame.source_index) for k, frame in grid_frames(source)]
    assert [k for k, _ in got] == list(range(len(got)))
    assert [s for _, s in got][: len(expected)] == expected
    assert len(got) == round(count / rate * 25)


def test_lower_face_is_the_bgr_lower_half():
    rgb = np.zeros((200, 300, 3), np.uint8)
    rgb[100:150, 50:150] = (255, 0, 0)  # red chin region: the lower half of the box below
    points = np.array([[50.0, 50.0, 0.0], [149.0, 149.0, 0.0]])
    crop = lower_face(rgb, points)
    assert crop.shape == (48, 96, 3) and crop.dtype == np.uint8
    assert crop[4:, :, 2].min() == 255 and crop[..., :2].max() == 0  # red is the last channel in BGR
    assert lower_face(rgb, np.array([[10.0, 10.0, 0.0], [12.0, 40.0, 0.0]])) is None


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def filled_weights(tmp_path_factory) -> Path:
    """lipsync_expert.pth filled by the golden rule, saved in the official layout."""
    folder = tmp_path_factory.mktemp("weights")
    state = {"module." + k: v for k, v in filled_state_dict(SyncNetColor(), "fan_in", 1.0).items()}
    torch.save({"state_dict": state, "global_step": 0, "global_epoch": 0}, folder / "lipsync_expert.pth")
    return folder


def score_cli(*args: object, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LIPSTREAM_WEIGHTS"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "empty-cache")
    return subprocess.run(
        [sys.executable, "-m", "lipstream", "score", *map(str, args)],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300,
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("lipstream: error: ") and result.stdout == "", result.stderr
    return lines[0]


def test_score_on_the_sample(tmp_path, filled_weights, monkeypatch):
    result = score_cli(SAMPLE_VIDEO, SAMPLE_AUDIO, "--weights", filled_weights, "--json", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["frames"] == 100 and data["windows"] == 96 and data["face_windows"] == 96
    assert data["offsets"] == list(range(-15, 16)) and len(data["distances"]) == 31
    assert data["pairs"][15] == 96 and all(d is not None and 0 <= d <= 2 for d in data["distances"])
    assert data["lse_d"] == min(data["distances"])
    assert data["lse_c"] == pytest.approx(float(np.median(data["distances"])) - min(data["distances"]), abs=1e-9)
    assert data["offset"] == data["offsets"][int(np.argmin(data["distances"]))]
    assert data["offset_seconds"] == data["offset"] / 25

    monkeypatch.delenv("LIPSTREAM_WEIGHTS", raising=False)
    again = score_sync(SAMPLE_VIDEO, SAMPLE_AUDIO, weights_dirs=[filled_weights], batch_size=48).to_dict()
    assert {k: v for k, v in again.items() if k not in ("distances", "lse_c", "lse_d")} == {
        k: v for k, v in data.items() if k not in ("distances", "lse_c", "lse_d")
    }
    assert again["distances"] == pytest.approx(data["distances"], abs=1e-6)


def _with_own_audio(path: Path, frames: int, delay_frames: int = 0) -> Path:
    """The first `frames` frames of the sample with its speech (delayed by `delay_frames`) as the audio track."""
    with av.open(str(SAMPLE_VIDEO)) as source:
        images = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), source.decode(video=0))]
    with av.open(str(SAMPLE_AUDIO)) as source:
        speech = np.concatenate([f.to_ndarray().reshape(-1) for f in source.decode(audio=0)]).astype(np.float32) / 32768.0
    speech = np.concatenate([np.zeros(delay_frames * 640, np.float32), speech])[: frames * 640]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = images[0].shape[1], images[0].shape[0], "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "18"}
        audio = out.add_stream("aac", rate=16000, layout="mono")
        for image in images:
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(video.encode(None))
        for start in range(0, speech.size, 1024):
            chunk = av.AudioFrame.from_ndarray(speech[None, start : start + 1024], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, start
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
    return path


def test_score_reads_the_video_own_audio_track(tmp_path, filled_weights):
    clip = _with_own_audio(tmp_path / "talk.mp4", 30, delay_frames=5)
    result = score_cli(clip, "--weights", filled_weights, "--max-offset", "5", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("offset ") and result.stdout.count("\n") == 1, result.stdout
    assert "LSE-C" in result.stdout and "(26/26 windows with a face)" in result.stdout


def test_score_errors_are_one_line(tmp_path, filled_weights):
    line = error_line(score_cli(SAMPLE_VIDEO, SAMPLE_AUDIO, "--weights", tmp_path, tmp_path=tmp_path))
    assert "lipsync_expert.pth" in line and "not found" in line and "github.com/Rudrabha/Wav2Lip" in line and "weights fetch" not in line

    line = error_line(score_cli(SAMPLE_VIDEO, "--weights", filled_weights, tmp_path=tmp_path))
    assert "has no audio track" in line

    clip = write_indexed_clip(tmp_path / "noface.mp4", 12)
    speech = write_wav(tmp_path / "tone.wav", tone_samples(0.5))
    line = error_line(score_cli(clip, speech, "--weights", filled_weights, tmp_path=tmp_path))
    assert "no face found" in line


def test_index_frames_have_no_face():
    """Guards the no-face case above: the detector must not see a face in the index pattern."""
    from lipstream.models.blazeface import BlazeFace

    assert BlazeFace("full").detect_frame(index_image(5)) == []
