"""Audio-visual offset search on sync embeddings (LSE-D / LSE-C style), pure and streaming.

Video window i (5 frames starting at frame i) and audio window j (the mel
window starting at frame j's time) each have an embedding. For every offset
d in -S..S the mean Euclidean distance between video i and audio i + d is
taken over all pairs that exist (unlike SyncNet's evaluation script, which
pads the audio features with zeros at the ends, pairs outside either stream
are left out). Then:

    LSE-D (min_distance) = min over d of the mean distance
    LSE-C (confidence)   = median over d of the mean distance - LSE-D
    offset               = the d of the minimum

Sign: a positive offset means the sound comes late (the audio lags the
lips by that many frames); shifting the audio later by k frames adds k.

`OffsetSearch` takes embeddings one at a time, in increasing index order per
stream, and keeps only the last 2S+1 of each (plus however far one stream
runs ahead of the other), so memory does not grow with the video length.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["OffsetScores", "OffsetSearch", "search_offsets"]


@dataclass(frozen=True)
class OffsetScores:
    """Mean distance per offset and the statistics derived from them."""

    offsets: tuple[int, ...]
    mean_distance: tuple[float | None, ...]  # None: no pair at that offset
    pairs: tuple[int, ...]

    @property
    def valid(self) -> bool:
        return any(n > 0 for n in self.pairs)

    def _values(self) -> np.ndarray:
        values = [m for m in self.mean_distance if m is not None]
        if not values:
            raise ValueError("no pair of audio and video embeddings at any offset")
        return np.asarray(values, dtype=np.float64)

    @property
    def best_offset(self) -> int:
        """The offset of the smallest mean distance (the most negative one on ties)."""
        self._values()  # raises when there is no pair at all
        best = min((m, d) for d, m in zip(self.offsets, self.mean_distance) if m is not None)
        return best[1]

    @property
    def min_distance(self) -> float:
        """LSE-D: the smallest mean distance."""
        return float(self._values().min())

    @property
    def confidence(self) -> float:
        """LSE-C: median mean distance minus the minimum; larger is more certain."""
        values = self._values()
        return float(np.median(values) - values.min())


class OffsetSearch:
    """Streaming accumulator of distance sums per offset.

    Each pair is added once, when the later of its two embeddings arrives.
    Pass ``None`` for an index without an embedding (no face in the window)
    so the other stream's buffer can move on.
    """

    def __init__(self, max_offset: int = 15) -> None:
        if max_offset < 0:
            raise ValueError(f"max_offset must be >= 0, got {max_offset}")
        self.max_offset = max_offset
        size = 2 * max_offset + 1
        self._sums = np.zeros(size, np.float64)
        self._counts = np.zeros(size, np.int64)
        self._video: deque[tuple[int, np.ndarray]] = deque()
        self._audio: deque[tuple[int, np.ndarray]] = deque()
        self._last_video = -1  # highest index seen per stream
        self._last_audio = -1
        self._video_ended = False
        self._audio_ended = False

    def add_video(self, index: int, embedding: np.ndarray | None) -> None:
        """Embedding of the video window starting at frame `index` (None: no face)."""
        if index <= self._last_video:
            raise ValueError(f"video indices must increase: {index} after {self._last_video}")
        self._last_video = index
        if embedding is not None:
            self._pair(index, embedding, self._audio, is_video=True)
            if not self._audio_ended:
                self._video.append((index, np.asarray(embedding, np.float64)))
        self._prune(self._audio, self._last_video)

    def add_audio(self, index: int, embedding: np.ndarray | None) -> None:
        """Embedding of the audio window starting at frame `index`'s time."""
        if index <= self._last_audio:
            raise ValueError(f"audio indices must increase: {index} after {self._last_audio}")
        self._last_audio = index
        if embedding is not None:
            self._pair(index, embedding, self._video, is_video=False)
            if not self._video_ended:
                self._audio.append((index, np.asarray(embedding, np.float64)))
        self._prune(self._video, self._last_audio)

    def end_video(self) -> None:
        """No more video windows: audio embeddings need not be kept any more."""
        self._video_ended = True
        self._audio.clear()

    def end_audio(self) -> None:
        """No more audio windows: video embeddings need not be kept any more."""
        self._audio_ended = True
        self._video.clear()

    def _pair(self, index: int, embedding: np.ndarray, others: deque[tuple[int, np.ndarray]], is_video: bool) -> None:
        near = [(i, e) for i, e in others if abs(i - index) <= self.max_offset]
        if not near:
            return
        stack = np.stack([e for _, e in near])
        distances = np.linalg.norm(stack - np.asarray(embedding, np.float64)[None, :], axis=1)
        for (other, _), distance in zip(near, distances):
            offset = other - index if is_video else index - other  # audio index - video index
            self._sums[offset + self.max_offset] += distance
            self._counts[offset + self.max_offset] += 1

    def _prune(self, buffer: deque[tuple[int, np.ndarray]], other_last: int) -> None:
        # Indices still to come in the other stream are > other_last, so they reach down to other_last + 1 - S.
        while buffer and buffer[0][0] < other_last + 1 - self.max_offset:
            buffer.popleft()

    def result(self) -> OffsetScores:
        offsets = tuple(range(-self.max_offset, self.max_offset + 1))
        means = tuple(float(s / n) if n else None for s, n in zip(self._sums, self._counts))
        return OffsetScores(offsets, means, tuple(int(n) for n in self._counts))


def search_offsets(video: np.ndarray, audio: np.ndarray, max_offset: int = 15) -> OffsetScores:
    """The same statistics from whole arrays: video (N, D) and audio (M, D) embeddings.

    Rows that are all NaN mean "no embedding". Meant for tests and short
    clips; `OffsetSearch` is the streaming form.
    """
    video = np.asarray(video, np.float64)
    audio = np.asarray(audio, np.float64)
    offsets = tuple(range(-max_offset, max_offset + 1))
    means: list[float | None] = []
    pairs: list[int] = []
    for d in offsets:
        lo, hi = max(0, -d), min(len(video), len(audio) - d)
        if hi <= lo:
            means.append(None)
            pairs.append(0)
            continue
        distances = np.linalg.norm(video[lo:hi] - audio[lo + d : hi + d], axis=1)
        distances = distances[~np.isnan(distances)]
        means.append(float(distances.mean()) if distances.size else None)
        pairs.append(int(distances.size))
    return OffsetScores(offsets, tuple(means), tuple(pairs))
