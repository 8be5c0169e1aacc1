"""`sync --target X,Y[@SECONDS]` re-animates the chosen person of a two-person clip and no one else."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from clips import encode_rgb
from face_scenes import canvas, face_patch, paste
from media import SAMPLE_AUDIO, run_cli, video_frames, write_wav

FPS = 25
FRAMES = 50
WOMAN = (180, 180, 170)  # centre x, y and side of the pasted patch: the larger face
ASTRONAUT = (470, 180, 130)  # appears at 1 s


def box(centre_x: int, centre_y: int, side: int) -> tuple[slice, slice]:
    half = side // 2
    return slice(centre_y - half, centre_y + half), slice(centre_x - half, centre_x + half)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("two")
    video = folder / "two.mp4"
    woman, astronaut = face_patch("woman"), face_patch("astronaut")
    def pictures():  # type: ignore[no-untyped-def]
        for i in range(FRAMES):
            img = canvas()
            paste(img, woman, WOMAN[:2], WOMAN[2])
            if i >= FPS:
                paste(img, astronaut, ASTRONAUT[:2], ASTRONAUT[2])
            yield img

    encode_rgb(video, pictures(), FPS, {"crf": "12"})
    with av.open(str(SAMPLE_AUDIO)) as source:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in source.decode(audio=0)])
    return video, write_wav(folder / "speech.wav", pcm[: 2 * 16000].astype(np.float32) / 32768.0)


def synced(clip: tuple[Path, Path], out: Path, *args: str) -> list[np.ndarray]:
    video, audio = clip
    result = run_cli(["sync", video, audio, "-o", out, "--crf", "0", "--json", *args])
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert json.loads(result.stderr.decode().splitlines()[-1])["event"] == "done"
    return [rgb for _, rgb in video_frames(out)]


def changed(frames: list[np.ndarray], reference: list[np.ndarray], region: tuple[slice, slice]) -> list[bool]:
    return [bool(np.any(f[region] != r[region])) for f, r in zip(frames, reference)]


@pytest.mark.slow
def test_the_chosen_speaker_is_reanimated_and_the_other_left_alone(clip, tmp_path):
    reference = synced(clip, tmp_path / "ref.mp4", "--engine", "passthrough")
    largest = synced(clip, tmp_path / "largest.mp4", "--engine", "warp")
    chosen = synced(clip, tmp_path / "chosen.mp4", "--engine", "warp", "--target", f"{ASTRONAUT[0]},{ASTRONAUT[1]}@1.0")
    assert len(reference) == len(largest) == len(chosen) == FRAMES
    woman, astronaut = box(*WOMAN), box(*ASTRONAUT)

    # without --target the larger face speaks; the astronaut never changes
    assert sum(changed(largest, reference, woman)) >= FRAMES // 2
    assert not any(changed(largest, reference, astronaut))

    # with it, the woman never changes, nothing changes before 1 s, and the astronaut speaks after
    assert not any(changed(chosen, reference, woman))
    assert not any(np.any(c != r) for c, r in zip(chosen[:FPS], reference[:FPS]))
    assert sum(changed(chosen[FPS:], reference[FPS:], astronaut)) >= FPS // 2


def test_a_malformed_target_is_a_usage_error(clip, tmp_path):
    video, audio = clip
    for bad in ("470", "470,180,3", "a,b", "470,180@-1", "470,180@x"):
        result = run_cli(["sync", video, audio, "-o", tmp_path / "x.mp4", "--target", bad])
        lines = result.stderr.decode().strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and "X,Y or X,Y@SECONDS" in lines[0], result.stderr
