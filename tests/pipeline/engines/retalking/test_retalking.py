"""The retalking engine on the bundled sample: geometry, D-Net context, pass-through rules, speed, end to end.

Networks are the golden-filled ones (random weights, real cost) or echo
stand-ins that hand back their input, which makes the geometry visible: an
engine whose D-Net returns its source and whose E-Net returns its reference
must give the frame back.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from fractions import Fraction
from itertools import islice

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lipstream.config import SyncConfig, WindowConfig
from lipstream.errors import WeightsError
from lipstream.models._face3d_coeffs import WINDOW_RADIUS, face3d_alignment
from lipstream.models._face3d_coeffs import five_points
from lipstream.pipeline import engines
from lipstream.pipeline.faces.stage import FaceStage
from lipstream.pipeline.jobs.sync import run_sync
from lipstream.pipeline.engines.retalking.compose import ComposeStage
from lipstream.pipeline.engines import retalking as retalking_engine
from lipstream.pipeline.engines.base import resolve
from lipstream.pipeline.engines.retalking.build import load_face3d_data, model_stages, retalking_stages
from lipstream.pipeline.engines.retalking.config import MIN_OVERLAP, RetalkingConfig
from lipstream.pipeline.engines.retalking.generate import GenerateStage, enet_rows
from lipstream.pipeline.engines.retalking.geometry import alignment_params, apply, invert
from lipstream.pipeline.engines.shared.face_region import mesh_five_points
from lipstream.pipeline.engines.retalking.stabilise import StabiliseStage
from lipstream.stream import sink as sink_module
from lipstream.stream.audio import AudioInput
from lipstream.stream.frames import Frame, Window
from lipstream.stream.source import VideoSource
from lipstream.stream.timeline import output_frames
from engine_windows import owned, tracked_windows
from media import SAMPLE_AUDIO, SAMPLE_VIDEO, video_frames, write_wav
from retalking_fixtures import bfm_landmarks, expression_templates, filled_networks, write_bfm

FRAMES = 40
WINDOW = WindowConfig(size=MIN_OVERLAP + 8, overlap=MIN_OVERLAP)  # what build_stages makes of the defaults
TEMPLATE5 = five_points(bfm_landmarks())
EXPRESSION = expression_templates()["expression_center"].reshape(-1)


@pytest.fixture(scope="module")
def networks() -> tuple[nn.Module, nn.Module, nn.Module]:
    return filled_networks()


@pytest.fixture(scope="module")
def tracked() -> list[Window]:
    return tracked_windows(FRAMES, WINDOW)


def run(stages: list, inputs: list[Window]) -> list[Frame]:
    out = []
    for window in inputs:
        for stage in stages:
            window = stage(window)
        out.append(window)
    return owned(out)


class _Stub(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # device and dtype for the stage


class EchoDNet(_Stub):
    """Returns its source face; records the driving windows."""

    def __init__(self) -> None:
        super().__init__()
        self.driving: list[torch.Tensor] = []

    def forward(self, image: torch.Tensor, driving: torch.Tensor) -> dict[str, torch.Tensor]:
        self.driving.append(driving.clone())
        return {"fake_image": image}


class CountingFace3d(_Stub):
    """Gives the n-th face it sees the coefficients n, n, ..., so columns can be traced to frames."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        values = torch.arange(self.seen, self.seen + len(image), dtype=torch.float32)
        self.seen += len(image)
        return values[:, None].expand(-1, 257).clone()


class EchoLNet(_Stub):
    def forward(self, audio: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        return face[:, 3:6]


class _Up(nn.Module):
    """Stands for a StyleConv: doubles the size (bilinear) or passes through."""

    def __init__(self, upsample: bool) -> None:
        super().__init__()
        self.upsample = upsample

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise=None) -> torch.Tensor:  # type: ignore[no-untyped-def]
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) if self.upsample else x


class _ToRGB(nn.Module):
    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return x


