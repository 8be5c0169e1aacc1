"""`--detector` / `--landmarks` / `score --protocol syncnet` as users run them, with official-layout checkpoints.

The networks hold the golden references' deterministic fills (their parity
is tested in tests/models), so these runs prove the plumbing: options reach
the face stage, the right files are found and loaded, and a missing file is
one line naming it. With random weights RetinaFace finds no real face and
FAN disagrees with FaceMesh, so the embedded models' results must stand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clips import sample_clip, sample_speech
from golden_fill import filled_state_dict, load_golden
from media import SAMPLE_AUDIO, SAMPLE_VIDEO, run_cli


def _write(folder: Path, golden: str, module: torch.nn.Module, filename: str) -> None:
    manifest, _ = load_golden(golden)
    torch.save(filled_state_dict(module, manifest["fill"]["mode"], manifest["fill"]["gain"]), folder / filename)


FRAMES = 6


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, Path]:
    """The sample's first 6 frames and 0.24 s of its speech: FAN costs about a second a frame here."""
    folder = tmp_path_factory.mktemp("short")
    return sample_clip(folder / "clip.mp4", FRAMES), sample_speech(folder / "speech.wav", FRAMES / 25)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    from lipstream.models.fan import FAN
    from lipstream.models.retinaface import RetinaFace

    folder = tmp_path_factory.mktemp("face-weights")
    _write(folder, "retinaface_mnet", RetinaFace("mobilenet0.25"), "detection_mobilenet0.25_Final.pth")
    _write(folder, "fan2d", FAN(), "2DFAN4-11f355bf06.pth.tar")
    return folder


def faces(video: Path, *args: object) -> tuple[list[dict], dict, str]:
    result = run_cli(["faces", video, "--json", *args])
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr[-2000:]
    events = [json.loads(line) for line in stderr.splitlines()]
    return [json.loads(line) for line in result.stdout.decode().splitlines()], events[-1], stderr


@pytest.mark.slow
def test_official_face_models_plug_in_and_the_embedded_ones_stand(clip, weights):
    video = clip[0]
    with_points, _, _ = faces(video, "--points")
    found, done, _ = faces(video, "--detector", "retinaface-mnet", "--weights", weights)
    assert done["event"] == "done" and len(found) == len(with_points) == FRAMES
    # filled RetinaFace finds nothing real, so no target; BlazeFace finds one on every frame
    assert sum(r["present"] for r in with_points) == FRAMES and sum(r["present"] for r in found) == 0
    tracked, done, _ = faces(video, "--landmarks", "fan", "--weights", weights, "--points")
    assert sum(r["present"] for r in tracked) == FRAMES
    # FAN with random weights disagrees with FaceMesh everywhere: the mesh must stay FaceMesh's own
    assert [r["landmarks"] for r in tracked] == [r["landmarks"] for r in with_points]


def test_a_missing_face_checkpoint_is_one_line(tmp_path):
    for args, name in (
        (["faces", SAMPLE_VIDEO, "--detector", "s3fd"], "s3fd-619a316812.pth"),
        (["sync", SAMPLE_VIDEO, SAMPLE_AUDIO, "-o", tmp_path / "o.mp4", "--landmarks", "fan"], "2DFAN4-11f355bf06.pth.tar"),
        (["score", SAMPLE_VIDEO, SAMPLE_AUDIO, "--protocol", "syncnet"], "s3fd-619a316812.pth"),
    ):
        result = run_cli([*args, "--weights", tmp_path])
        lines = result.stderr.decode().strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and name in lines[0], result.stderr
        assert "lipstream weights fetch" in lines[0]
    assert not (tmp_path / "o.mp4").exists()
    line = run_cli(["score", SAMPLE_VIDEO, SAMPLE_AUDIO, "--protocol", "syncnet", "--weights", tmp_path]).stderr.decode()
    assert "lipsync_expert.pth" in line and "s3fd-619a316812.pth" in line, "every missing file in the one line"


@pytest.mark.slow
def test_sync_reports_the_face_models_it_loaded(clip, weights, tmp_path):
    out = tmp_path / "out.mp4"
    result = run_cli(["sync", *clip, "-o", out, "--engine", "faces", "--landmarks", "fan", "--weights", weights, "--json"])
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    done = json.loads(result.stderr.decode().splitlines()[-1])
    assert done["checkpoints"] == {"fan2d": [str(weights / "2DFAN4-11f355bf06.pth.tar")]}
