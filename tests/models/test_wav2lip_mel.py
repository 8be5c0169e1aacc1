"""Wav2Lip mel front-end at parity with the golden reference (tests/golden/wav2lip_mel)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest

_TESTS = str(Path(__file__).resolve().parents[1])  # holds golden_fill
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
from golden_fill import assert_close, load_golden  # noqa: E402

from lipstream.models import wav2lip_mel  # noqa: E402
from lipstream.models.wav2lip_mel import (  # noqa: E402
    SILENCE,
    chunk_starts,
    mel_basis,
    mel_chunks,
    mel_window,
    melspectrogram,
)

MANIFEST, GOLDEN = load_golden("wav2lip_mel")
TOL = float(MANIFEST["tolerance"])
FPS = 25


@pytest.fixture(scope="module")
def mel() -> np.ndarray:
    return melspectrogram(GOLDEN["wav"])


def test_signal_follows_manifest_rule() -> None:
    t = np.arange(16000) / 16000
    rng = np.random.default_rng(1234)
    x = (
        0.5 * np.sin(2 * np.pi * 220 * t)
        + 0.25 * np.sin(2 * np.pi * 1250 * t + 0.3)
        + 0.1 * np.sin(2 * np.pi * 3100 * t)
        + 0.05 * rng.standard_normal(16000)
    )
    x[12800:] = 0
    np.testing.assert_array_equal(x.astype(np.float32), GOLDEN["wav"])


def test_mel_basis_matches_librosa_slaney() -> None:
    assert_close("mel_basis", mel_basis(), GOLDEN["mel_basis"], 1e-7)


def test_melspectrogram_parity(mel: np.ndarray) -> None:
    assert mel.dtype == np.float32
    assert_close("mel_reflect", mel, GOLDEN["mel_reflect"], TOL)


def test_padding_is_reflect_not_zero(mel: np.ndarray) -> None:
    """librosa >= 0.10 zero-pads; only frames 0-1 differ, and we must follow 0.7 (reflect)."""
    constant = GOLDEN["mel_constant"]
    assert_close("mel_constant[:, 2:]", mel[:, 2:], constant[:, 2:], TOL)
    assert np.abs(mel[:, :2] - constant[:, :2]).max() > 100 * TOL


@pytest.mark.parametrize("n", [401, 799, 800, 16000, 16199])
def test_frame_count(n: int) -> None:
    wav = np.random.default_rng(n).uniform(-0.5, 0.5, n).astype(np.float32)
    assert melspectrogram(wav).shape == (80, 1 + n // 200)


def test_silence_is_floor() -> None:
    assert np.all(melspectrogram(np.zeros(3200, dtype=np.float32)) == SILENCE)


def test_chunk_starts_and_chunks(mel: np.ndarray) -> None:
    starts = chunk_starts(mel.shape[1], FPS)
    assert starts == MANIFEST["chunk_starts"] == GOLDEN["chunk_starts"].tolist()
    assert_close("chunks", mel_chunks(mel, FPS), GOLDEN["chunks"], TOL)


def test_mel_window_matches_inference_chunks(mel: np.ndarray) -> None:
    chunks = GOLDEN["chunks"]
    for i, want in enumerate(chunks):
        assert_close(f"window {i}", mel_window(mel, i / FPS), want, TOL)
    # Past the end every window is the right-aligned last one; before 0, the first.
    assert_close("after end", mel_window(mel, 10.0), chunks[-1], TOL)
    assert_close("before 0", mel_window(mel, -0.5), chunks[0], TOL)


def test_mel_window_pads_short_mel_with_silence() -> None:
    short = np.arange(80 * 5, dtype=np.float32).reshape(80, 5)
    window = mel_window(short, 0.0)
    assert window.shape == (80, 16)
    assert np.all(window[:, :11] == SILENCE)
    np.testing.assert_array_equal(window[:, 11:], short)
    assert chunk_starts(5, FPS) == [0]
    assert mel_chunks(short, FPS).shape == (1, 80, 16)


def test_runtime_uses_numpy_only() -> None:
    tree = ast.parse(Path(wav2lip_mel.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "math", "numpy"}