class EchoENet(_Stub):
    """E-Net's layout with every layer an echo: the output is the reference (as L-Net saw it, 96 px) upsampled."""

    def __init__(self) -> None:
        super().__init__()
        self.low_res = EchoLNet()
        self.style_convs = nn.ModuleList([_Up(True), _Up(False), _Up(True), _Up(False)])
        self.to_rgbs = nn.ModuleList([_ToRGB(), _ToRGB()])

    def style_code(self, reference: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(reference), 512)


def echo_stages(fast: bool = False) -> list:
    every = RetalkingConfig("fast" if fast else "balanced").stabilise_every
    return [
        StabiliseStage(CountingFace3d().eval(), EchoDNet().eval(), TEMPLATE5, EXPRESSION, every=every),
        GenerateStage(EchoENet().eval(), full=not fast),
        ComposeStage(),
    ]


def filled_stages(networks, quality: str) -> list:
    return model_stages(*networks, TEMPLATE5, EXPRESSION, RetalkingConfig(quality))  # type: ignore[arg-type]


def outside(rgb: np.ndarray, crop: tuple[int, int, int, int]) -> np.ndarray:
    keep = np.ones(rgb.shape[:2], bool)
    x0, y0, x1, y1 = crop
    keep[y0:y1, x0:x1] = False
    return rgb[keep]


# ----------------------------------------------------------------- geometry


