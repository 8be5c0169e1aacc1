"""The Wav2Lip engine on the bundled sample: crops, timing, pass-through rules, batching, end to end."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from fractions import Fraction

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from golden_fill import fill, load_golden
from lipstream.config import SyncConfig, WindowConfig
from lipstream.errors import WeightsError
from lipstream.models import _loading
from lipstream.models._loading import cpu_autocast, inference_dtype
from lipstream.models.wav2lip import Wav2Lip
from lipstream.models.wav2lip_mel import mel_start, melspectrogram
from lipstream.pipeline import engines
from lipstream.pipeline.engines.shared.mel import mel_column, mel_windows
from lipstream.pipeline.faces.stage import FaceStage
from lipstream.pipeline.jobs.sync import run_sync
from lipstream.pipeline.engines import wav2lip as wav2lip_engine
from lipstream.pipeline.engines.base import resolve
from lipstream.pipeline.engines.shared.face_region import face_box
from lipstream.pipeline.engines.wav2lip.config import Wav2LipConfig
from lipstream.pipeline.engines.wav2lip.stage import Wav2LipStage
from lipstream.stream.audio import AudioInput
from lipstream.stream.frames import AudioSpan, Frame, Window
from engine_windows import owned, tracked_windows
from media import SAMPLE_AUDIO, SAMPLE_VIDEO, video_frames, write_wav

FRAMES = 40
WINDOW = WindowConfig(size=16, overlap=8)
MANIFEST, _ = load_golden("wav2lip")
EYES = (  # FaceMesh eye contours, image left then right
    (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
    (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466),
)


@pytest.fixture(scope="module")
def network() -> Wav2Lip:
    return fill(Wav2Lip(), MANIFEST["fill"]["mode"], MANIFEST["fill"]["gain"]).eval()


@pytest.fixture(scope="module")
def tracked() -> list[Window]:
    return tracked_windows(FRAMES, WINDOW)


def run(network: nn.Module, inputs: list[Window], config: Wav2LipConfig = Wav2LipConfig()) -> list[Frame]:
    stage = Wav2LipStage(network, config)
    return owned([stage(w) for w in inputs])


def outside(rgb: np.ndarray, crop: tuple[int, int, int, int]) -> np.ndarray:
    keep = np.ones(rgb.shape[:2], bool)
    x0, y0, x1, y1 = crop
    keep[y0:y1, x0:x1] = False
    return rgb[keep]


def assert_same_frame(got: Frame, want: Frame) -> None:
    diff = got.rgb() != want.rgb()
    assert not diff.any(), f"frame {want.index}: {diff.any(axis=2).sum()} pixels changed, first at {np.argwhere(diff)[0]}"


@pytest.fixture(scope="module")
def synced(network, tracked) -> list[Frame]:
    return run(network, tracked)


def test_only_the_lower_face_inside_the_crop_changes(tracked, synced):
    before = owned(tracked)
    assert [f.index for f in synced] == list(range(FRAMES))
    assert all(f.face is not None for f in before), "the sample has a face in every frame"
    changed = 0
    for got, want in zip(synced, before):
        assert got.rgb().shape == want.rgb().shape == (960, 540, 3) and got.rgb().dtype == np.uint8
        assert got.pts == want.pts and got.face is want.face
        crop = want.face.crop
        assert np.array_equal(outside(got.rgb(), crop), outside(want.rgb(), crop)), f"frame {want.index} changed outside its crop"
        diff = np.abs(got.rgb().astype(int) - want.rgb().astype(int)).max(axis=2)
        rows = np.nonzero(diff.any(axis=1))[0]
        if rows.size:
            changed += 1
            marks = want.face.landmarks
            nose, chin = marks[1, 1], marks[152, 1]
            for eye in EYES:  # untouched; the edit sits around the mouth and jaw
                (ex0, ey0), (ex1, ey1) = marks[list(eye), :2].min(axis=0), marks[list(eye), :2].max(axis=0)
                assert not diff[int(ey0) : int(ey1) + 1, int(ex0) : int(ex1) + 1].any(), f"frame {want.index}: edit reaches an eye"
            assert nose - 10 < np.average(np.arange(diff.shape[0]), weights=diff.sum(axis=1)) < chin
    assert changed == FRAMES


def test_frames_without_a_face_or_with_weight_zero_pass_untouched(network, tracked):
    edited = []
    for w in tracked:
        frames = list(w.frames)
        for k in range(w.own_start, w.own_stop):
            if frames[k].index % 3 == 0:
                frames[k] = frames[k].with_face(None)
            elif frames[k].index % 3 == 1:
                frames[k] = frames[k].with_face(replace(frames[k].face, weight=0.0))
        edited.append(w.with_frames(frames))
    for got, want in zip(run(network, edited), owned(edited)):
        if want.index % 3 != 2:
            assert got is want
        else:
            assert got.edited


def test_weight_scales_the_edit(network, tracked):
    half = [w.with_frames([f.with_face(replace(f.face, weight=0.5)) for f in w.frames]) for w in tracked[:1]]
    full = run(network, tracked[:1])
    faded = run(network, half)
    for f, h, src in zip(full, faded, owned(tracked[:1])):
        base = src.rgb().astype(np.float64)
        full_change = np.abs(f.rgb() - base).sum()
        half_change = np.abs(h.rgb() - base).sum()
        assert 0.3 * full_change < half_change < 0.7 * full_change


def test_deterministic_and_independent_of_batching(network, tracked, synced):
    again = run(network, tracked[:2], Wav2LipConfig(batch_size=8))
    single = run(network, tracked[:2], Wav2LipConfig(batch_size=1))
    assert len(again) == len(single) == 16
    for a, b, c in zip(synced, again, single):
        assert_same_frame(b, a)
        assert_same_frame(c, a)


class Recorder(nn.Module):
    """Returns its reference channels as the generated face, and keeps what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        self.calls.append((mel.clone(), face.clone()))
        return face[:, 3:6]


