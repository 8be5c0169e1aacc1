"""Group a frame stream into overlapping windows (pure: no I/O, no asyncio)."""

from __future__ import annotations

from collections import deque
from typing import Generic, Iterable, Iterator, TypeVar

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