def test_facemesh_five_points_are_the_templates_points(tracked):
    frame = tracked[0].owned[0]
    left_eye, right_eye, nose, mouth_left, mouth_right = mesh_five_points(frame.face.landmarks)
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < nose[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_alignment_matches_the_68_point_original():
    """Five points placed where `five_points` of 68 reads them give the original's numbers."""
    rng = np.random.default_rng(3)
    points5 = np.array([[96.0, 110.0], [160.0, 108.0], [128.0, 140.0], [100.0, 175.0], [156.0, 174.0]]) + rng.normal(0, 2, (5, 2))
    lm68 = np.zeros((68, 2))
    for slots, point in zip(([36, 39], [42, 45], [30], [48], [54]), points5):
        lm68[slots] = point
    want = face3d_alignment(lm68, 256, 256, TEMPLATE5)
    params, matrix = alignment_params(points5, 256, TEMPLATE5)
    np.testing.assert_allclose(params, want.params, rtol=1e-6)
    # aligned pixel (0, 0) is resized pixel (left, up): resized x' = (x + 0.5) * w / 256 - 0.5
    (x, y), = apply(invert(matrix), np.zeros((1, 2)))
    w, h = want.resized
    assert abs((x + 0.5) * w / 256 - 0.5 - want.box[0]) < 1e-6 and abs((y + 0.5) * h / 256 - 0.5 - want.box[1]) < 1e-6


@pytest.mark.parametrize("fast", [False, True])
def test_echo_networks_give_the_frame_back(tracked, fast):
    """D-Net returning its source and E-Net its reference: the output is the input up to resampling."""
    before = owned(tracked)
    after = run(echo_stages(fast), tracked)
    assert [f.index for f in after] == list(range(FRAMES)) and all(f.edited for f in after)
    errors = []
    for got, want in zip(after, before):
        x0, y0, x1, y1 = crop = want.face.crop
        assert np.array_equal(outside(got.rgb(), crop), outside(want.rgb(), crop))
        errors.append(np.abs(got.rgb()[y0:y1, x0:x1].astype(int) - want.rgb()[y0:y1, x0:x1].astype(int)).mean())
    # fast: a key frame's stabilised face serves its neighbours, so their mouths differ (measured 0.15 / 0.32)
    assert np.mean(errors) < (0.6 if fast else 0.25), np.mean(errors)
    window = tracked[0]
    for stage in echo_stages(fast):
        window = stage(window)
    assert type(window) is Window, "the compose stage drops the per-window images before the sink"


def test_dnet_reads_13_frames_before_and_12_after_across_windows(tracked):
    face3d, dnet = CountingFace3d().eval(), EchoDNet().eval()
    stage = StabiliseStage(face3d, dnet, TEMPLATE5, EXPRESSION)
    values: dict[int, float] = {}
    for window in tracked:
        stage(window)
        values.update({i: float(row[100]) for i, row in stage._coeffs.items()})
    assert face3d.seen == FRAMES, "coefficients are computed once per frame, not once per window"
    assert len(stage._coeffs) <= WINDOW.size, "the stage keeps coefficients only while a window can read them"
    driving = torch.cat(dnet.driving).numpy()
    assert driving.shape == (FRAMES, 73, 26)
    for idx, window in enumerate(driving):
        np.testing.assert_allclose(window[:64], np.repeat(EXPRESSION[:, None], 26, axis=1), rtol=1e-6)
        want = [values[min(max(i, 0), FRAMES - 1)] for i in range(idx - WINDOW_RADIUS, idx + WINDOW_RADIUS)]
        np.testing.assert_array_equal(window[64], want, err_msg=f"frame {idx}")  # angle row = coefficient 224


def test_frames_without_a_usable_face_pass_untouched(tracked):
    edited = []
    for w in tracked:
        frames = list(w.frames)
        for k in range(w.own_start, w.own_stop):
            face = frames[k].face
            if frames[k].index % 4 == 0:
                frames[k] = frames[k].with_face(None)
            elif frames[k].index % 4 == 1:
                frames[k] = frames[k].with_face(replace(face, weight=0.0))
            elif frames[k].index % 4 == 2:
                frames[k] = frames[k].with_face(replace(face, small=True))
        edited.append(w.with_frames(frames))
    for got, want in zip(run(echo_stages(), edited), owned(edited)):
        assert (got is want) == (want.index % 4 != 3), want.index


# ----------------------------------------------------------------- real cost


def test_enet_rows_equal_the_full_pass_below_the_first_row(networks):
    enet = networks[2]
    generator = torch.Generator().manual_seed(7)
    face = torch.rand((1, 6, 384, 384), generator=generator)
    face[:, :3, 192:] = 0
    mel = torch.rand((1, 1, 80, 16), generator=generator) * 8 - 4
    with torch.inference_mode():
        style = enet.style_code(face[:, 3:])
        full, _ = enet(mel, face, style=style)
        band = enet_rows(enet, mel, face, style, 150)
    assert band.shape == (1, 3, 234, 384)
    torch.testing.assert_close(band, full[:, :, 150:], rtol=0, atol=1e-5)


def test_fast_quality_is_faster_than_balanced(networks, tracked):
    """CPU seconds on one thread (other jobs on the machine inflate wall time, and idle OpenMP threads spin)."""
    first = tracked[1]
    window = Window(first.index, first.frames[first.own_start : first.own_start + 2], 0, 2, first.audio)
    seconds = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for quality in ("balanced", "fast"):
            stages = filled_stages(networks, quality)
            start = time.process_time()
            run(stages, [window])
            seconds[quality] = time.process_time() - start
    finally:
        torch.set_num_threads(threads)
    # measured: balanced 2 D-Net + 2 E-Net, fast 1 D-Net + 2 L-Net at 96 -> about 2.8x less (3.5x on 4 frames)
    assert seconds["fast"] < 0.5 * seconds["balanced"], seconds


@pytest.mark.slow
def test_run_sync_end_to_end(networks, tmp_path, monkeypatch):
    """8 frames through the real job: decodes, timing, and nothing changes outside the crops."""
    count = 8
    stages = filled_stages(networks, "fast")
    monkeypatch.setitem(
        engines.ENGINES,
        "retalking-test",
        engines.Engine("retalking-test", "test", lambda c, found: [FaceStage(c.face, c.window), *stages], context=MIN_OVERLAP),
    )
    handed: list[Frame] = []
    original_write = sink_module.Sink.write

    def record(self, frames):  # type: ignore[no-untyped-def]
        handed.extend(frames)
        return original_write(self, frames)

    monkeypatch.setattr(sink_module.Sink, "write", record)
    audio = AudioInput(SAMPLE_AUDIO)
    try:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in audio.chunks(16000)])
    finally:
        audio.close()
    cut = write_wav(tmp_path / "cut.wav", samples[: count * 640])
    out = tmp_path / "out.mp4"
    events = []
    result = asyncio.run(run_sync(SAMPLE_VIDEO, cut, out, SyncConfig(engine="retalking-test"), on_progress=events.append))
    assert result.frames == count
    assert [s.name for s in events[-1].stages] == ["face", "stabilise", "generate", "compose"]
    got = video_frames(out)
    assert [t for t, _ in got] == [t for t, _ in video_frames(SAMPLE_VIDEO)[:count]] and got[0][1].shape == (960, 540, 3)
    assert [f.index for f in handed] == list(range(count)) and all(f.edited for f in handed)
    with VideoSource(SAMPLE_VIDEO) as source:  # the pixels the job decoded, through the same converter
        decoded = [f.rgb() for f in islice(output_frames(source, "video", Fraction(0)), count)]
    for frame, want in zip(handed, decoded):
        crop = frame.face.crop
        assert np.array_equal(outside(frame.rgb(), crop), outside(want, crop)), f"frame {frame.index} changed outside its crop"
        assert not np.array_equal(frame.rgb(), want)