def test_network_inputs_follow_wav2lip_conventions(tracked):
    recorder = Recorder().eval()
    out = run(recorder, tracked[:2], Wav2LipConfig(batch_size=4))
    mels = torch.cat([m for m, _ in recorder.calls])
    faces = torch.cat([f for _, f in recorder.calls])
    assert mels.shape == (16, 1, 80, 16) and faces.shape == (16, 6, 96, 96)
    assert (faces[:, :3, 48:] == 0).all() and (faces[:, :3, :48] == faces[:, 3:, :48]).all()
    assert 0 <= faces.min() and faces.max() <= 1
    # Channels are BGR: a network that hands back its reference reproduces the frame.
    frame = owned(tracked[:2])[5]
    box = face_box(list(tracked[0].frames), tracked[0].own_start + 5, pads=Wav2LipConfig().pads)
    x0, y0, x1, y1 = box
    got, want = out[5].rgb()[y0:y1, x0:x1].astype(int), frame.rgb()[y0:y1, x0:x1].astype(int)
    assert np.abs(got - want).mean() < 3, np.abs(got - want).mean()
    seen = faces[5, 3:].flip(0).permute(1, 2, 0).numpy() * 255  # the reference as RGB
    small = cv2.resize(frame.rgb()[y0:y1, x0:x1], (96, 96), interpolation=cv2.INTER_AREA)
    assert np.abs(seen - small).mean() < 1


def test_mel_windows_start_at_the_frame_time(tracked):
    """The stage's mel for a frame at t is the whole-audio mel from column floor(80 t)."""
    recorder = Recorder().eval()
    run(recorder, tracked)
    mels = torch.cat([m for m, _ in recorder.calls])[:, 0].numpy()
    audio = AudioInput(SAMPLE_AUDIO)
    try:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in audio.chunks(16000)])
    finally:
        audio.close()
    whole = melspectrogram(samples)
    times = [f.time for f in owned(tracked)]
    for t, mel in zip(times, mels):
        start = mel_column(t)
        if start >= 3:  # the first columns see silence before the audio, not a reflection of it
            np.testing.assert_allclose(mel, whole[:, start : start + 16], atol=1e-5, err_msg=f"t={t}")


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(24), Fraction(30), Fraction(50), Fraction(30000, 1001)])
def test_mel_column_is_floor_of_80_t(fps):
    for i in range(2000):
        t = i / fps
        assert mel_column(t) == (80 * t).numerator // (80 * t).denominator
        if fps.denominator == 1:
            assert mel_column(t) == mel_start(i, float(fps))
    assert mel_column(Fraction(7, 10)) == 56 and mel_column(Fraction(349, 1000)) == 27 and mel_column(0.35) == 28
    assert mel_column(Fraction(-1, 80)) == -1 and mel_column(Fraction(-1, 160)) == -1


