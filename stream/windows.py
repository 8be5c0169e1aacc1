"""Group a frame stream into overlapping windows, with the audio around each (no I/O of its own, no asyncio)."""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from typing import TYPE_CHECKING, Generic, Iterable, Iterator, TypeVar

from .frames import Frame, Window

if TYPE_CHECKING:
    from lipstream.config import WindowConfig

    from .audio import AudioFeed

T = TypeVar("T")


class WindowPlanner(Generic[T]):
    """Turn a stream of items into windows of `size` items overlapping by `overlap`.

    Window j owns items [j*stride, (j+1)*stride) with stride = size - overlap,
    and carries up to overlap//2 items of context before and the rest after.
    At most `size` items are held, whatever the stream's length.
    """

    def __init__(self, size: int, overlap: int) -> None:
        if size < 1 or not 0 <= overlap < size:
            raise ValueError(f"need size >= 1 and 0 <= overlap < size, got size={size}, overlap={overlap}")
        self.stride = size - overlap
        self.before = overlap // 2
        self.after = overlap - self.before
        self._held: deque[T] = deque()
        self._first = 0  # stream index of self._held[0]
        self._count = 0  # items pushed so far
        self._next = 0  # index of the next window to emit

    def push(self, item: T) -> list[tuple[list[T], int, int]]:
        """Add one item; return the windows it completed as (items, own_start, own_stop)."""
        self._held.append(item)
        self._count += 1
        out = []
        while self._count >= (self._next + 1) * self.stride + self.after:
            out.append(self._emit(self._count))
        return out

    def finish(self) -> list[tuple[list[T], int, int]]:
        """Emit what is left once the stream has ended."""
        out = []
        while self._next * self.stride < self._count:
            out.append(self._emit(self._count))
        return out

    def _emit(self, available: int) -> tuple[list[T], int, int]:
        own_lo = self._next * self.stride
        own_hi = min(own_lo + self.stride, available)
        lo = max(own_lo - self.before, 0)
        hi = min(own_hi + self.after, available)
        items = [self._held[i - self._first] for i in range(lo, hi)]
        self._next += 1
        keep_from = max(self._next * self.stride - self.before, 0)
        while self._first < keep_from and self._held:
            self._held.popleft()
            self._first += 1
        return items, own_lo - lo, own_hi - lo


def plan_windows(items: Iterable[T], size: int, overlap: int) -> Iterator[tuple[list[T], int, int]]:
    """All windows of `items`, for callers that have a plain iterable."""
    planner: WindowPlanner[T] = WindowPlanner(size, overlap)
    for item in items:
        yield from planner.push(item)
    yield from planner.finish()


def frame_windows(frames: Iterator[Frame], feed: AudioFeed | None, config: WindowConfig) -> Iterator[Window]:
    """Group frames into windows and attach the audio around each one (`config.audio_margin` either side)."""
    planner: WindowPlanner[Frame] = WindowPlanner(config.size, config.overlap)
    margin = Fraction(config.audio_margin).limit_denominator(1000)
    index = 0

    def make(items: list[Frame], lo: int, hi: int, last: bool) -> Window:
        nonlocal index
        span = None if feed is None else feed.span(items[0].time - margin, items[-1].time + margin)
        index += 1
        return Window(index - 1, tuple(items), lo, hi, span, last)

    for frame in frames:
        for items, lo, hi in planner.push(frame):
            yield make(items, lo, hi, False)
    rest = planner.finish()
    for n, (items, lo, hi) in enumerate(rest):
        yield make(items, lo, hi, n == len(rest) - 1)