# ----------------------------------------------------------------- weights


def test_missing_bfm_data_is_one_error_naming_the_files(tmp_path, monkeypatch):
    pytest.importorskip("scipy", reason="the BFM data are MATLAB files")
    monkeypatch.delenv("LIPSTREAM_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(WeightsError) as raised:
        resolve(retalking_engine.ENGINE, (tmp_path,))
    files = ("BFM/similarity_Lm3D_all.mat", "expression.mat", "LNet.pth", "ENet.pth", "DNet.pt", "face3d_pretrain_epoch_20.pth")
    assert all(name in str(raised.value) for name in files), raised.value
    write_bfm(tmp_path, landmarks=False)
    with pytest.raises(WeightsError, match="BFM/similarity_Lm3D_all.mat") as raised:
        load_face3d_data((tmp_path,))
    assert "expression.mat" not in str(raised.value)
    write_bfm(tmp_path)
    template5, expression = load_face3d_data((tmp_path,), "smile")
    np.testing.assert_allclose(template5, TEMPLATE5)
    np.testing.assert_allclose(expression, expression_templates()["expression_mouth"].reshape(-1), rtol=1e-6)


def test_factory_builds_the_stages_from_the_registry(networks, tmp_path, monkeypatch):
    from lipstream.models import _loading

    pytest.importorskip("scipy", reason="the BFM data are MATLAB files")
    monkeypatch.delenv("LIPSTREAM_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write_bfm(tmp_path)
    for name in ("LNet.pth", "ENet.pth", "DNet.pt", "face3d_pretrain_epoch_20.pth"):
        (tmp_path / name).write_bytes(b"present")  # presence is all the factory checks before loading
    loaded = dict(zip(("face3d_recon", "dnet", "enet"), networks))
    loaded["gpen512"] = nn.Conv2d(3, 3, 1).eval()  # best: the references' restorer
    calls = []

    def load_model(name, *, weights_dirs=(), device="cpu", dtype=torch.float32):  # type: ignore[no-untyped-def]
        calls.append((name, tuple(weights_dirs), device))
        return loaded[name]

    monkeypatch.setattr(_loading, "load_model", load_model)
    config = SyncConfig(weights=(tmp_path,))
    found = resolve(retalking_engine.ENGINE, config.weights)
    face, stabilise, generate, compose = retalking_stages(config, found, RetalkingConfig("fast"))
    assert isinstance(face, FaceStage) and isinstance(compose, ComposeStage) and compose.device is None
    assert stabilise.device == generate.device == "cpu" and stabilise.every == 4 and not generate.full
    assert stabilise.dnet_batch == 1 and stabilise.batch_size == generate.batch_size == 4
    assert sorted(c[0] for c in calls) == ["dnet", "enet", "face3d_recon"] and all(c[1] == (tmp_path,) for c in calls)
    _, stabilise, refine, generate, _ = retalking_stages(config, found, RetalkingConfig("best"))
    assert stabilise.every == 1 and generate.full and refine.name == "refine"
    assert refine.gpen is loaded["gpen512"] and not hasattr(refine, "parser")