@pytest.mark.parametrize("offset", [0, 1, 137, 199, 200, 3333, -4321])
def test_mel_windows_do_not_depend_on_where_the_span_starts(offset):
    rng = np.random.default_rng(5)
    audio = (rng.standard_normal(48000) * 0.1 * np.sin(np.linspace(0, 40, 48000)) ** 2).astype(np.float32)
    whole = melspectrogram(audio)
    start = 8000 + offset  # the span covers [start, start + 16000) of the audio, zeros outside it
    padded = np.zeros(16000, np.float32)
    lo, hi = max(start, 0), min(start + 16000, len(audio))
    padded[lo - start : hi - start] = audio[lo:hi]
    span = AudioSpan(Fraction(start, 16000), 16000, padded)
    times = [Fraction(start + 4000, 16000) + Fraction(k, 25) for k in range(8)]
    got = mel_windows(span, times)
    for t, window in zip(times, got):
        c = mel_column(t)
        np.testing.assert_allclose(window, whole[:, c : c + 16], atol=1e-5, err_msg=f"offset {offset}, t={t}")


def test_box_is_padded_below_the_chin_and_inside_the_crop(tracked):
    w = tracked[1]
    frames = list(w.frames)
    for k in range(w.own_start, w.own_stop):
        face = frames[k].face
        x0, y0, x1, y1 = face_box(frames, k, pads=Wav2LipConfig().pads, smooth=1)
        bx0, by0, bx1, by1 = face.box
        assert abs(x0 - bx0) <= 1 and abs(x1 - bx1) <= 1 and abs(y0 - by0) <= 1
        assert abs((y1 - by1) - 0.05 * (by1 - by0)) <= 1
        cx0, cy0, cx1, cy1 = face.crop
        assert cx0 <= x0 < x1 <= cx1 and cy0 <= y0 < y1 <= cy1


def write_checkpoint(network: nn.Module, folder) -> None:
    """The official layout: a dict whose 'state_dict' has DataParallel's 'module.' prefix."""
    state = {"module." + k: v for k, v in network.state_dict().items()}
    torch.save({"state_dict": state, "global_step": 0, "global_epoch": 0}, folder / "wav2lip.pth")


def test_factory_loads_the_checkpoint_from_weights(network, tmp_path, monkeypatch):
    monkeypatch.delenv("LIPSTREAM_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(WeightsError):
        resolve(wav2lip_engine.ENGINE, (tmp_path,))
    write_checkpoint(network, tmp_path)
    config = SyncConfig(engine="wav2lip", weights=(tmp_path,), precision="float32")  # the file's own values
    face, stage = wav2lip_engine.build(config, resolve(wav2lip_engine.ENGINE, config.weights))
    assert isinstance(face, FaceStage) and isinstance(stage, Wav2LipStage) and stage.device == "cpu"
    loaded = stage.network.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in network.state_dict().items())


