"""Every engine as users run it: the installed CLI, every quality, weights from every place they can come from.

A 2 s clip of the sample (4 fps, so the networks' real per-frame cost stays
affordable on two cores) goes through `python -m lipstream sync` with
checkpoints in the official layouts (deterministic fills) found through
`--weights DIR`, `$LIPSTREAM_WEIGHTS` and the user cache. Outputs are coded
losslessly (`--crf 0`) so that every pixel outside the tracked face crop
can be compared exactly with a passthrough run: engines may edit inside the
crop and nowhere else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from clips import sample_clip, sample_speech
from media import audio_samples, video_frames
from official_weights import write_enhancers, write_retalking, write_wav2lip

FPS = 4
FRAMES = 8  # 2 s
RETALKING = ("LNet.pth", "ENet.pth", "DNet.pt", "face3d_pretrain_epoch_20.pth", "BFM/similarity_Lm3D_all.mat", "expression.mat")
ENHANCERS = ("GPEN-BFR-512.pth", "ParseNet-latest.pth", "GFPGANv1.4.pth")
SHORT = 0.5  # seconds of speech for the runs whose networks cost seconds a frame (2 frames)
SHORTEST = 0.25  # one frame, for the runs that add GPEN and ParseNet at 512 (10-20 s a frame here)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> tuple[Path, Path]:
    """(video, audio): every 6th frame of the sample at 4 fps (2 s), and 2 s of its speech (and a short one)."""
    folder = tmp_path_factory.mktemp("clip")
    sample_speech(folder / "short.wav", SHORT)
    sample_speech(folder / "shortest.wav", SHORTEST)
    return sample_clip(folder / "clip.mp4", FRAMES, every=6, fps=FPS), sample_speech(folder / "speech.wav", 2.0)


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, Path]:
    """Three weight folders: 'flag' has both Wav2Lip files, 'env' only wav2lip.pth, 'cache' only wav2lip_gan.pth; all retalking."""
    root = tmp_path_factory.mktemp("weights")
    shared = write_enhancers(write_retalking(root / "retalking"))
    flag, env, cache = root / "flag", root / "env", root / "xdg" / "lipstream"
    for folder in (flag, env, cache):
        for name in RETALKING + ENHANCERS:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            os.link(shared / name, folder / name)
    plain = write_wav2lip(root / "w2l", "wav2lip.pth")
    gan = write_wav2lip(root / "w2l", "wav2lip_gan.pth")
    for folder, files in ((flag, (plain, gan)), (env, (plain,)), (cache, (gan,))):
        for f in files:
            os.link(f, folder / f.name)
    return {"flag": flag, "env": env, "cache": cache, "xdg": root / "xdg", "empty": root / "empty", "home": root / "home"}


def lipstream(args: list[object], places: dict[str, Path], source: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the CLI with weights coming only from `source` ('flag', 'env', 'cache' or None)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LIPSTREAM_WEIGHTS", "XDG_CACHE_HOME")}
    env["HOME"] = str(places["home"])
    env["XDG_CACHE_HOME"] = str(places["xdg"] if source == "cache" else places["empty"])
    extra: list[object] = []
    if source == "env":
        env["LIPSTREAM_WEIGHTS"] = str(places["env"])
    elif source == "flag":
        extra = ["--weights", places["flag"]]
    return subprocess.run(
        [sys.executable, "-m", "lipstream", *map(str, args), *map(str, extra)],
        capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
    )


def sync(media, places, out: Path, engine: str, quality: str = "balanced", source: str | None = None, *extra: str, seconds: float = 2.0) -> dict:
    video, audio = media
    audio = audio.with_name({2.0: "speech.wav", SHORT: "short.wav", SHORTEST: "shortest.wav"}[seconds])
    args = ["sync", video, audio, "-o", out, "--engine", engine, "--quality", quality, "--crf", "0", "--json", *extra]
    result = lipstream(args, places, source)
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert events and events[-1]["event"] == "done", result.stderr[-2000:]
    return events[-1]


@pytest.fixture(scope="module")
def reference(media, places, tmp_path_factory) -> tuple[list[np.ndarray], list[tuple[int, int, int, int] | None]]:
    """(passthrough frames, the face crop of each frame as `lipstream faces` reports it)."""
    folder = tmp_path_factory.mktemp("reference")
    sync(media, places, folder / "passthrough.mp4", "passthrough")
    frames = [rgb for _, rgb in video_frames(folder / "passthrough.mp4")]
    faces = lipstream(["faces", media[0]], places)
    assert faces.returncode == 0, faces.stderr
    crops = [tuple(r["crop"]) if r["present"] else None for r in map(json.loads, faces.stdout.splitlines())]
    assert len(frames) == len(crops) == FRAMES and all(crops), crops
    return frames, crops


CASES = [
    # engine, quality, where the weights come from, more options, the checkpoint files the run must report
    ("warp", "fast", None, (), {}),
    ("warp", "balanced", None, (), {}),
    ("warp", "best", None, (), {}),
    ("wav2lip", "fast", "flag", (), {"wav2lip_gan": ["flag/wav2lip_gan.pth"]}),
    ("wav2lip", "balanced", "flag", (), {"wav2lip_gan": ["flag/wav2lip_gan.pth"]}),
    ("wav2lip", "best", "flag", (), {"wav2lip_gan": ["flag/wav2lip_gan.pth"]}),
    ("wav2lip", "balanced", "env", (), {"wav2lip": ["env/wav2lip.pth"]}),
    ("wav2lip", "balanced", "cache", (), {"wav2lip_gan": ["cache/wav2lip_gan.pth"]}),
    ("wav2lip", "balanced", "flag", ("--enhance", "gpen"), {"gpen512": ["flag/GPEN-BFR-512.pth"], "parsenet": ["flag/ParseNet-latest.pth"]}),
    ("retalking", "fast", "flag", (), {"lnet": ["flag/LNet.pth"], "dnet": ["flag/DNet.pt"]}),
    ("retalking", "balanced", "flag", (), {"enet": ["flag/ENet.pth", "flag/LNet.pth"]}),
    ("retalking", "best", "flag", (), {"gpen512": ["flag/GPEN-BFR-512.pth"], "gfpgan_v1_4": ["flag/GFPGANv1.4.pth"]}),
    ("retalking", "fast", "env", (), {"expression": ["env/expression.mat"]}),
    ("retalking", "fast", "cache", (), {"bfm_lm3d": ["cache/BFM/similarity_Lm3D_all.mat"]}),
]


def _seconds(engine: str, quality: str, source: str | None, extra: tuple[str, ...]) -> float:
    """Runs whose networks cost seconds a frame on this CPU get short speech: 1 frame with a 512 enhancer,
    2 for the other retalking runs but one (the runs that test where weights come from need no more)."""
    if engine == "warp":
        return 2.0
    if quality == "best" or "--enhance" in extra:
        return SHORTEST
    return SHORT if engine == "retalking" and (quality, source) != ("fast", "flag") else 2.0


@pytest.mark.slow
@pytest.mark.parametrize(
    "engine, quality, source, extra, files", CASES, ids=[f"{e}-{q}-{s or 'none'}{''.join(x)}" for e, q, s, x, _ in CASES]
)
def test_engine_runs_from_the_cli(engine, quality, source, extra, files, media, places, reference, tmp_path):
    out = tmp_path / "out.mp4"
    seconds = _seconds(engine, quality, source, extra)
    done = sync(media, places, out, engine, quality, source, *extra, seconds=seconds)
    frames_out = int(FPS * seconds)
    assert done["engine"] == engine
    where = {"flag": places["flag"], "env": places["env"], "cache": places["xdg"] / "lipstream"}
    for name, expected in files.items():
        want = [str(where[f.split("/", 1)[0]] / f.split("/", 1)[1]) for f in expected]
        assert done["checkpoints"][name] == want, done["checkpoints"]
    if engine == "wav2lip":
        assert len({"wav2lip", "wav2lip_gan"} & set(done["checkpoints"])) == 1, "one generator is loaded, not both"

    got = video_frames(out)
    assert [t for t, _ in got] == [Fraction(i, FPS) for i in range(frames_out)]
    assert done["frames"] == frames_out and done["video_duration"] == done["audio_duration"] == seconds
    samples, rate = audio_samples(out)
    assert abs(samples - seconds * rate) <= 1024, (samples, rate)

    frames, crops = reference
    changed = 0
    for k, ((_, rgb), want, crop) in enumerate(zip(got, frames, crops)):
        x0, y0, x1, y1 = crop  # type: ignore[misc]
        inside = np.zeros(rgb.shape[:2], bool)
        inside[max(y0 - 2, 0) : y1 + 2, max(x0 - 2, 0) : x1 + 2] = True  # chroma is shared by 2x2 pixels
        diff = np.abs(rgb.astype(int) - want.astype(int)).max(axis=2)
        assert not diff[~inside].any(), f"frame {k}: {int((diff[~inside] > 0).sum())} pixels changed outside the face crop"
        changed += bool(diff[inside].any())
    assert changed >= max(1, frames_out // 2), f"the {engine} engine edited only {changed} of {frames_out} frames"


def test_auto_takes_the_best_engine_found(places):
    result = lipstream(["weights", "list", "--json"], places, "flag")
    assert result.returncode == 0 and json.loads(result.stdout)["auto"] == "retalking"
    result = lipstream(["weights", "list", "--json"], places, None)
    assert json.loads(result.stdout)["auto"] == "exemplar"


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("lipstream: error: "), result.stderr
    return lines[0]


def test_a_missing_checkpoint_is_one_line_naming_the_file_and_where_to_get_it(media, places, tmp_path):
    video, audio = media
    out = tmp_path / "out.mp4"
    line = one_error(lipstream(["sync", video, audio, "-o", out, "--engine", "wav2lip", "--weights", places["empty"]], places))
    assert "wav2lip_gan.pth or wav2lip.pth" in line and "https://github.com/Rudrabha/Wav2Lip" in line
    assert "weights fetch" not in line, "no direct download: the page, never a fetch that refuses"
    partial = tmp_path / "partial"
    partial.mkdir()
    os.link(places["flag"] / "DNet.pt", partial / "DNet.pt")
    line = one_error(lipstream(["sync", video, audio, "-o", out, "--engine", "retalking", "--weights", partial], places))
    for name in ("LNet.pth", "ENet.pth", "face3d_pretrain_epoch_20.pth", "BFM/similarity_Lm3D_all.mat", "expression.mat"):
        assert name in line, line
    assert "DNet.pt" not in line and "lipstream weights fetch" in line
    line = one_error(lipstream(["sync", video, audio, "-o", out, "--engine", "warp", "--enhance", "gpen"], places))
    assert "--enhance gpen" in line and "wav2lip" in line and "retalking" in line
    os.link(places["env"] / "wav2lip.pth", partial / "wav2lip.pth")
    line = one_error(lipstream(["sync", video, audio, "-o", out, "--engine", "wav2lip", "--enhance", "gfpgan", "--weights", partial], places))
    assert "GFPGANv1.4.pth or GFPGANv1.3.pth" in line and "ParseNet-latest.pth" in line
    assert not out.exists() and not list(tmp_path.glob(".out.mp4.*"))