def test_precision_follows_the_device_and_the_choice(network, tmp_path, monkeypatch):
    """auto: bfloat16 autocast on a CPU that has it natively (else float32), float16 weights on CUDA;
    float32: neither."""
    monkeypatch.delenv("LIPSTREAM_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert inference_dtype("wav2lip", "cuda:0") == torch.float16
    assert inference_dtype("wav2lip", "cuda:0", "float32") == torch.float32
    assert inference_dtype("wav2lip", "cpu") == torch.float32
    assert cpu_autocast("wav2lip", "cuda:0") is None and cpu_autocast("wav2lip", "cpu", "float32") is None
    assert cpu_autocast("syncnet_color", "cpu") is None  # not measured for it
    write_checkpoint(network, tmp_path)
    monkeypatch.setattr(_loading, "_native_bf16", lambda: True)
    for precision, autocast in (("auto", torch.bfloat16), ("float32", None)):
        config = SyncConfig(engine="wav2lip", weights=(tmp_path,), precision=precision)
        _, stage = wav2lip_engine.build(config, resolve(wav2lip_engine.ENGINE, config.weights))
        assert stage._autocast == autocast and stage._dtype == torch.float32
        convolutions = {m.weight.dtype for m in stage.network.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))}
        norms = {m.weight.dtype for m in stage.network.modules() if isinstance(m, nn.BatchNorm2d)}
        assert convolutions == {autocast or torch.float32} and norms == {torch.float32}
    monkeypatch.setattr(_loading, "_native_bf16", lambda: False)
    _, stage = wav2lip_engine.build(config, resolve(wav2lip_engine.ENGINE, config.weights))
    assert stage._autocast is None


def test_bfloat16_frames_stay_within_two_levels(network, tracked, synced):
    """The measured bound behind `bf16=True` in the registry, on the pasted frames of the sample."""
    stage = Wav2LipStage(network, autocast=torch.bfloat16)
    half = owned([stage(w) for w in tracked[:2]])
    worst = max(int(np.abs(h.rgb().astype(int) - f.rgb().astype(int)).max()) for h, f in zip(half, synced))
    changed = any((h.rgb() != f.rgb()).any() for h, f in zip(half, synced))
    assert changed and worst <= 2, worst


def test_convolutions_stored_in_bfloat16_give_the_same_frames_from_half_the_memory(network, tracked, tmp_path, monkeypatch):
    """What autocast would cast at every call is cast once at load: same arithmetic, the weights' bytes halved."""
    monkeypatch.delenv("LIPSTREAM_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(_loading, "_native_bf16", lambda: True)
    write_checkpoint(network, tmp_path)
    config = SyncConfig(engine="wav2lip", weights=(tmp_path,))
    _, stored = wav2lip_engine.build(config, resolve(wav2lip_engine.ENGINE, config.weights))
    cast_each_call = Wav2LipStage(network, autocast=torch.bfloat16)
    for window in tracked[:2]:
        for a, b in zip(owned([stored(window)]), owned([cast_each_call(window)])):
            assert np.array_equal(a.rgb(), b.rgb())

    def size(module):
        return sum(t.nbytes for t in (*module.parameters(), *module.buffers()))

    assert size(stored.network) < 0.52 * size(network)


@pytest.mark.slow
def test_run_sync_end_to_end(network, tmp_path, monkeypatch):
    monkeypatch.delenv("LIPSTREAM_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert engines.ENGINES["wav2lip"].context == Wav2LipConfig().min_overlap
    write_checkpoint(network, tmp_path)
    audio = AudioInput(SAMPLE_AUDIO)
    try:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in audio.chunks(16000)])
    finally:
        audio.close()
    cut = write_wav(tmp_path / "one_second.wav", samples[:16000])
    events = []
    out = tmp_path / "out.mp4"
    result = asyncio.run(run_sync(SAMPLE_VIDEO, cut, out, SyncConfig(engine="wav2lip", weights=(tmp_path,)), on_progress=events.append))
    assert result.frames == 25
    assert [s.name for s in events[-1].stages] == ["face", "wav2lip"]
    got = video_frames(out)
    want = video_frames(SAMPLE_VIDEO)[:25]
    assert len(got) == 25 and got[0][1].shape == (960, 540, 3)
    # Encoding noise everywhere, the edit only around the mouth (the sample's face sits near x 250-350, y 320-445).
    diffs = [np.abs(g.astype(int) - w.astype(int)).mean(axis=2) for (_, g), (_, w) in zip(got, want)]
    mouth = np.mean([d[390:445, 260:345].mean() for d in diffs])
    rest = np.mean([np.concatenate([d[:300].ravel(), d[500:].ravel()]).mean() for d in diffs])
    assert rest < 2.5 and mouth > 5 * rest, (mouth, rest)
